"""Roles guard check: the server enforces exactly the spec's x-roles.

For every operation of generated/operations.py and every role, app.security.guard
must allow the role iff the spec lists it; every operation must resolve to a handler;
handlers must hold no role logic of their own. (tests/api/test_role_matrix.py proves
the same pairs over HTTP against a running server.)
"""

from __future__ import annotations

import importlib
import inspect
import re
import sys
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from app.errors import Forbidden  # noqa: E402
from app.security import guard  # noqa: E402
from app.services.access.principal import Principal  # noqa: E402
from generated.operations import OPERATIONS, ROLES  # noqa: E402

ROLE_LOGIC = re.compile(r"\.role\b|\brole\s*(==|!=|in)\b|['\"](viewer|operator|auditor|admin)['\"]")


def main() -> int:
    problems = []
    pairs = 0
    for op in OPERATIONS:
        module_name, _, function_name = op.handler.rpartition(".")
        try:
            handler = getattr(importlib.import_module(module_name), function_name)
        except (ImportError, AttributeError):
            problems.append(f"{op.id}: handler {op.handler} does not exist")
        else:
            if not inspect.iscoroutinefunction(handler):
                problems.append(f"{op.id}: handler {op.handler} is not async")
        if not op.roles <= set(ROLES):
            problems.append(f"{op.id}: unknown roles {sorted(op.roles - set(ROLES))}")
        if op.authenticated != bool(op.roles):
            problems.append(f"{op.id}: authenticated={op.authenticated} but roles={sorted(op.roles)}")
        for role in ROLES:
            pairs += 1
            principal = Principal(tenant="t", role=role, key_id=uuid.uuid4())
            try:
                guard(principal, op.id, None)
                allowed = True
            except Forbidden:
                allowed = False
            if op.authenticated and allowed != (role in op.roles):
                problems.append(f"{op.id} x {role}: guard allows={allowed}, spec allows="
                                f"{role in op.roles}")
    for path in sorted((ROOT / "app" / "handlers").glob("*.py")):
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if ROLE_LOGIC.search(line.split("#")[0]):
                problems.append(f"{path.relative_to(ROOT)}:{number}: role logic in a handler")
    for problem in problems:
        print(problem)
    if problems:
        print(f"\nroles guard disagrees with the spec ({len(problems)} problem(s))")
        return 1
    print(f"roles guard agrees with x-roles: {len(OPERATIONS)} operations, "
          f"{pairs} (operation, role) pairs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
