"""gunicorn settings for QC Collector (uvicorn workers). Values come from app.config."""

import gc
import os
import shutil

from prometheus_client import multiprocess

from app import config as _app_config

_settings = _app_config.load()

bind = f"{_settings.host}:{_settings.port}"
workers = _settings.workers
# uvicorn's worker with a limit on the request head's size and read time (app/server.py):
# gunicorn's limit_request_line / limit_request_fields / limit_request_field_size apply to
# its own sync workers only and do not reach uvicorn's (measured: a 64 MiB header was read).
worker_class = "app.server.GuardedWorker"
# X-Forwarded-For / X-Forwarded-Proto are believed only from these proxies (none by
# default; gunicorn's own default trusts 127.0.0.1, which anyone on the host can be).
forwarded_allow_ips = _settings.forwarded_allow_ips
wsgi_app = "app.main:asgi()"
# After SIGTERM a process finishes its in-flight requests for up to this long. The chart
# passes its own value (GUNICORN_CMD_ARGS=--graceful-timeout N, which overrides this file)
# and checks preStop sleep + this + 5 s <= terminationGracePeriodSeconds.
graceful_timeout = 15
timeout = 60
# Longer than the idle timeout of the proxies in front (ingress-nginx, cloud load
# balancers: 60 s), so a proxy never reuses a connection the server just closed.
keepalive = 75
# gunicorn 27's control socket lives at one fixed path per user: several servers on one
# machine (tests, fuzz, bench) would fight over it, and nothing here uses it.
control_socket_disable = True
# Access lines come from the app's JSON logger (with request ids), not gunicorn's.
accesslog = None
errorlog = "-"
loglevel = _settings.log_level.lower()


def on_starting(server):
    # Metrics from every worker are merged from this directory; stale files from a
    # previous run would be counted again, so it starts empty.
    path = _settings.prometheus_multiproc_dir
    if path:
        shutil.rmtree(path, ignore_errors=True)
        os.makedirs(path, exist_ok=True)


def post_worker_init(worker):
    # The app is loaded (the parsed contract, validators, modules): objects that live as
    # long as the worker. Frozen, the cyclic collector stops walking them on each full
    # collection: under the batch load those walks (~110,000 objects, ~20 times in 10 s)
    # took a third of an API worker's CPU. A batch parses ~40,000 containers, which at
    # the default threshold (700) meant ~60 young collections per request; with 10,000
    # the collector's share of the worker's CPU halves again (~10 % -> ~5 %). Cyclic
    # garbage is rare here (reference counting frees the rest), so memory does not grow.
    gc.collect()
    gc.freeze()
    gc.set_threshold(10_000, 10, 10)


def child_exit(server, worker):
    if _settings.prometheus_multiproc_dir:
        multiprocess.mark_process_dead(worker.pid)
