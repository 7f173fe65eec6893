"""Spec-lint gate: Redocly (`recommended`), Spectral (`spectral:oas`) and Spectral's OWASP
ruleset over the document a real server serves at /openapi.json.

The npm tools are pinned in tools/contract-lint/package-lock.json and installed there
with `npm ci` (node_modules is git-ignored; re-installed when the lock file changes).
Redocly and spectral:oas must report 0 errors and 0 warnings; the OWASP ruleset
(tools/contract-lint/owasp.yaml, which lists each rule turned off and why) 0 errors and
0 warnings too. `--file PATH` lints a file instead of starting a server.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

LINT = ROOT / "tools" / "contract-lint"
BIN = LINT / "node_modules" / ".bin"
STAMP = LINT / "node_modules" / ".installed-lock"
ENV = {**os.environ, "REDOCLY_TELEMETRY": "off", "REDOCLY_SUPPRESS_NOTIFICATIONS": "true",
       "SCARF_ANALYTICS": "false", "DO_NOT_TRACK": "1", "NO_COLOR": "1"}


def npm_ci() -> None:
    lock = (LINT / "package-lock.json").read_text()
    if STAMP.exists() and STAMP.read_text() == lock:
        return
    subprocess.run(["npm", "ci", "--ignore-scripts", "--no-audit", "--no-fund",
                    "--loglevel=error"], cwd=LINT, env=ENV, check=True)
    STAMP.write_text(lock)


def served_document(dest: Path) -> None:
    from tools.liveserver import start_database, start_server

    work = Path(tempfile.mkdtemp(prefix="qcc-speclint-"))
    db = start_database(work / "db")
    try:
        server = start_server(db, run_dir=work / "server", workers=1)
        try:
            answer = httpx.get(f"{server.url}/openapi.json", timeout=30)
            answer.raise_for_status()
            dest.write_bytes(answer.content)
        finally:
            server.stop()
    finally:
        db.stop()
        shutil.rmtree(work, ignore_errors=True)


def redocly(doc: Path) -> tuple[int, int]:
    result = subprocess.run(
        [str(BIN / "redocly"), "lint", str(doc), "--config", str(LINT / "redocly.yaml"),
         "--format", "json"], env=ENV, capture_output=True, text=True, check=False)
    try:
        totals = json.loads(result.stdout)["totals"]
    except (ValueError, KeyError):
        print(result.stdout, result.stderr)
        return 1, 0
    if totals["errors"] or totals["warnings"]:
        subprocess.run([str(BIN / "redocly"), "lint", str(doc), "--config",
                        str(LINT / "redocly.yaml"), "--format", "codeframe"], env=ENV,
                       check=False)
    return totals["errors"], totals["warnings"]


def spectral(doc: Path, ruleset: str) -> tuple[int, int]:
    result = subprocess.run(
        [str(BIN / "spectral"), "lint", str(doc), "--ruleset", str(LINT / ruleset),
         "--format", "json", "--quiet", "--fail-severity", "error"],
        env=ENV, capture_output=True, text=True, check=False, cwd=LINT)
    try:
        # nothing found: an empty answer and exit 0; a missing file: exit 2
        found = json.loads(result.stdout or ("[]" if result.returncode == 0 else "?"))
    except ValueError:
        print(result.stdout, result.stderr)
        return 1, 0
    for item in found:
        where = "/".join(str(p) for p in item["path"])
        level = {0: "error", 1: "warning"}.get(item["severity"], "info")
        print(f"  {level} {item['code']}: {where}: {item['message']}")
    errors = sum(1 for item in found if item["severity"] == 0)
    warnings = sum(1 for item in found if item["severity"] == 1)
    return errors, warnings


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--file", type=Path, help="lint this document instead of a served one")
    args = parser.parse_args()
    npm_ci()
    # Spectral's `overrides` globs are relative to the ruleset: lint a copy kept beside it.
    with tempfile.TemporaryDirectory(dir=LINT, prefix="served-") as tmp:
        doc = Path(tmp) / "openapi.json"
        if args.file is None:
            served_document(doc)
        else:
            shutil.copyfile(args.file, doc)
        size = doc.stat().st_size
        refs = doc.read_text().count('"$ref"')
        print(f"linting {'the served /openapi.json' if args.file is None else args.file}: "
              f"{size} bytes, {refs} $ref")
        failed = False
        for name, (errors, warnings) in (
            ("redocly recommended", redocly(doc)),
            ("spectral spectral:oas", spectral(doc, "spectral-oas.yaml")),
            ("spectral owasp", spectral(doc, "owasp.yaml")),
        ):
            print(f"{name}: {errors} errors, {warnings} warnings")
            failed = failed or bool(errors or warnings)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
