"""Team constant 1: the console never filters, sorts, reduces or counts API data.

Scans the console's code (app/console/*.js and *.html) for `.filter(`, `.sort(`,
`.toSorted(`, `.reduce(`, `.reduceRight(` and `.length`: filtering, ordering, paging and
aggregation belong to the server. A line may use one of them only for a pure UI need
(e.g. the top of the page's own cursor stack, a bar's width) and must then say so with a
`// ui-only: <why>` comment; at most MAX_ALLOWED such lines exist, so the allow-list stays
narrow and reviewed.

    .venv/bin/python tools/check_client_filter.py [folder]
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CONSOLE = ROOT / "app" / "console"
FORBIDDEN = re.compile(r"\.(filter|sort|toSorted|reduce|reduceRight)\s*\(|\.length\b")
ALLOW = re.compile(r"//\s*ui-only:\s*\S")
MAX_ALLOWED = 5


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
    return problems


def main(argv: list[str]) -> int:
    folder = Path(argv[1]) if len(argv) > 1 else CONSOLE
    problems = check(folder)
    for problem in problems:
        print(problem)
    if problems:
        print(f"\nconsole filters or counts in the browser ({len(problems)} problem(s))")
        return 1
    print("console: no client-side filtering, sorting, reducing or counting")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
