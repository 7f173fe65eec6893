"""What the chart promises, on its rendered output: replicas and autoscaling, probes, a
locked-down runtime, secrets only by reference, the migration hook, the worker and the
export storage it shares with the API, SLO alert thresholds, the backup CronJob and the
helm test. (Schema validity of every scenario is the ops gate: tools/check_ops.py.)"""

from __future__ import annotations

import functools
import json
import re
from typing import Any

import pytest
import yaml

from tools.check_ops import CHART, ROOT, Manifest, load_values, render, scenarios

SECRET_ENV = {"DATABASE_URL", "DATABASE_MIGRATE_URL", "API_KEYS", "METRICS_TOKEN", "SIGNING_KEY",
              "SIGNING_KEYS_RETIRED", "EXPORT_SIGN_SECRET", "API_KEY", "ENCRYPTION_KEY",
              "ENCRYPTION_KEYS_OLD", "EXPORT_SIGN_SECRETS_OLD",
              "SMTP_PASSWORD", "SLACK_WEBHOOK_URL", "PAGERDUTY_INTEGRATION_KEY"}
# Secrets of alert delivery: only the worker (its dispatcher sends) reads them.
ALERT_DELIVERY_SECRETS = {"SMTP_PASSWORD", "SLACK_WEBHOOK_URL", "PAGERDUTY_INTEGRATION_KEY"}
# Settings of exports, retention and the worker: in the ConfigMap, with the defaults of
# config/collector.env.sample.
JOB_SETTINGS = ("EXPORT_MAX_DAYS", "EXPORT_MAX_ROWS", "EXPORT_URL_TTL", "EXPORT_TTL",
                "RETENTION_PLAN_TTL", "RETENTION_DAYS", "RETENTION_BATCH", "RETENTION_PAUSE",
                "WORKER_CONCURRENCY",
                "WORKER_HEARTBEAT_SECONDS")


@functools.cache
def rendered(scenario: str = "default") -> list[Manifest]:
    return render(load_values(CHART / "ci" / f"{scenario}-values.yaml"))


def only(manifests: list[Manifest], kind: str, component: str | None = None) -> list[dict[str, Any]]:
    found = [m.doc for m in manifests if m.kind == kind]
    if kind == "ConfigMap" and component is None:
        # the settings ConfigMap (the dashboard and backup script have their own)
        found = [d for d in found if d["metadata"]["name"] == "qcc-qc-collector"]
    if component:
        found = [d for d in found if d["metadata"]["labels"].get("app.kubernetes.io/component") == component]
    return found


def pod_specs(manifests: list[Manifest]) -> list[dict[str, Any]]:
    specs = []
    for m in manifests:
        if m.kind in ("Deployment", "Job"):
            specs.append(m.doc["spec"]["template"]["spec"])
        elif m.kind == "CronJob":
            specs.append(m.doc["spec"]["jobTemplate"]["spec"]["template"]["spec"])
        elif m.kind == "Pod":
            specs.append(m.doc["spec"])
    return specs


ALL = pytest.mark.parametrize("scenario", [p.name.removesuffix("-values.yaml") for p in scenarios()])


def test_api_runs_three_replicas_scaled_on_cpu_and_memory():
    default = rendered()
    (api,) = only(default, "Deployment", "api")
    (hpa,) = only(default, "HorizontalPodAutoscaler")
    assert "replicas" not in api["spec"]  # the HPA owns the count
    assert hpa["spec"]["minReplicas"] == 3 and hpa["spec"]["maxReplicas"] >= 3
    assert {m["resource"]["name"] for m in hpa["spec"]["metrics"]} == {"cpu", "memory"}
    (fixed,) = only(rendered("no-autoscaling"), "Deployment", "api")
    assert fixed["spec"]["replicas"] == 3
    assert not only(rendered("no-autoscaling"), "HorizontalPodAutoscaler")


