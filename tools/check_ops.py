"""Offline checks of everything around the service: the `ops` gate (`tox -e ops`).

  chart      for every charts/qc-collector/ci/*-values.yaml scenario: values.schema.json,
             render (on a cluster that serves the Prometheus Operator CRDs; the defaults
             once more on one that does not, where no monitoring object may appear),
             `helm lint --strict` (helm-python-sdk, Helm's own library), every
             manifest against the Kubernetes OpenAPI schemas of the oldest and newest
             supported versions (kubernetes-validate, strict: unknown fields fail), the
             Prometheus Operator objects against tests/ops/schemas, every PromQL
             expression parsed and every metric it reads defined by app/observability.py,
             agreed in AGREED_SERIES or exported by kube-state-metrics/the kubelet
             (KUBERNETES_SERIES), or recorded by a rule; every alert links a runbook
             (runbook_url); every charts/qc-collector/ci/expect-fail/*-values.yaml must
             fail to render with the message its `# expect:` line names; the chart's copy
             of tools/backup-db.sh is current
  dashboard  the Grafana JSON: every query parses and reads only real metrics
  docker     hadolint Dockerfile
  compose    docker-compose.yml against the Compose Specification schema (the copy that
             check-jsonschema vendors) and the stack's shape (postgres 16, one-shot
             migrate, api and worker after it, one named volume at EXPORT_DIR in both)
  workflows  actionlint .github/workflows (with shellcheck on `run:` scripts)
  scripts    shellcheck tools/*.sh
  docs       every `qc-collector ...` command in docs/, the workflows and NOTES.txt is
             accepted by the real CLI parser; every tools/ path and `make` target named exists

Prints one line per problem and exits 1 if there is any. `--only chart,docs` runs a subset.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import os
import re
import shlex
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import jsonschema
import yaml

ROOT = Path(__file__).resolve().parent.parent
CHART = ROOT / "charts" / "qc-collector"
BIN = Path(sys.executable).parent
SCHEMAS = ROOT / "tests" / "ops" / "schemas"
# The chart's kubeVersion floor and the newest schemas kubernetes-validate ships.
KUBE_VERSIONS = ("1.27.0", "1.37.0")
CRD_SCHEMAS = {"ServiceMonitor": "servicemonitor.schema.json", "PrometheusRule": "prometheusrule.schema.json"}
# Series Prometheus itself adds to every scrape target.
BUILTIN_SERIES = {"up", "scrape_duration_seconds", "scrape_samples_scraped"}
# Gauges agreed for /metrics (/work/notes/METRICS.md, issue 12) that the rules and the
# dashboard may read before app/observability.py defines each of them.
AGREED_SERIES = {
    "qcc_build_info", "qcc_db_pool", "qcc_db_connections", "qcc_db_max_connections",
    "qcc_replica_lag_seconds", "qcc_replica_reads_enabled", "qcc_job_queue_depth",
    "qcc_job_queue_oldest_age_seconds", "qcc_workers_alive", "qcc_notifications_backlog",
    "qcc_notifications_dead", "qcc_export_rows_total", "qcc_export_bytes_total",
}
# Series of the cluster's own exporters: kube-state-metrics (replicas, the backup
# CronJob) and the kubelet (volume fill).
KUBERNETES_SERIES = {
    "kube_cronjob_status_last_successful_time", "kube_deployment_status_replicas_available",
    "kube_deployment_spec_replicas", "kube_horizontalpodautoscaler_status_current_replicas",
    "kube_horizontalpodautoscaler_status_desired_replicas",
    "kube_horizontalpodautoscaler_spec_max_replicas",
    "kubelet_volume_stats_used_bytes", "kubelet_volume_stats_capacity_bytes",
}
# What a cluster with the Prometheus Operator serves (Helm's .Capabilities.APIVersions).
MONITORING_APIS = ("monitoring.coreos.com/v1", "monitoring.coreos.com/v1/ServiceMonitor",
                   "monitoring.coreos.com/v1/PrometheusRule")
RELEASE, NAMESPACE = "qcc", "qc"


@dataclass
class Manifest:
    source: str  # template path
    doc: dict[str, Any]

    @property
    def kind(self) -> str:
        return str(self.doc.get("kind", ""))

    @property
    def name(self) -> str:
        return str(self.doc.get("metadata", {}).get("name", ""))

    def label(self) -> str:
        return f"{self.source}: {self.kind}/{self.name}"


# --- the chart -----------------------------------------------------------------------

@contextlib.contextmanager
def quiet_stderr() -> Iterator[None]:
    """Helm's Go library logs to file descriptor 2 directly; keep the gate's output readable."""
    sys.stderr.flush()
    saved = os.dup(2)
    with open(os.devnull, "w") as devnull:
        os.dup2(devnull.fileno(), 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def scenarios() -> list[Path]:
    return sorted((CHART / "ci").glob("*-values.yaml"))


def load_values(path: Path) -> dict[str, Any]:
    return yaml.safe_load(path.read_text()) or {}


def render(values: dict[str, Any], api_versions: tuple[str, ...] = MONITORING_APIS) -> list[Manifest]:
    """Render the chart offline (schema-checked) into manifests; NOTES.txt is left out.
    `api_versions` are the extra APIs the cluster is taken to serve (`helm template
    --api-versions`), which Chart.render does not expose: its native call does."""
    import helm_python as helm
    from helm_python import _native

    options = {"name": RELEASE, "namespace": NAMESPACE, "is_install": True,
               "api_versions": list(api_versions)}
    with quiet_stderr(), helm.Chart.load(CHART) as chart:
        chart.validate_schema(values)
        rendered = json.loads(_native.call_string(
            "helm_render", chart._raw(), json.dumps(values), json.dumps(options)))
    manifests = []
    for source, text in sorted(rendered.items()):
        if not source.endswith((".yaml", ".yml")):
            continue
        for doc in yaml.safe_load_all(text):
            if doc:
                manifests.append(Manifest(source.removeprefix("qc-collector/"), doc))
    return manifests


def lint(values: dict[str, Any]) -> list[str]:
    """`helm lint --strict`: findings of severity warning (2) or error (3) are problems."""
    import helm_python as helm

    with quiet_stderr():
        report = helm.lint(CHART, values, strict=True)
    return [f"helm lint: {m['path']}: {m['error']}" for m in report["messages"] if m["severity"] >= 2]


def validate_kubernetes(manifest: Manifest) -> list[str]:
    problems = []
    for version in KUBE_VERSIONS:
        problem = _kubernetes_problem(json.dumps(manifest.doc, sort_keys=True), version)
        if problem:
            problems.append(f"{manifest.label()}: Kubernetes {version}: {problem}")
    return problems


@functools.cache
def _kubernetes_problem(document: str, version: str) -> str | None:
    """Most objects are identical across scenarios: each distinct one is validated once."""
    import kubernetes_validate

    doc = json.loads(document)
    try:
        kubernetes_validate.validate(doc, version, strict=True)
    except kubernetes_validate.ValidationError as exc:
        return f"{'/'.join(str(p) for p in exc.path)}: {exc.message}"
    except kubernetes_validate.SchemaNotFoundError:
        return f"no schema for {doc.get('apiVersion')} {doc.get('kind')}"
    return None


def validate_crd(manifest: Manifest) -> list[str]:
    schema = json.loads((SCHEMAS / CRD_SCHEMAS[manifest.kind]).read_text())
    validator = jsonschema.Draft7Validator(schema)
    return [f"{manifest.label()}: {'/'.join(map(str, e.absolute_path))}: {e.message}"
            for e in validator.iter_errors(manifest.doc)]


def known_series() -> set[str]:
    """Every series name app/observability.py exposes (counters: _total; histograms:
    _bucket, _count, _sum), read from the live prometheus_client objects."""
    from prometheus_client.metrics import MetricWrapperBase

    from app import observability

    names: set[str] = set(observability.SCRAPE_SERIES)
    for value in vars(observability).values():
        if isinstance(value, MetricWrapperBase):
            for metric in value.describe():
                suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum")}
                names.update(metric.name + s for s in suffixes.get(metric.type, ("",)))
    return names


def promql_metrics(expr: str) -> set[str]:
    """The metric names an expression reads; raises ValueError when it does not parse."""
    import promql_parser

    names: set[str] = set()

    def visit(node: Any) -> bool:
        if isinstance(node, promql_parser.VectorSelector) and node.name:
            names.add(node.name)
        return True

    promql_parser.walk(promql_parser.parse(expr), visit)
    return names


def check_promql(where: str, exprs: list[str], available: set[str]) -> list[str]:
    problems = []
    for expr in exprs:
        try:
            unknown = promql_metrics(expr) - available
        except ValueError as exc:
            problems.append(f"{where}: PromQL does not parse ({exc}): {expr}")
            continue
        if unknown:
            problems.append(f"{where}: reads metrics the service does not expose: {sorted(unknown)}")
    return problems


def check_rules(manifest: Manifest, series: set[str]) -> list[str]:
    groups = manifest.doc["spec"]["groups"]
    rules = [rule for group in groups for rule in group["rules"]]
    recorded = {rule["record"] for rule in rules if "record" in rule}
    problems = check_promql(manifest.label(), [str(rule["expr"]) for rule in rules],
                            series | recorded | BUILTIN_SERIES | AGREED_SERIES | KUBERNETES_SERIES)
    alerts = [rule for rule in rules if "alert" in rule]
    seen: set[str] = set()
    for alert in alerts:
        name = alert["alert"]
        if name in seen:
            problems.append(f"{manifest.label()}: alert {name} is defined twice")
        seen.add(name)
        if "severity" not in alert.get("labels", {}) or "summary" not in alert.get("annotations", {}):
            problems.append(f"{manifest.label()}: alert {name} needs labels.severity and annotations.summary")
        if not str(alert.get("annotations", {}).get("runbook_url", "")).startswith("https://"):
            problems.append(f"{manifest.label()}: alert {name} needs an annotations.runbook_url")
    return problems


def expected_failures() -> list[Path]:
    return sorted((CHART / "ci" / "expect-fail").glob("*-values.yaml"))


def check_expected_failures() -> list[str]:
    """Values the chart must refuse, with the reason its `# expect: <text>` line names
    (e.g. the connection arithmetic of an over-committed release)."""
    problems = []
    for path in expected_failures():
        scenario = f"ci/expect-fail/{path.name}"
        expected = re.findall(r"^# expect: (.+)$", path.read_text(), flags=re.M)
        if not expected:
            problems.append(f"{scenario}: no `# expect: <message>` line")
            continue
        try:
            render(load_values(path))
        except Exception as exc:
            missing = [text for text in expected if text not in str(exc)]
            if missing:
                problems.append(f"{scenario}: render failed, but without {missing}: {exc}")
            continue
        problems.append(f"{scenario}: rendered, but must fail with {expected}")
    return problems


def check_without_crds() -> list[str]:
    """The defaults on a cluster without the Prometheus Operator: nothing that needs it."""
    try:
        manifests = render({}, api_versions=())
    except Exception as exc:
        return [f"defaults without the monitoring CRDs: render failed: {exc}"]
    return [f"defaults without the monitoring CRDs: {m.label()} would fail to install"
            for m in manifests if m.kind in CRD_SCHEMAS]


def check_chart() -> list[str]:
    problems = []
    series = known_series()
    script = (CHART / "files" / "backup-db.sh")
    if script.read_bytes() != (ROOT / "tools" / "backup-db.sh").read_bytes():
        problems.append("charts/qc-collector/files/backup-db.sh differs from tools/backup-db.sh: "
                        "run 'cp tools/backup-db.sh charts/qc-collector/files/backup-db.sh'")
    if not scenarios():
        problems.append("no charts/qc-collector/ci/*-values.yaml scenario")
    for path in scenarios():
        scenario = f"ci/{path.name}"
        values = load_values(path)
        problems += [f"{scenario}: {p}" for p in lint(values)]
        try:
            manifests = render(values)
        except Exception as exc:  # the library's errors carry Helm's message
            problems.append(f"{scenario}: render failed: {exc}")
            continue
        for manifest in manifests:
            if manifest.kind in CRD_SCHEMAS:
                found = validate_crd(manifest)
                if manifest.kind == "PrometheusRule" and not found:
                    found = check_rules(manifest, series)
            else:
                found = validate_kubernetes(manifest)
            problems += [f"{scenario}: {p}" for p in found]
    return problems + check_expected_failures() + check_without_crds()


def check_dashboard() -> list[str]:
    path = CHART / "dashboards" / "qc-collector.json"
    dashboard = json.loads(path.read_text())
    exprs = [target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", [])]
    if not exprs:
        return [f"{path.relative_to(ROOT)}: no queries"]
    return check_promql(str(path.relative_to(ROOT)), exprs,
                        known_series() | BUILTIN_SERIES | AGREED_SERIES | KUBERNETES_SERIES)


# --- image, compose, workflows, scripts ------------------------------------------------

def run_tool(*command: str | Path) -> list[str]:
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    done = subprocess.run([str(c) for c in command], cwd=ROOT, env=env, capture_output=True, text=True)
    if done.returncode == 0:
        return []
    output = (done.stdout + done.stderr).strip() or f"exit status {done.returncode}"
    return [f"{Path(str(command[0])).name}: {line}" for line in output.splitlines()]


def check_docker() -> list[str]:
    return run_tool(BIN / "hadolint", "Dockerfile") + check_lock()


def check_lock() -> list[str]:
    """The image installs requirements.lock only: every runtime dependency pinned in
    pyproject.toml must be locked at that version (run `make lock` after a change)."""
    import tomllib

    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    locked = {}
    for line in (ROOT / "requirements.lock").read_text().splitlines():
        match = re.match(r"^([A-Za-z0-9_.-]+)==([^ \\]+)", line)
        if match:
            locked[canonicalize_name(match.group(1))] = match.group(2)
    problems = []
    for spec in project["dependencies"]:
        requirement = Requirement(spec)
        pinned = [s.version for s in requirement.specifier if s.operator == "=="]
        name = canonicalize_name(requirement.name)
        if locked.get(name) not in pinned:
            problems.append(f"requirements.lock: {requirement.name} is {locked.get(name)}, pyproject.toml "
                            f"pins {spec}: run 'make lock'")
    if "pgserver" in locked:
        problems.append("requirements.lock: pgserver belongs to the `embedded` extra, not the image")
    return problems


def check_compose() -> list[str]:
    problems = run_tool(BIN / "check-jsonschema", "--builtin-schema", "vendor.compose-spec",
                        "docker-compose.yml")
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return problems or compose_shape(compose)


def compose_shape(compose: dict[str, Any]) -> list[str]:
    """What the stack must look like beyond the schema (anchors and merge keys resolved)."""
    problems = []
    services = compose.get("services", {})
    for name in ("postgres", "migrate", "api", "worker"):
        if name not in services:
            problems.append(f"docker-compose.yml: no {name} service")
    if problems:
        return problems
    if not str(services["postgres"].get("image", "")).startswith("postgres:16"):
        problems.append("docker-compose.yml: postgres must run PostgreSQL 16")
    if services["migrate"].get("command") != ["qc-collector", "migrate"]:
        problems.append("docker-compose.yml: migrate must run `qc-collector migrate`")
    if services["worker"].get("command") != ["qc-collector", "worker"]:
        problems.append("docker-compose.yml: worker must run `qc-collector worker`")
    for name in ("api", "worker"):
        after = services[name].get("depends_on", {}).get("migrate", {}).get("condition")
        if after != "service_completed_successfully":
            problems.append(f"docker-compose.yml: {name} must start after migrate completed successfully")
    problems += _shared_export_dir(compose)
    for name, service in services.items():
        for env_file in service.get("env_file", []):
            if not (ROOT / env_file).exists():
                problems.append(f"docker-compose.yml: {name}: env_file {env_file} does not exist")
    return problems


def _shared_export_dir(compose: dict[str, Any]) -> list[str]:
    """The worker writes export files under EXPORT_DIR and the API serves them from there:
    both must mount the same named volume at that path."""
    services = compose["services"]
    mounted = {}
    for name in ("api", "worker"):
        environment = services[name].get("environment") or {}
        if isinstance(environment, list):
            environment = dict(item.split("=", 1) for item in environment if "=" in item)
        export_dir = environment.get("EXPORT_DIR")
        if not export_dir:
            return [f"docker-compose.yml: {name} must set EXPORT_DIR (the volume shared with "
                    "the other of api and worker)"]
        volumes = {}
        for volume in services[name].get("volumes", []):
            if isinstance(volume, str):
                source, _, rest = volume.partition(":")
                volumes[rest.split(":")[0]] = source
            else:
                volumes[volume.get("target")] = volume.get("source")
        mounted[name] = (export_dir, volumes.get(export_dir))
    (api_dir, api_source), (worker_dir, worker_source) = mounted["api"], mounted["worker"]
    if api_dir != worker_dir or api_source is None or api_source != worker_source:
        return [f"docker-compose.yml: api and worker must mount one volume at the same EXPORT_DIR "
                f"(api: {api_source} at {api_dir}, worker: {worker_source} at {worker_dir})"]
    if api_source not in (compose.get("volumes") or {}):
        return [f"docker-compose.yml: the export volume {api_source} must be a named volume"]
    return []


def check_workflows() -> list[str]:
    # Files named explicitly: actionlint then needs no enclosing git repository.
    workflows = sorted((ROOT / ".github" / "workflows").glob("*.yml"))
    return run_tool(BIN / "actionlint", "-oneline", *workflows) if workflows else ["no workflows"]


def check_scripts() -> list[str]:
    return run_tool(BIN / "shellcheck", *sorted((ROOT / "tools").glob("*.sh")))


# --- docs: every command named is one that exists ---------------------------------------

COMMAND = re.compile(r"(?:^|[\s`(;|&])(?:\.venv/bin/)?qc-collector[ \t]+([^`\n#|;&)]*)")
TOOL_PATH = re.compile(r"\btools/[\w.-]+\.(?:sh|py)\b")
MAKE_TARGET = re.compile(r"(?:^|[\s;&|(])make ([a-z][\w-]*)")


def documents() -> dict[Path, str]:
    """Where commands are written, and just the command text of each: code in the
    Markdown runbooks, `run:` scripts in the workflows, NOTES.txt whole."""
    found = {}
    for path in sorted((ROOT / "docs").glob("*.md")):
        text = path.read_text()
        fenced = re.findall(r"^```[^\n]*\n(.*?)^```", text, flags=re.M | re.S)
        inline = re.findall(r"`([^`\n]+)`", re.sub(r"^```.*?^```", "", text, flags=re.M | re.S))
        found[path] = "\n".join([*fenced, *inline])
    for path in sorted((ROOT / ".github" / "workflows").glob("*.yml")):
        workflow = yaml.safe_load(path.read_text())
        steps = [step for job in workflow.get("jobs", {}).values() for step in job.get("steps", [])]
        found[path] = "\n".join(step["run"] for step in steps if "run" in step)
    notes = CHART / "templates" / "NOTES.txt"
    found[notes] = notes.read_text()
    return found


def cli_accepts(words: list[str]) -> str | None:
    """None when app.cli's parser accepts the arguments, else its complaint."""
    from app.cli import build_parser

    parser = build_parser()
    complaint: list[str] = []

    def error(message: str) -> NoReturn:
        complaint.append(message)
        sys.exit(2)

    for each in [parser, *_subparsers(parser)]:
        each.error = error  # type: ignore[method-assign]
    try:
        with contextlib.redirect_stdout(None), contextlib.redirect_stderr(None):
            parser.parse_args(words)
    except SystemExit as exit_:
        if exit_.code not in (0, None):
            return complaint[0] if complaint else f"exit {exit_.code}"
    return None


