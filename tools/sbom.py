"""Writes the CycloneDX SBOM of QC Collector's runtime dependencies (the security gate).

The runtime set is the closure of pyproject.toml's [project] dependencies (extras and
environment markers honoured) over what is installed in this environment, each at its
installed version — not the development tools that share the .venv. cyclonedx-bom
(`cyclonedx-py requirements`) turns that pinned list into the SBOM.

    python tools/sbom.py [--output var/sbom/qc-collector.cdx.json]
"""

from __future__ import annotations

import argparse
import importlib.metadata as metadata
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
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pins = runtime_closure(project["dependencies"])
    args.output.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as listing:
        listing.write("".join(f"{name}=={version}\n" for name, version in sorted(pins.items())))
    try:
        # (its warning about the root component's dependency graph is noise here)
        subprocess.run([sys.executable, "-W", "ignore::UserWarning", "-m", "cyclonedx_py",
                        "requirements", listing.name,
                        "--pyproject", str(ROOT / "pyproject.toml"), "--of", "JSON",
                        "--output-reproducible", "-o", str(args.output)], check=True)
    finally:
        Path(listing.name).unlink(missing_ok=True)
    print(f"SBOM of {len(pins)} runtime packages written to {args.output.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