def test_probes_resources_and_service_target_the_api_pods():
    default = rendered()
    (api,) = only(default, "Deployment", "api")
    (container,) = api["spec"]["template"]["spec"]["containers"]
    assert container["livenessProbe"]["httpGet"] == {"path": "/health", "port": "http"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/ready", "port": "http"}
    assert container["resources"]["requests"] and container["resources"]["limits"]
    (service,) = only(default, "Service")
    (pdb,) = only(default, "PodDisruptionBudget")
    pod_labels = api["spec"]["template"]["metadata"]["labels"]
    for selector in (service["spec"]["selector"], pdb["spec"]["selector"]["matchLabels"]):
        assert selector["app.kubernetes.io/component"] == "api"
        assert selector.items() <= pod_labels.items()


@ALL
def test_every_pod_runs_as_non_root_on_a_read_only_root_filesystem(scenario):
    for spec in pod_specs(rendered(scenario)):
        assert spec["securityContext"]["runAsNonRoot"] is True
        assert spec["automountServiceAccountToken"] is False
        for container in spec["containers"]:
            context = container["securityContext"]
            assert context["readOnlyRootFilesystem"] is True
            assert context["allowPrivilegeEscalation"] is False
            assert context["capabilities"]["drop"] == ["ALL"]
            mounts = {m["mountPath"] for m in container.get("volumeMounts", [])}
            assert "/tmp" in mounts


def test_gunicorn_and_prometheus_write_only_to_empty_dirs():
    default = rendered()
    (config,) = only(default, "ConfigMap")
    (api,) = only(default, "Deployment", "api")
    spec = api["spec"]["template"]["spec"]
    scratch = {v["name"] for v in spec["volumes"] if "emptyDir" in v}
    mounts = {m["mountPath"]: m["name"] for m in spec["containers"][0]["volumeMounts"]}
    assert config["data"]["PROMETHEUS_MULTIPROC_DIR"].startswith("/tmp/")
    assert mounts["/tmp"] in scratch and mounts[config["data"]["COLLECTOR_DATA_DIR"]] in scratch


@ALL
def test_secrets_come_only_from_the_existing_secret(scenario):
    manifests = rendered(scenario)
    assert not only(manifests, "Secret")
    for spec in pod_specs(manifests):
        for container in spec["containers"]:
            for env in container.get("env", []):
                if env["name"] in SECRET_ENV:
                    assert "value" not in env, env
                    assert env["valueFrom"]["secretKeyRef"]["name"] == "qcc-qc-collector"
    for config in [m.doc for m in manifests if m.kind == "ConfigMap"]:
        assert not SECRET_ENV & set(config.get("data", {}))


def leaves(node: Any, path: str = "") -> list[tuple[str, Any]]:
    if isinstance(node, dict):
        return [leaf for key, value in node.items() for leaf in leaves(value, f"{path}.{key}")]
    return [(path, node)]


def test_values_hold_no_secret_and_comment_every_key():
    text = (CHART / "values.yaml").read_text()
    for path, value in leaves(yaml.safe_load(text)):
        if path.startswith(".secrets.keys."):
            assert re.fullmatch(r"[A-Z][A-Z0-9_]*", value), path  # names of keys, not values
        elif re.search(r"(?i)(password|secret|token)$", path):
            assert value in ("", False, True), path
        if isinstance(value, str):
            assert not re.search(r"://[^/\s:@]+:[^@\s]+@|PRIVATE KEY|^qcc_", value), path
    # Keys inside Kubernetes-shaped objects (resources, probes, security contexts, the
    # HPA's behavior) are Kubernetes' own, and those in label maps and rclone's remote
    # settings are examples; every other key has a comment line right above it.
    k8s_shaped = {"resources", "livenessProbe", "readinessProbe", "startupProbe",
                  "podSecurityContext", "securityContext", "labels", "behavior", "remote"}
    stack: list[tuple[int, str]] = []
    previous = ""
    for line in text.splitlines():
        key = re.match(r"^(\s*)([A-Za-z_][\w]*):", line)
        if key:
            indent = len(key.group(1))
            stack = [(i, k) for i, k in stack if i < indent]
            inside_k8s = any(k in k8s_shaped for _, k in stack)
            if not inside_k8s:
                assert previous.strip().startswith("#"), f"values.yaml: {key.group(2)} has no comment"
            stack.append((indent, key.group(2)))
        if line.strip():
            previous = line


def test_migration_hook_runs_migrate_with_the_owner_url_before_install_and_upgrade():
    (job,) = only(rendered(), "Job", "migration")
    annotations = job["metadata"]["annotations"]
    assert annotations["helm.sh/hook"] == "pre-install,pre-upgrade"
    spec = job["spec"]["template"]["spec"]
    (container,) = spec["containers"]
    assert container["command"] == ["qc-collector", "migrate"]
    env = {e["name"]: e for e in container["env"]}
    for name in ("DATABASE_MIGRATE_URL", "DATABASE_URL"):
        assert env[name]["valueFrom"]["secretKeyRef"]["key"] == "DATABASE_MIGRATE_URL"
    # A pre-install hook runs before the release's own objects exist.
    assert "serviceAccountName" not in spec and "envFrom" not in container
    assert not only(rendered("no-migration"), "Job")


def test_worker_is_on_by_default_runs_the_worker_command_and_serves_no_http():
    default = rendered()
    (api,) = only(default, "Deployment", "api")
    (worker,) = only(default, "Deployment", "worker")
    assert worker["spec"]["replicas"] == 2
    spec = worker["spec"]["template"]["spec"]
    (container,) = spec["containers"]
    assert container["command"] == ["qc-collector", "worker"]
    # no HTTP server in the worker: no port, no HTTP probe, no Service or PDB selecting it
    assert "ports" not in container
    assert not {"livenessProbe", "readinessProbe", "startupProbe"} & set(container)
    pod_labels = worker["spec"]["template"]["metadata"]["labels"]
    for selector in ([s["spec"]["selector"] for s in only(default, "Service")]
                     + [p["spec"]["selector"]["matchLabels"] for p in only(default, "PodDisruptionBudget")]):
        assert not selector.items() <= pod_labels.items()
    # the same locked-down runtime as the API
    api_spec = api["spec"]["template"]["spec"]
    assert spec["securityContext"] == api_spec["securityContext"]
    assert container["securityContext"] == api_spec["containers"][0]["securityContext"]
    assert {"name": "tmp", "emptyDir": {}} in spec["volumes"]
    assert container["envFrom"] == api_spec["containers"][0]["envFrom"]  # the same ConfigMap
    assert spec["terminationGracePeriodSeconds"] >= 30  # time to finish running jobs
    assert not only(rendered("no-worker"), "Deployment", "worker")
    (tuned,) = only(rendered("worker"), "Deployment", "worker")
    assert tuned["spec"]["replicas"] == 3


def export_volume(deployment: dict[str, Any], export_dir: str) -> dict[str, Any]:
    """The volume a Deployment's container mounts at EXPORT_DIR."""
    spec = deployment["spec"]["template"]["spec"]
    (container,) = spec["containers"]
    (name,) = [m["name"] for m in container["volumeMounts"] if m["mountPath"] == export_dir]
    (volume,) = [v for v in spec["volumes"] if v["name"] == name]
    return volume


@pytest.mark.parametrize(("scenario", "claim"), [
    ("default", "qcc-qc-collector-exports"), ("worker", "qcc-qc-collector-exports"),
    ("exports-persistence", "qcc-qc-collector-exports"),
    ("exports-existing-claim", "qc-collector-exports"),
])
def test_api_and_worker_mount_the_same_claim_at_export_dir(scenario, claim):
    manifests = rendered(scenario)
    (config,) = [c for c in only(manifests, "ConfigMap") if "EXPORT_DIR" in c["data"]]
    export_dir = config["data"]["EXPORT_DIR"]
    (api,) = only(manifests, "Deployment", "api")
    (worker,) = only(manifests, "Deployment", "worker")
    for deployment in (api, worker):
        volume = export_volume(deployment, export_dir)
        assert volume["persistentVolumeClaim"] == {"claimName": claim}, deployment["metadata"]["name"]
    created = only(manifests, "PersistentVolumeClaim", "exports")
    if scenario == "exports-existing-claim":
        assert not created
    else:
        (pvc,) = created
        assert pvc["metadata"]["name"] == claim
        assert "ReadWriteMany" in pvc["spec"]["accessModes"]
        assert "helm.sh/resource-policy" not in pvc["metadata"].get("annotations", {})
    if scenario == "exports-persistence":
        assert export_dir == "/exports"
        assert created[0]["spec"]["storageClassName"] == "nfs-client"
        assert created[0]["spec"]["resources"]["requests"]["storage"] == "50Gi"


def test_the_worker_is_refused_without_shared_export_storage():
    values = load_values(CHART / "ci" / "default-values.yaml")
    with pytest.raises(Exception, match=re.escape("worker.enabled needs exports.persistence.enabled")):
        render({**values, "exports": {"persistence": {"enabled": False}}})
    # without the worker, EXPORT_DIR is a per-pod emptyDir (writable on the read-only root)
    manifests = rendered("no-worker")
    assert not only(manifests, "PersistentVolumeClaim", "exports")
    (config,) = only(manifests, "ConfigMap")
    (api,) = only(manifests, "Deployment", "api")
    assert "emptyDir" in export_volume(api, config["data"]["EXPORT_DIR"])


def env_sample() -> dict[str, str]:
    text = (ROOT / "config" / "collector.env.sample").read_text()
    return dict(re.findall(r"^#?([A-Z][A-Z0-9_]*)=(.*)$", text, flags=re.M))


def test_config_map_carries_the_job_settings_with_the_sample_defaults():
    (config,) = only(rendered(), "ConfigMap")
    sample = env_sample()
    for name in JOB_SETTINGS:
        assert config["data"][name] == sample[name], name
    assert config["data"]["EXPORT_DIR"] == config["data"]["COLLECTOR_DATA_DIR"] + "/exports"
    (tuned,) = [c for c in only(rendered("exports-persistence"), "ConfigMap")]
    assert tuned["data"]["EXPORT_MAX_ROWS"] == "5000000"  # not 5e+06


def container_env(manifests: list[Manifest], component: str) -> dict[str, Any]:
    (deployment,) = only(manifests, "Deployment", component)
    return {e["name"]: e for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]}


