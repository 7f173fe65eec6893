"""The chart's alert rules fire on the right things and stay quiet on the rest:
`promtool test rules` (Debian's prometheus package) over the rendered PrometheusRule and
the crafted series in tests/ops/promtool/alerts.test.yml."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import yaml

from tools.check_ops import render

CASES = Path(__file__).parent / "promtool" / "alerts.test.yml"


def rendered_rules() -> dict:
    rules = [m.doc for m in render({}) if m.kind == "PrometheusRule"]
    assert len(rules) == 1, "the default values render one PrometheusRule (CRDs present)"
    groups = rules[0]["spec"]["groups"]
    for group in groups:
        for rule in group["rules"]:
            rule.pop("annotations", None)  # checked by the ops gate, not compared here
    return {"groups": groups}


def test_every_alert_fires_and_stays_quiet_on_crafted_series(tmp_path):
    promtool = shutil.which("promtool")
    assert promtool, "promtool is missing: apt-get install prometheus (.ci/run does)"
    rules = rendered_rules()
    (tmp_path / "rules.yml").write_text(yaml.safe_dump(rules, sort_keys=False))
    shutil.copy(CASES, tmp_path / CASES.name)
    done = subprocess.run([promtool, "test", "rules", CASES.name], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    # every alert of the chart has at least one case
    alerts = {r["alert"] for g in rules["groups"] for r in g["rules"] if "alert" in r}
    tested = {case["alertname"] for test in yaml.safe_load(CASES.read_text())["tests"]
              for case in test.get("alert_rule_test", [])}
    assert alerts - tested == set()
