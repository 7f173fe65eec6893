"""qc-collector: serve | migrate | worker | keys | retention | verify | smoke | import."""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any
from uuid import UUID

import orjson

from app import config
from app.storage import embedded
from app.storage.migrate import LOCK_RETRIES, LOCK_TIMEOUT, STATEMENT_TIMEOUT, migrate

ROOT = Path(__file__).resolve().parent.parent
GUNICORN_CONF = ROOT / "config" / "gunicorn.conf.py"


def _database(settings: config.Settings) -> tuple[str, str, Any]:
    """(app url, owner url, embedded handle or None); starts the embedded server if needed."""
    if settings.embedded:
        db = embedded.start(settings.data_dir)
        return db.app_url, db.owner_url, db
    assert settings.database_url is not None
    return settings.database_url, settings.database_migrate_url or settings.database_url, None


def _demo_key(settings: config.Settings) -> str:
    """A stable demo admin key under the data dir, for a first run without API_KEYS."""
    path = settings.data_dir / "demo-api-key"
    if path.exists():
        return path.read_text().strip()
    secret = "qcc_demo_" + secrets.token_urlsafe(24)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    path.write_text(secret + "\n")
    path.chmod(0o600)
    return secret


def cmd_serve(args: argparse.Namespace) -> int:
    from app.services.evidence import signing
    from app.services.exports import signed_urls

    settings = config.load()
    signing.load(settings)  # fail here, clearly, rather than in every worker
    signed_urls.sign_secret(settings)
    app_url, owner_url, db = _database(settings)
    try:
        if not args.no_migrate:
            migrate(owner_url)
        env = dict(os.environ)
        env["DATABASE_URL"] = app_url
        env["DATABASE_MIGRATE_URL"] = owner_url
        env.setdefault("PROMETHEUS_MULTIPROC_DIR", str(settings.data_dir / "prometheus"))
        demo = None
        if not settings.api_keys:
            demo = _demo_key(settings)
            env["API_KEYS"] = f"demo:admin:{demo}"
        url = f"http://{settings.host}:{settings.port}"
        print(f"QC Collector on {url}  (console: {url}/console/, docs: {url}/ui/, "
              f"spec: {url}/openapi.json)", flush=True)
        if demo:
            print("API_KEYS is unset: a demo admin key for tenant 'demo' is in "
                  f"{settings.data_dir / 'demo-api-key'}. Try:\n"
                  f"  curl -s -X POST {url}/ingest/qc -H 'X-Api-Key: {demo}' "
                  "-H 'Content-Type: application/json' -d '{\"source\":\"etl-nightly\","
                  "\"subject\":\"dataset:orders\",\"observed_at\":\"2026-11-21T02:03:11Z\","
                  "\"checks\":[{\"rule\":\"row_count_min\",\"status\":\"fail\","
                  "\"severity\":\"block\"}]}'\n"
                  f"  curl -s {url}/reports -H 'X-Api-Key: {demo}'", flush=True)
        server = subprocess.Popen([sys.executable, "-m", "gunicorn", "-c", str(GUNICORN_CONF)],
                                  env=env, cwd=ROOT)

        def start_worker() -> subprocess.Popen[bytes]:
            return subprocess.Popen([sys.executable, "-m", "app.cli", "worker"], env=env, cwd=ROOT)

        # a worker beside the API, so exports complete on a single machine too
        worker = None if args.no_worker else start_worker()
        stopping = False

        def forward(signum: int, _frame: Any) -> None:
            # Ctrl-C or a stop: a graceful SIGTERM for the children either way (gunicorn's
            # quick SIGINT shutdown can wait out its graceful timeout on busy workers)
            nonlocal stopping
            stopping = True
            for child in (server, worker):
                if child is not None and child.poll() is None:
                    child.send_signal(signal.SIGTERM)

        signal.signal(signal.SIGINT, forward)
        signal.signal(signal.SIGTERM, forward)
        while server.poll() is None:
            # the supervisor of a single machine, as Kubernetes is in the chart: a worker that
            # died (killed, out of memory) is started again; its jobs and sends are retried
            if worker is not None and worker.poll() is not None and not stopping:
                print(f"the worker exited ({worker.returncode}); starting it again", flush=True)
                worker = start_worker()
            time.sleep(1.0)
        code = server.returncode
        if worker is not None:
            if worker.poll() is None:
                worker.send_signal(signal.SIGTERM)
            worker.wait()
        return code
    finally:
        if db is not None:
            db.stop()