def test_export_sign_secret_comes_from_the_secret_and_signing_secrets_only_to_the_api():
    api = container_env(rendered(), "api")
    ref = api["EXPORT_SIGN_SECRET"]["valueFrom"]["secretKeyRef"]
    # production (the default): the pod does not start without it, like SIGNING_KEY
    assert ref == {"name": "qcc-qc-collector", "key": "EXPORT_SIGN_SECRET", "optional": False}
    assert api["SIGNING_KEY"]["valueFrom"]["secretKeyRef"]["optional"] is False
    development = container_env(render({"config": {"environment": "development"}}), "api")
    assert development["EXPORT_SIGN_SECRET"]["valueFrom"]["secretKeyRef"]["optional"] is True
    # the worker signs nothing and authenticates nobody: the database, and what alert
    # delivery needs (the key that opens channel secrets, the system alerts' targets)
    worker = container_env(rendered(), "worker")
    assert set(worker) == {"DATABASE_URL", "DATABASE_READ_URL", "ENCRYPTION_KEY",
                           "ENCRYPTION_KEYS_OLD", *ALERT_DELIVERY_SECRETS}
    assert worker["DATABASE_URL"]["valueFrom"]["secretKeyRef"]["key"] == "DATABASE_URL"
    # the API never sends a notification: it gets none of the delivery secrets
    assert not ALERT_DELIVERY_SECRETS & set(api)


