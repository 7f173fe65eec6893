"""tools/check_client_filter.py: catches client-side filtering; the console passes."""

from __future__ import annotations

from pathlib import Path

from tools.check_client_filter import MAX_ALLOWED, check


def test_the_console_does_no_client_side_filtering() -> None:
    assert check() == []


def test_it_catches_filter_sort_reduce_and_counting(tmp_path: Path) -> None:
    (tmp_path / "page.js").write_text(
        "const bad = page.items.filter((r) => r.severity === 'block');\n"
        "page.items.sort((a, b) => a.at - b.at);\n"
        "const total = buckets.reduce((n, b) => n + b.total, 0);\n"
        "label.textContent = `${page.items.length} reports`;\n"
        "const top = stack[stack.length - 1]; // ui-only: the page's own cursor stack\n")
    problems = check(tmp_path)
    assert len(problems) == 4  # the commented UI need is allowed
    assert [p.split(":")[1] for p in problems] == ["1", "2", "3", "4"]


def test_the_allow_list_stays_narrow(tmp_path: Path) -> None:
    (tmp_path / "page.js").write_text(
        "x.length; // ui-only: layout\n" * (MAX_ALLOWED + 1))
    assert any("exceptions" in p for p in check(tmp_path))
    (tmp_path / "page.js").write_text("x.length; // ui-only:\n")  # a reason is required
    assert check(tmp_path)


def test_a_changed_or_unpinned_vendored_file_fails(tmp_path: Path) -> None:
    from tools.check_client_filter import CONSOLE, VENDORED, check_vendored

    assert check_vendored(CONSOLE) == []
    vendor = tmp_path / "vendor"
    vendor.mkdir()
    for name in VENDORED:
        (vendor / name).write_bytes((CONSOLE / "vendor" / name).read_bytes())
    assert check_vendored(tmp_path) == []
    chart = next(name for name in VENDORED if name.endswith(".js"))
    (vendor / chart).write_bytes((vendor / chart).read_bytes() + b"\n// patched")
    (vendor / "extra.js").write_text("window.x = 1;\n")
    problems = check_vendored(tmp_path)
    assert any(chart in p and "sha256" in p for p in problems)
    assert any("extra.js" in p and "not a pinned file" in p for p in problems)
