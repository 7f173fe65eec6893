"""Writes the CycloneDX SBOM of QC Collector's runtime dependencies (the security gate).

The runtime set is requirements.lock — hash-locked, exactly what the image installs and
what CI's pip-audit audits. Without it (an older checkout), the closure of
pyproject.toml's [project] dependencies (extras and markers honoured) over what is
installed here, each at its installed version, not the development tools that share the
.venv. cyclonedx-bom (`cyclonedx-py requirements`) turns the pinned list into the SBOM.

    python tools/sbom.py [--output var/sbom/qc-collector.cdx.json]
"""

from __future__ import annotations

import argparse
import importlib.metadata as metadata
import re
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent


def runtime_closure(requirements: list[str]) -> dict[str, str]:
    """name -> installed version for every distribution the requirements pull in."""
    found: dict[str, str] = {}
    pending = [(Requirement(r), frozenset[str]()) for r in requirements]
    while pending:
        requirement, extras = pending.pop()
        marker_env = [{"extra": e} for e in extras] or [{"extra": ""}]
        if requirement.marker and not any(requirement.marker.evaluate(env) for env in marker_env):
            continue
        name = canonicalize_name(requirement.name)
        try:
            dist = metadata.distribution(requirement.name)
        except metadata.PackageNotFoundError:
            raise SystemExit(f"{requirement.name} is required but not installed") from None
        wanted = frozenset(requirement.extras)
        seen = found.get(name)
        if seen is not None and not wanted - _extras_done.get(name, frozenset()):
            continue
        found[name] = dist.version
        _extras_done[name] = _extras_done.get(name, frozenset()) | wanted
        for raw in dist.requires or []:
            pending.append((Requirement(raw), wanted))
    return found


_extras_done: dict[str, frozenset[str]] = {}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=ROOT / "var" / "sbom" / "qc-collector.cdx.json")
    args = parser.parse_args()
    args.output.parent.mkdir(parents=True, exist_ok=True)
    lock = ROOT / "requirements.lock"
    if lock.is_file():
        text = lock.read_text()
        count = sum(1 for line in text.splitlines() if re.match(r"^[A-Za-z0-9]", line))
        source, temporary = lock, False
    else:
        project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
        pins = runtime_closure(project["dependencies"])
        count = len(pins)
        with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as listing:
            listing.write("".join(f"{name}=={version}\n" for name, version in sorted(pins.items())))
        source, temporary = Path(listing.name), True
    try:
        # (its warning about the root component's dependency graph is noise here)
        subprocess.run([sys.executable, "-W", "ignore::UserWarning", "-m", "cyclonedx_py",
                        "requirements", str(source),
                        "--pyproject", str(ROOT / "pyproject.toml"), "--of", "JSON",
                        "--output-reproducible", "-o", str(args.output)], check=True)
    finally:
        if temporary:
            source.unlink(missing_ok=True)
    print(f"SBOM of {count} runtime packages ({source.name if not temporary else 'installed closure'})"
          f" written to {args.output.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
