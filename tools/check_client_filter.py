"""Team constant 1: the console never filters, sorts, reduces or counts API data.

Scans the console's code (app/console/*.js and *.html) for `.filter(`, `.sort(`,
`.toSorted(`, `.reduce(`, `.reduceRight(` and `.length`: filtering, ordering, paging and
aggregation belong to the server. A line may use one of them only for a pure UI need
(e.g. the top of the page's own cursor stack, a bar's width) and must then say so with a
`// ui-only: <why>` comment; at most MAX_ALLOWED such lines exist, so the allow-list stays
narrow and reviewed.

The chart library in app/console/vendor/ is not scanned (it is not our code): it is
pinned instead. Each vendored file must match the sha256 recorded in VENDORED below (the
dist file of the named npm release) and sit next to its licence; any other file there
fails the check. Upgrading = copy the new dist file and licence, update VENDORED.

    .venv/bin/python tools/check_client_filter.py [folder]
"""

from __future__ import annotations

import hashlib
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CONSOLE = ROOT / "app" / "console"
FORBIDDEN = re.compile(r"\.(filter|sort|toSorted|reduce|reduceRight)\s*\(|\.length\b")
ALLOW = re.compile(r"//\s*ui-only:\s*\S")
MAX_ALLOWED = 5
# file in app/console/vendor/ -> (npm package@version and its dist file, sha256)
VENDORED = {
    "echarts-6.1.0.common.min.js": (
        "echarts@6.1.0 dist/echarts.common.min.js",
        "61f13280aba3161f77fc801bf5f9c786f55f10432153a0683fc5cc0700b013d5"),
    "ECHARTS-LICENSE.txt": (
        "echarts@6.1.0 LICENSE (Apache-2.0)",
        "634293835b43a6dd2094fa39182a3d9a6b9ca43b7fdb9ac354e8037af2a3093a"),
    "ECHARTS-NOTICE.txt": (
        "echarts@6.1.0 NOTICE",
        "d491d358344f842685c1b1585970999db65fe30ecf7ef3867af8814f4016c016"),
}


def check_vendored(folder: Path) -> list[str]:
    problems: list[str] = []
    vendor = folder / "vendor"
    present = {p.name for p in vendor.iterdir() if p.is_file()} if vendor.is_dir() else set()
    for name in sorted(present - VENDORED.keys()):
        problems.append(f"vendor/{name}: not a pinned file (add it to VENDORED with its sha256)")
    for name, (origin, expected) in VENDORED.items():
        path = vendor / name
        if not path.is_file():
            problems.append(f"vendor/{name}: missing ({origin})")
            continue
        actual = hashlib.sha256(path.read_bytes()).hexdigest()
        if actual != expected:
            problems.append(f"vendor/{name}: sha256 {actual} is not the pinned {origin} "
                            f"({expected})")
    return problems


def check(folder: Path = CONSOLE) -> list[str]:
    problems: list[str] = []
    allowed = 0
    files = sorted([*folder.glob("*.js"), *folder.glob("*.html")])
    if not files:
        return [f"{folder}: no console code found"]
    for path in files:
        for number, line in enumerate(path.read_text().splitlines(), 1):
            found = FORBIDDEN.search(line)
            if not found:
                continue
            if ALLOW.search(line):
                allowed += 1
                continue
            problems.append(f"{path.name}:{number}: `{found.group(0)}` — the server filters, "
                            "sorts, pages and counts (mark a pure UI need `// ui-only: why`)")
    if allowed > MAX_ALLOWED:
        problems.append(f"{allowed} `ui-only` exceptions; at most {MAX_ALLOWED}: move the work "
                        "to the server")
    if folder == CONSOLE:
        problems += check_vendored(folder)
    return problems


def main(argv: list[str]) -> int:
    folder = Path(argv[1]) if len(argv) > 1 else CONSOLE
    problems = check(folder)
    for problem in problems:
        print(problem)
    if problems:
        print(f"\nconsole filters or counts in the browser ({len(problems)} problem(s))")
        return 1
    print("console: no client-side filtering, sorting, reducing or counting; "
          f"{len(VENDORED)} vendored files match their pinned sha256")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