def cmd_migrate(args: argparse.Namespace) -> int:
    settings = config.load()
    _, owner_url, db = _database(settings)
    try:
        applied = migrate(owner_url, lock_timeout=args.lock_timeout,
                          statement_timeout=args.statement_timeout, lock_retries=args.lock_retries)
        print(f"applied: {', '.join(applied)}" if applied else "schema is up to date")
        return 0
    finally:
        if db is not None:
            db.stop()


async def _keys(args: argparse.Namespace) -> int:
    from app.services.access import keys as key_service
    from app.storage.db import Database

    settings = config.load()
    app_url, owner_url, db = _database(settings)
    try:
        # Keys are managed with the app role (DATABASE_URL) the API and worker pods
        # already have; migrating is the owner's job (the migration hook). Only the
        # embedded development database, which the CLI owns, is brought up to date here.
        if db is not None:
            migrate(owner_url)
        database = await Database(app_url, min_size=1, max_size=2,
                                  prepare_threshold=settings.db_prepare_threshold).open(wait=30)
        try:
            if args.action == "create":
                created = await key_service.create(db=database, tenant=args.tenant, name=args.name,
                                                   role=args.role, origin="cli")
                out = {**_jsonable(created.record), "secret": created.secret}
                print(orjson.dumps(out, option=orjson.OPT_INDENT_2).decode())
                print("store the secret now: it is not shown again", file=sys.stderr)
            elif args.action == "list":
                for record in await key_service.list_keys(db=database, tenant=args.tenant):
                    print(orjson.dumps(_jsonable(record)).decode())
            else:
                await key_service.revoke(db=database, tenant=args.tenant, key_id=UUID(args.id),
                                         actor="cli")
                print(f"revoked {args.id}")
            return 0
        finally:
            await database.close()
    finally:
        if db is not None:
            db.stop()


def _jsonable(record: dict[str, Any]) -> dict[str, Any]:
    return orjson.loads(orjson.dumps(record, default=str))