@pytest.mark.parametrize("scenario", ["default", "alerts", "worker"])
def test_encryption_key_reaches_api_and_worker_from_the_secret_required_in_production(scenario):
    manifests = rendered(scenario)
    key = "QCC_ENCRYPTION_KEY" if scenario == "alerts" else "ENCRYPTION_KEY"
    for component in ("api", "worker"):
        env = container_env(manifests, component)
        # the API seals channel secrets, the worker's dispatcher opens them: one key
        assert env["ENCRYPTION_KEY"]["valueFrom"]["secretKeyRef"] == {
            "name": "qcc-qc-collector", "key": key, "optional": False}, component


def test_encryption_key_is_optional_outside_production_and_absent_without_the_dispatcher():
    development = render({"config": {"environment": "development"}})
    for component in ("api", "worker"):
        ref = container_env(development, component)["ENCRYPTION_KEY"]["valueFrom"]["secretKeyRef"]
        assert ref["optional"] is True, component
    manifests = rendered("no-alert-dispatch")
    (config,) = only(manifests, "ConfigMap")
    assert config["data"]["ALERT_DISPATCH"] == "false"
    worker = container_env(manifests, "worker")
    assert "ENCRYPTION_KEY" not in worker  # no dispatcher: nothing to open
    assert ALERT_DELIVERY_SECRETS <= set(worker)  # "database unreachable" is sent directly
    assert "ENCRYPTION_KEY" in container_env(manifests, "api")  # rules are still created
    production = render({"config": {"alerts": {"dispatch": False}}})
    assert "ENCRYPTION_KEY" not in container_env(production, "worker")
    ref = container_env(production, "api")["ENCRYPTION_KEY"]["valueFrom"]["secretKeyRef"]
    assert ref["optional"] is False