def _subparsers(parser: argparse.ArgumentParser) -> list[argparse.ArgumentParser]:
    found = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in action.choices.values():
                found += [child, *_subparsers(child)]
    return found


def check_docs() -> list[str]:
    problems = []
    makefile = (ROOT / "Makefile").read_text()
    targets = set(re.findall(r"^([a-z][\w-]*):", makefile, flags=re.M))
    for path, text in documents().items():
        where = path.relative_to(ROOT)
        for match in COMMAND.finditer(text):
            # Placeholders such as <key-id> or "$KEY" stand for one argument each.
            args = re.sub(r"<[^>]*>", "X", match.group(1)).strip().rstrip("\\").strip()
            try:
                words = shlex.split(args)
            except ValueError:
                words = args.split()
            if not words or words[0].startswith("{{"):
                continue
            complaint = cli_accepts(words)
            # A command named without its arguments (`qc-collector keys create`) is a
            # reference, not an invocation: only a wrong command or option fails.
            if complaint and not complaint.startswith("the following arguments are required"):
                problems.append(f"{where}: `qc-collector {args}`: {complaint}")
        for tool in set(TOOL_PATH.findall(text)):
            if not (ROOT / tool).exists():
                problems.append(f"{where}: names {tool}, which does not exist")
        for target in set(MAKE_TARGET.findall(text)):
            if target not in targets:
                problems.append(f"{where}: names `make {target}`, which the Makefile lacks")
    return problems


CHECKS: dict[str, Callable[[], list[str]]] = {
    "chart": check_chart,
    "dashboard": check_dashboard,
    "docker": check_docker,
    "compose": check_compose,
    "workflows": check_workflows,
    "scripts": check_scripts,
    "docs": check_docs,
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", help=f"comma-separated subset of: {', '.join(CHECKS)}")
    args = parser.parse_args(argv)
    chosen = args.only.split(",") if args.only else list(CHECKS)
    unknown = set(chosen) - set(CHECKS)
    if unknown:
        parser.error(f"unknown checks: {', '.join(sorted(unknown))}")
    failed = 0
    for name in chosen:
        started = time.perf_counter()
        problems = CHECKS[name]()
        failed += bool(problems)
        status = "ok" if not problems else f"{len(problems)} problem(s)"
        print(f"{name:<10} {status} ({time.perf_counter() - started:.1f} s)")
        for problem in problems:
            print(f"  {problem}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    sys.exit(main())
