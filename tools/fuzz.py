"""Fuzz gate: schemathesis against a real gunicorn server on a real PostgreSQL.

Every operation, positive and negative data, stateful links, every check — including
positive_data_acceptance: what the schema accepts, the server accepts, except the rules
listed with their reasons in tools/fuzz_exceptions.py. Two runs: the fixed seed (CI stays
reproducible) and one fresh random seed (printed; replay it with FUZZ_SEED=<n>, which
then replaces both). FUZZ_EXAMPLES sets the examples per operation (default 100;
`make fuzz-long` uses 1000). Extra schemathesis options may follow on the command line.
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tools.liveserver import key_for, start_database, start_server  # noqa: E402

FIXED_SEED = "20261121"
RESULTS = ROOT / "var" / "test-results"


def tally(output: str, returncode: int) -> dict[str, int]:
    """The schemathesis test cases of one run, as `make test` counts them."""
    line = next((ln for ln in reversed(output.splitlines()) if " generated" in ln), "")
    numbers = {word: int(n) for n, word in re.findall(r"(\d+) (generated|passed|skipped)", line)}
    generated = numbers.get("generated", 0)
    passed, skipped = numbers.get("passed", 0), numbers.get("skipped", 0)
    failed = max(generated - passed, 0)
    if returncode != 0 and failed == 0:
        failed = 1
    return {"passed": passed, "failed": failed, "skipped": skipped}


def write_tally(runs: list[dict[str, int]]) -> None:
    """Every run's cases summed into var/test-results/fuzz.json (read by tools/test_all.py)."""
    total = {key: sum(run[key] for run in runs) for key in ("passed", "failed", "skipped")}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "fuzz.json").write_text(json.dumps(total))


def seeds() -> list[str]:
    if os.environ.get("FUZZ_SEED"):
        return [os.environ["FUZZ_SEED"]]
    return [FIXED_SEED, str(random.SystemRandom().randrange(1, 2**31))]


def run_once(server_url: str, seed: str, work: Path) -> tuple[int, str]:
    examples = os.environ.get("FUZZ_EXAMPLES", "100")
    command = [
        sys.executable, "-m", "schemathesis.cli", "run", f"{server_url}/openapi.json",
        "--checks", "all",
        "--max-examples", examples,
        "--header", f"X-Api-Key: {key_for('acme', 'admin')}",
        # a random X-Tenant is (rightly) 403; pin it to the key's tenant
        "--header", "X-Tenant: acme",
        "--generation-database", "none",
        "--seed", seed,
        # one worker: CPython 3.11's ast.parse (used by hypothesis) is not
        # thread-safe ("AST constructor recursion depth mismatch")
        "--workers", "1",
        "--no-color",
        "--report", "junit", "--report-dir", str(work / f"report-{seed}"),
        *sys.argv[1:],
    ]
    env = {**os.environ, "SCHEMATHESIS_HOOKS": "tools.fuzz_exceptions",
           "FUZZ_EXCEPTIONS_LOG": str(work / f"exceptions-{seed}.log")}
    print(f"\n== schemathesis, seed {seed} ({examples} examples per operation; "
          f"replay: FUZZ_SEED={seed} tox -e fuzz) ==", flush=True)
    result = subprocess.run(command, cwd=ROOT, check=False, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env=env)
    print(result.stdout, end="", flush=True)
    log = work / f"exceptions-{seed}.log"
    if log.exists():
        counts: dict[str, int] = {}
        for reason in log.read_text().splitlines():
            counts[reason] = counts.get(reason, 0) + 1
        print("excused by tools/fuzz_exceptions.py (rules the schema cannot state):")
        for reason, n in sorted(counts.items()):
            print(f"  {n:5d}  {reason}")
    return result.returncode, result.stdout


def main() -> int:
    work = Path(tempfile.mkdtemp(prefix="qcc-fuzz-"))
    db = start_database(work / "db")
    runs: list[dict[str, int]] = []
    worst = 0
    try:
        server = start_server(db, run_dir=work / "server")
        try:
            for seed in seeds():
                returncode, output = run_once(server.url, seed, work)
                runs.append(tally(output, returncode))
                if returncode != 0:
                    worst = returncode
                    print(f"\nseed {seed} FAILED; replay: FUZZ_SEED={seed} tox -e fuzz")
                    tail = server.log().splitlines()[-40:]
                    print("last server log lines:\n" + "\n".join(tail))
            write_tally(runs)
            return worst
        finally:
            server.stop()
    finally:
        db.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