def test_alert_delivery_secrets_are_optional_references_for_the_worker():
    worker = container_env(rendered("alerts"), "worker")
    expected = {"SMTP_PASSWORD": "QCC_SMTP_PASSWORD", "SLACK_WEBHOOK_URL": "QCC_SLACK_WEBHOOK_URL",
                "PAGERDUTY_INTEGRATION_KEY": "QCC_PAGERDUTY_ROUTING_KEY"}
    for name, key in expected.items():
        assert worker[name]["valueFrom"]["secretKeyRef"] == {
            "name": "qcc-qc-collector", "key": key, "optional": True}, name


def alert_env_names() -> set[str]:
    """Every alert setting app/config.py reads (the variables its Settings declares)."""
    from app.config import ENV_NAMES

    names = set(ENV_NAMES.values())
    alert = re.compile(r"(ALERT|SMTP_|SLACK_|PAGERDUTY_|EMAIL_|SYSTEM_ALERT|ENCRYPTION_)")
    return {n for n in names if alert.match(n)}


def test_config_map_carries_the_alert_settings_with_the_sample_defaults():
    (config,) = only(rendered(), "ConfigMap")
    sample = env_sample()
    secret = SECRET_ENV & alert_env_names()
    assert secret == {"ENCRYPTION_KEY", "ENCRYPTION_KEYS_OLD", *ALERT_DELIVERY_SECRETS}
    settings = alert_env_names() - secret
    assert "ALERT_DEDUP_WINDOW" in settings and "SMTP_STARTTLS" in settings
    for name in settings:
        assert name in config["data"], name
        if config["data"][name]:  # empty: unset (SMTP_HOST, SMTP_USERNAME, EMAIL_RECIPIENTS)
            assert config["data"][name] == sample[name], name
    # every alert setting reaches the worker: the ConfigMap, or a secret reference
    worker = container_env(rendered(), "worker")
    assert secret <= set(worker)
    (tuned,) = only(rendered("alerts"), "ConfigMap")
    assert tuned["data"]["EMAIL_RECIPIENTS"] == "sre@example.com,oncall@example.com"
    assert tuned["data"]["ALERT_DB_SIZE_BYTES"] == "107374182400"  # not 1.073741824e+11
    assert tuned["data"]["SMTP_HOST"] == "smtp.example.com"
    assert not ALERT_DELIVERY_SECRETS & set(tuned["data"])