def cmd_keys(args: argparse.Namespace) -> int:
    from app.errors import DomainError

    try:
        return asyncio.run(_keys(args))
    except (DomainError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


def _target(args: argparse.Namespace, settings: config.Settings) -> tuple[str, str] | None:
    """The running service a client command talks to: --url/--api-key, else COLLECTOR_URL
    and API_KEY; None (said on stderr) when either is missing."""
    url = args.url or settings.collector_url
    key = args.api_key or settings.smoke_api_key
    if not url or not key:
        print("give --url and --api-key (or COLLECTOR_URL and API_KEY)", file=sys.stderr)
        return None
    return url, key


def cmd_smoke(args: argparse.Namespace) -> int:
    from app import smoke

    settings = config.load()
    target = _target(args, settings)
    if target is None:
        return 2
    url, key = target
    result = smoke.run(url, key, args.tenant or settings.smoke_tenant)
    for name, ok, detail in result.results:
        print(f"{'PASS' if ok else 'FAIL'}  {name:<32} {detail}")
    return 0 if all(ok for _, ok, _ in result.results) else 1


def cmd_worker(_: argparse.Namespace) -> int:
    from app import worker
    from app.observability import configure_logging

    settings = config.load()
    configure_logging(settings.log_level)
    if not settings.database_url:
        print("the worker needs DATABASE_URL (qc-collector serve sets it)", file=sys.stderr)
        return 2
    asyncio.run(worker.run(settings))
    return 0


async def _retention(args: argparse.Namespace) -> int:
    from app.services import retention
    from app.storage.db import Database

    settings = config.load()
    app_url, _, db = _database(settings)
    try:
        database = await Database(app_url, min_size=1, max_size=2,
                                  prepare_threshold=settings.db_prepare_threshold).open(wait=30)
        try:
            if args.scheduled:
                print(orjson.dumps(await retention.scheduled(db=database, settings=settings)).decode())
                return 0
            if args.commit:
                outcome = await retention.commit(db=database, settings=settings, tenant=args.tenant,
                                                 plan_hash=args.commit, actor="cli")
            else:
                outcome = await retention.dry_run(db=database, settings=settings,
                                                  tenant=args.tenant,
                                                  older_than_days=args.older_than_days,
                                                  include_signed=args.include_signed)
            print(orjson.dumps(outcome.as_dict(), option=orjson.OPT_INDENT_2).decode())
            if outcome.dry_run:
                print(f"commit with: qc-collector retention --tenant {args.tenant} "
                      f"--commit {outcome.plan_hash}", file=sys.stderr)
            return 0 if not outcome.failures else 1
        finally:
            await database.close()
    finally:
        if db is not None:
            db.stop()


def cmd_retention(args: argparse.Namespace) -> int:
    from app.errors import DomainError

    if not args.scheduled and not args.tenant:
        print("give --tenant (or --scheduled for every tenant)", file=sys.stderr)
        return 2
    try:
        return asyncio.run(_retention(args))
    except DomainError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 3


async def _rotate_encryption() -> int:
    from app.services.alerts import channel_secrets
    from app.storage.db import Database

    settings = config.load()
    app_url, _, db = _database(settings)
    try:
        database = await Database(app_url, min_size=1, max_size=2).open(wait=30)
        try:
            resealed, unreadable = await channel_secrets.reseal_all(db=database, settings=settings)
        finally:
            await database.close()
    finally:
        if db is not None:
            db.stop()
    print(orjson.dumps({"resealed": resealed, "rules": sum(resealed.values()),
                        "unreadable": unreadable}).decode())
    if unreadable:
        print("some rules are sealed under a key that is neither ENCRYPTION_KEY nor in "
              "ENCRYPTION_KEYS_OLD; add it to ENCRYPTION_KEYS_OLD and run again",
              file=sys.stderr)
        return 1
    return 0


def cmd_rotate_encryption(_: argparse.Namespace) -> int:
    from app.config import ConfigError
    from app.errors import DomainError
    from app.services.alerts.channel_secrets import SecretsUnreadable

    try:
        return asyncio.run(_rotate_encryption())
    except (DomainError, ConfigError, SecretsUnreadable) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


def _load_jwks(source: str) -> dict[str, Any]:
    if source.startswith(("http://", "https://")):
        import urllib.request

        with urllib.request.urlopen(  # noqa: S310  # nosec B310 # scheme checked above: http(s)
                source, timeout=15) as response:
            return dict(orjson.loads(response.read()))
    return dict(orjson.loads(Path(source).read_bytes()))


def cmd_verify(args: argparse.Namespace) -> int:
    from app.services.evidence.verification import verify_bundle

    try:
        data = Path(args.bundle).read_bytes()
        jwks = _load_jwks(args.jwks) if args.jwks else None
    except (OSError, ValueError) as exc:
        print(f"FAIL  cannot read input: {exc}")
        return 2
    result = verify_bundle(data, jwks)
    for name, ok, detail in result.checks:
        print(f"{'PASS' if ok else 'FAIL'}  {name:<16} {detail}")
    print("bundle verified" if result.ok else "bundle NOT verified")
    return 0 if result.ok else 1


def cmd_import(args: argparse.Namespace) -> int:
    """Result files (JUnit XML, SARIF, dbt, Great Expectations) -> reports, posted through
    the API (app/importers/upload.py)."""
    from datetime import UTC, datetime

    from app.importers import Options
    from app.importers.upload import run

    settings = config.load()
    target = _target(args, settings)
    if target is None:
        return 2
    url, key = target
    labels = {}
    for item in args.label:
        name, sep, value = item.partition("=")
        if not sep or not name:
            print(f"--label takes key=value, got {item!r}", file=sys.stderr)
            return 2
        labels[name] = value
    manifest = None
    if args.manifest:
        if args.format != "dbt":
            print("--manifest is for the dbt format", file=sys.stderr)
            return 2
        manifest = Path(args.manifest).read_bytes()
    options = Options(source=args.source, subject=args.subject, run_id=args.run_id, labels=labels,
                      manifest=manifest, observed_at=datetime.now(UTC))
    return run(fmt=args.format, files=[Path(f) for f in args.files], options=options, url=url,
               api_key=key, tenant=args.tenant or settings.smoke_tenant)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="qc-collector", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the API under gunicorn (embedded DB by default)")
    serve.add_argument("--no-migrate", action="store_true",
                       help="skip migrations (when a deploy hook runs them)")
    serve.add_argument("--no-worker", action="store_true",
                       help="do not start a job worker beside the API")
    serve.set_defaults(func=cmd_serve)
    migrating = sub.add_parser("migrate",
                               help="apply pending migrations (as the owner: DATABASE_MIGRATE_URL)")
    migrating.add_argument("--lock-timeout", default=LOCK_TIMEOUT,
                           help=f"PostgreSQL lock_timeout of each statement; a file that waits longer is "
                                f"rolled back and retried (default {LOCK_TIMEOUT})")
    migrating.add_argument("--statement-timeout", default=STATEMENT_TIMEOUT,
                           help="PostgreSQL statement_timeout of each statement "
                                f"(default {STATEMENT_TIMEOUT})")
    migrating.add_argument("--lock-retries", type=int, default=LOCK_RETRIES,
                           help=f"attempts per file before giving up (default {LOCK_RETRIES})")
    migrating.set_defaults(func=cmd_migrate)
    keys = sub.add_parser("keys", help="manage API keys of a tenant")
    actions = keys.add_subparsers(dest="action", required=True)
    create = actions.add_parser("create", help="create a key; prints its secret once")
    create.add_argument("--tenant", required=True)
    create.add_argument("--role", required=True, choices=config.ROLES)
    create.add_argument("--name", required=True)
    listing = actions.add_parser("list", help="list a tenant's keys (never secrets)")
    listing.add_argument("--tenant", required=True)
    revoking = actions.add_parser("revoke", help="revoke a key by id")
    revoking.add_argument("--tenant", required=True)
    revoking.add_argument("id")
    keys.set_defaults(func=cmd_keys)
    sub.add_parser("worker", help="run queued jobs (exports, retention)").set_defaults(
        func=cmd_worker)
    retention_cmd = sub.add_parser("retention", help="plan, or commit by hash, a retention run")
    retention_cmd.add_argument("--tenant", help="the tenant to plan or commit for")
    retention_cmd.add_argument("--older-than-days", type=int, default=90,
                               help="the cutoff of a dry run (default 90)")
    retention_cmd.add_argument("--include-signed", action="store_true",
                               help="signed reports too (they are on hold by default)")
    retention_cmd.add_argument("--commit", metavar="PLAN_HASH",
                               help="delete what the dry run with this hash planned")
    retention_cmd.add_argument("--scheduled", action="store_true",
                               help="every tenant, RETENTION_DAYS, signed kept (what the "
                                    "worker runs daily)")
    retention_cmd.set_defaults(func=cmd_retention)
    sub.add_parser("rotate-encryption",
                   help="re-seal alert channel secrets under ENCRYPTION_KEY (old keys in "
                        "ENCRYPTION_KEYS_OLD); idempotent, audited").set_defaults(
        func=cmd_rotate_encryption)
    verify = sub.add_parser("verify", help="check an evidence bundle offline")
    verify.add_argument("bundle", help="the bundle.zip to check")
    verify.add_argument("--jwks", help="JWKS file or URL (e.g. https://host/signing-keys)")
    verify.set_defaults(func=cmd_verify)
    smoke = sub.add_parser("smoke", help="go-live checks against a running server")
    smoke.add_argument("--url", help="base URL (env COLLECTOR_URL)")
    smoke.add_argument("--api-key", help="an admin key: it ingests and signs (env API_KEY)")
    smoke.add_argument("--tenant", help="sent as X-Tenant (env TENANT_ID)")
    smoke.set_defaults(func=cmd_smoke)
    importing = sub.add_parser("import", help="post result files (JUnit XML, SARIF, dbt, "
                                              "Great Expectations) as reports")
    importing.add_argument("format", choices=("junit", "sarif", "dbt", "gx"))
    importing.add_argument("files", nargs="+", metavar="FILE", help="the files the tool wrote")
    importing.add_argument("--source", required=True, help="the reports' source (e.g. ci-unit-tests)")
    importing.add_argument("--subject", help="the reports' subject (default: from the file)")
    importing.add_argument("--run-id", help="the reports' run_id (default: from the file)")
    importing.add_argument("--label", action="append", default=[], metavar="KEY=VALUE",
                           help="a label for every report; repeatable")
    importing.add_argument("--manifest", help="dbt: manifest.json (test names, severity config)")
    importing.add_argument("--url", help="base URL (env COLLECTOR_URL)")
    importing.add_argument("--api-key", help="an operator key (env API_KEY)")
    importing.add_argument("--tenant", help="sent as X-Tenant (env TENANT_ID)")
    importing.set_defaults(func=cmd_import)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except config.ConfigError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
