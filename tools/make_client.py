"""`make client`: generate a Python client (openapi-python-client, pinned in pyproject.toml)
from the spec a server serves at /openapi.json, into var/client/qcc_client (git-ignored).

    python tools/make_client.py                  start a server on a fresh database, generate
    python tools/make_client.py --url URL        generate from a running server
    python tools/make_client.py --out DIR        put the package somewhere else
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

CONFIG = ROOT / "tools" / "client-config.yaml"
OUT = ROOT / "var" / "client"
PACKAGE = "qcc_client"


def generate(spec_url: str, out: Path) -> Path:
    """Fetch the served document and generate the client package; returns its folder."""
    out.mkdir(parents=True, exist_ok=True)
    spec = out / "openapi.json"
    answer = httpx.get(spec_url, timeout=30)
    answer.raise_for_status()
    spec.write_bytes(answer.content)
    target = out / PACKAGE
    shutil.rmtree(target, ignore_errors=True)
    bin_dir = Path(sys.executable).parent
    result = subprocess.run(
        [str(bin_dir / "openapi-python-client"), "generate", "--path", str(spec),
         "--config", str(CONFIG), "--meta", "none", "--output-path", str(target),
         "--overwrite"],
        # its post-generation hook formats with ruff, found on PATH (our pinned one)
        env={**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"},
        capture_output=True, text=True, check=False)
    if result.returncode != 0 or "Warning" in result.stdout or not target.is_dir():
        raise RuntimeError(f"openapi-python-client failed or warned:\n{result.stdout}\n"
                           f"{result.stderr}")
    return target


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="base URL of a running server")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    if args.url:
        target = generate(f"{args.url.rstrip('/')}/openapi.json", args.out)
    else:
        from tools.liveserver import start_database, start_server

        work = Path(tempfile.mkdtemp(prefix="qcc-client-"))
        db = start_database(work / "db")
        try:
            server = start_server(db, run_dir=work / "server", workers=1)
            try:
                target = generate(f"{server.url}/openapi.json", args.out)
            finally:
                server.stop()
        finally:
            db.stop()
            shutil.rmtree(work, ignore_errors=True)
    models = len([p for p in (target / "models").glob("*.py") if p.name != "__init__.py"])
    print(f"wrote {target} ({models} models); use it with PYTHONPATH={target.parent}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