def test_config_map_alert_settings_are_accepted_by_the_service():
    from app import config as app_config

    for scenario in ("default", "alerts", "no-alert-dispatch"):
        (config,) = only(rendered(scenario), "ConfigMap")
        settings = app_config.load(dict(config["data"]))
        assert settings.alert_dedup_window == int(config["data"]["ALERT_DEDUP_WINDOW"])
    (tuned,) = only(rendered("alerts"), "ConfigMap")
    settings = app_config.load(dict(tuned["data"]))
    assert settings.email_recipients == ("sre@example.com", "oncall@example.com")
    assert settings.smtp_starttls is False and settings.alert_poll_seconds == 0.5
    assert settings.alert_db_size_bytes == 107374182400


def test_alerts_encode_the_slos_and_rollback_triggers_on_the_real_metrics():
    (rule,) = only(rendered("prometheusrule"), "PrometheusRule")
    rules = {r.get("alert") or r["record"]: r for g in rule["spec"]["groups"] for r in g["rules"]}
    expected = {
        "QCCollectorIngestLatencySLO": "> 1.5", "QCCollectorErrorsPerMinuteSLO": "> 3",
        "QCCollectorServerErrorRatioSLO": "> 0.01", "QCCollectorRollbackServerErrors": "> 0.02",
        "QCCollectorRollbackIngestLatency": "> 2", "QCCollectorRollbackErrorsPerMinute": "> 5",
    }
    for alert, threshold in expected.items():
        assert rules[alert]["expr"].endswith(threshold), rules[alert]["expr"]
    assert rules["QCCollectorRollbackServerErrors"]["expr"].startswith("qcc:http_server_error_ratio:rate10m")
    assert "[10m]" in rules["qcc:http_server_error_ratio:rate10m"]["expr"]
    p95 = rules["qcc:ingest_latency_seconds:p95_rate5m"]["expr"]
    # single ingest only (batches have their own objective), API operations only
    assert 'kind="api",operation="ingest.ingest_report"}' in p95
    assert "qcc_http_request_duration_seconds_bucket" in p95
    batch = rules["qcc:batch_ingest_latency_seconds:p95_rate5m"]["expr"]
    assert 'kind="api",operation="ingest.ingest_batch"}' in batch
    assert 'kind="api",status=~"5.."' in rules["qcc:http_server_errors:per_minute_rate5m"]["expr"]
    assert "QCCollectorNoReports" in rules  # extraRules are appended


def test_service_monitor_scrapes_metrics_with_the_token_from_the_secret():
    (monitor,) = only(rendered("servicemonitor"), "ServiceMonitor")
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["path"] == "/metrics" and endpoint["port"] == "http"
    assert endpoint["authorization"]["credentials"] == {"name": "qcc-qc-collector", "key": "METRICS_TOKEN"}


