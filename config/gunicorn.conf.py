"""gunicorn settings for QC Collector (uvicorn workers). Values come from app.config."""

import os
import shutil

from prometheus_client import multiprocess

from app import config as _app_config

_settings = _app_config.load()

bind = f"{_settings.host}:{_settings.port}"
workers = _settings.workers
worker_class = "uvicorn_worker.UvicornWorker"
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


def child_exit(server, worker):
    if _settings.prometheus_multiproc_dir:
        multiprocess.mark_process_dead(worker.pid)