def test_dashboard_config_map_carries_the_grafana_json():
    (config,) = [m.doc for m in rendered("dashboard")
                 if m.kind == "ConfigMap" and "qc-collector.json" in m.doc["data"]]
    assert config["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(config["data"]["qc-collector.json"])["uid"] == "qc-collector"


def test_backup_cronjob_runs_the_repository_script_daily_onto_a_kept_claim():
    manifests = rendered("backup")
    (cron,) = only(manifests, "CronJob")
    assert cron["spec"]["schedule"] == "0 2 * * *"
    (container,) = cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e for e in container["env"]}
    assert env["BACKUP_RETENTION_DAYS"]["value"] == "30"
    assert env["DATABASE_URL"]["valueFrom"]["secretKeyRef"]["key"] == "DATABASE_MIGRATE_URL"
    (script,) = [m.doc for m in manifests
                 if m.kind == "ConfigMap" and "backup-db.sh" in m.doc.get("data", {})]
    assert script["data"]["backup-db.sh"] == (ROOT / "tools" / "backup-db.sh").read_text().rstrip("\n")
    (claim,) = only(manifests, "PersistentVolumeClaim", "backup")
    assert claim["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    assert not only(rendered("backup-existing-claim"), "PersistentVolumeClaim", "backup")


def test_helm_test_runs_the_go_live_smoke_against_the_service():
    (pod,) = only(rendered(), "Pod")
    assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    (container,) = pod["spec"]["containers"]
    assert container["command"] == ["qc-collector", "smoke", "--url", "http://qcc-qc-collector.qc.svc:80"]
    assert container["env"][0]["valueFrom"]["secretKeyRef"]["key"] == "SMOKE_API_KEY"
    assert not only(rendered("no-smoke-test"), "Pod")


def test_every_toggle_has_a_ci_scenario():
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    toggles = {"worker", "autoscaling", "podDisruptionBudget", "migration", "serviceMonitor",
               "prometheusRule", "dashboard", "backup"}
    assert {k for k, v in values.items() if isinstance(v, dict) and "enabled" in v} == toggles
    scenario_text = "\n".join(p.read_text() for p in scenarios())
    for toggle in [*toggles, "smoke", "exports", "persistence", "existingClaim", "alerts", "dispatch"]:
        assert re.search(rf"^{toggle}:|^\s+{toggle}:", scenario_text, flags=re.M), toggle


def test_rollouts_keep_serving_through_prestop_and_spread_over_zones_and_nodes():
    default = rendered()
    (api,) = only(default, "Deployment", "api")
    spec = api["spec"]["template"]["spec"]
    container = spec["containers"][0]
    assert container["lifecycle"]["preStop"]["exec"]["command"] == ["sleep", "10"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["GUNICORN_CMD_ARGS"] == "--graceful-timeout 15"
    assert 10 + 15 + 5 <= spec["terminationGracePeriodSeconds"]
    (worker,) = only(default, "Deployment", "worker")
    for deployment in (api, worker):
        keys = [c["topologyKey"] for c in deployment["spec"]["template"]["spec"]["topologySpreadConstraints"]]
        assert keys == ["topology.kubernetes.io/zone", "kubernetes.io/hostname"]
    assert worker["spec"]["strategy"]["rollingUpdate"]["maxSurge"] == 0


def test_hpa_scales_on_cpu_with_memory_as_a_guard_and_slow_scale_down():
    (hpa,) = only(rendered(), "HorizontalPodAutoscaler")
    metrics = {m["resource"]["name"]: m["resource"]["target"]["averageUtilization"]
               for m in hpa["spec"]["metrics"]}
    assert metrics == {"cpu": 70, "memory": 90}
    assert hpa["spec"]["behavior"]["scaleDown"]["stabilizationWindowSeconds"] >= 300
    (tuned,) = only(rendered("hpa-behavior"), "HorizontalPodAutoscaler")
    assert [m["resource"]["name"] for m in tuned["spec"]["metrics"]] == ["cpu"]
    assert tuned["spec"]["behavior"]["scaleDown"]["stabilizationWindowSeconds"] == 600


def test_monitoring_renders_where_the_crds_exist_and_nowhere_else():
    assert only(rendered(), "ServiceMonitor") and only(rendered(), "PrometheusRule")
    bare = render({}, api_versions=())
    assert not [m for m in bare if m.kind in ("ServiceMonitor", "PrometheusRule")]
    assert [m for m in bare if m.kind == "ConfigMap" and "qc-collector.json" in m.doc.get("data", {})]
    assert only(bare, "CronJob")  # backups on by default


def test_pooler_and_replica_urls_come_from_the_secret():
    api = container_env(rendered("pooler"), "api")
    assert api["DATABASE_URL"]["valueFrom"]["secretKeyRef"]["key"] == "DATABASE_POOLER_URL"
    replica = container_env(rendered("read-replica"), "worker")
    assert replica["DATABASE_READ_URL"]["valueFrom"]["secretKeyRef"]["key"] == "QCC_DATABASE_READ_URL"
    (migration,) = [m.doc for m in rendered("pooler") if m.kind == "Job"
                    and "migrat" in m.doc["metadata"]["name"]]
    env = {e["name"]: e for e in migration["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["DATABASE_URL"]["valueFrom"]["secretKeyRef"]["key"] == "DATABASE_MIGRATE_URL"
