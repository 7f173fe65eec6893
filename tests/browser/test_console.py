"""The console in headless Chromium (Debian's /usr/bin/chromium, driven by Playwright)
against a live server and worker: every role logs in, filters and pages (the requests
carry the filters and cursors; the rows are what the server returned), signs, downloads,
exports, runs retention, logs out. No JavaScript errors. A screenshot of every page goes
to var/test-artifacts/console/ (git-ignored) for review.

Chromium is required: without it these tests fail (they never skip, never download).
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from playwright.sync_api import expect

from tests.conftest import headers, report
from tools import liveserver
from tools.liveserver import key_for

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--no-first-run", "--disable-sync"]
ROOT = Path(__file__).resolve().parent.parent.parent
SHOTS = Path(os.environ.get("CONSOLE_SCREENSHOTS", ROOT / "var" / "test-artifacts" / "console"))


@pytest.fixture(scope="module")
def console(database: Any, server: Any, worker: Any,
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A server with plain-http cookies (as `make serve`), reading the export files that
    the session's job worker writes (one worker per database: no other picks the jobs)."""
    live = liveserver.start_server(
        database, workers=2, run_dir=tmp_path_factory.mktemp("console-ui"),
        env={"CONSOLE_INSECURE_COOKIES": "true", "VALIDATE_RESPONSES": "true",
             "EXPORT_DIR": str(server.log_path.parent / "exports")})
    yield live.url
    live.stop()


@pytest.fixture(scope="module")
def seeded(console: str) -> dict[str, Any]:
    """25 block and 3 info reports from one fresh source: two pages of 20 for block."""
    source = f"console-{uuid.uuid4().hex[:10]}"
    info_check = [{"rule": "note", "status": "pass", "severity": "info"}]
    bodies = [report(source=source) for _ in range(25)]
    bodies += [report(source=source, checks=info_check) for _ in range(3)]
    r = httpx.post(f"{console}/ingest/qc/batch", json={"reports": bodies},
                   headers=headers("acme", "operator"), timeout=30)
    assert r.status_code == 201, r.text
    return {"source": source}


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install -y chromium (.ci/run does)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        yield chromium
        chromium.close()


class Console:
    def __init__(self, browser: Any, url: str, role: str) -> None:
        self.url = url
        self.role = role
        self.context = browser.new_context(accept_downloads=True)
        self.page = self.context.new_page()
        self.errors: list[str] = []
        self.requests: list[str] = []
        self.page.on("pageerror", lambda exc: self.errors.append(f"pageerror: {exc}"))
        self.page.on("console", self._console)
        self.page.on("request", lambda req: self.requests.append(req.url))

    def _console(self, message: Any) -> None:
        # a refused request (e.g. 401 before login) is logged by Chromium itself
        if message.type == "error" and "Failed to load resource" not in message.text:
            self.errors.append(f"console: {message.text}")

    def login(self) -> None:
        self.page.goto(f"{self.url}/console/")
        self.page.get_by_label("API key").fill(key_for("acme", self.role))
        self.page.get_by_role("button", name="Log in").click()
        self.page.wait_for_selector("#whoami")
        assert self.role in self.page.inner_text("#whoami")

    def shot(self, name: str) -> None:
        SHOTS.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(SHOTS / f"{self.role}-{name}.png"), full_page=True)

    def wait_loaded(self) -> None:
        expect(self.page.locator("#view [aria-busy=true]")).to_have_count(0)

    def close(self) -> None:
        assert self.errors == [], self.errors
        self.context.close()


@pytest.fixture
def open_console(browser: Any, console: str) -> Iterator[Any]:
    opened: list[Console] = []

    def make(role: str) -> Console:
        one = Console(browser, console, role)
        opened.append(one)
        one.login()
        return one

    yield make
    for one in opened:
        one.close()


def report_requests(ui: Console) -> list[dict[str, list[str]]]:
    return [parse_qs(urlsplit(u).query) for u in ui.requests if urlsplit(u).path == "/reports"]


def test_viewer_filters_and_pages_on_the_server_and_sees_no_sign(open_console: Any,
                                                                  seeded: dict[str, Any]) -> None:
    ui = open_console("viewer")
    page = ui.page
    ui.wait_loaded()
    ui.shot("reports")
    nav = page.inner_text("#nav")
    assert "Reports" in nav and "Timeline" in nav
    for hidden in ("Exports", "Retention", "API keys", "Ops metrics", "Alerts"):
        assert hidden not in nav
    page.get_by_role("checkbox", name="block").first.check()
    page.get_by_label("Source").fill(seeded["source"])
    page.get_by_role("button", name="Apply filters").click()
    expect(page.locator("#view tbody tr")).to_have_count(20)
    last = report_requests(ui)[-1]
    assert last["severity"] == ["block"] and last["source"] == [seeded["source"]]
    assert "cursor" not in last
    assert set(page.locator("#view tbody td:nth-child(2)").all_inner_texts()) == {"block"}
    first_page = page.locator("#view tbody td:nth-child(5)").all_inner_texts()
    ui.shot("reports-block")

    page.locator("#next-page").click()
    expect(page.locator("#view tbody tr")).to_have_count(5)
    last = report_requests(ui)[-1]
    assert last["severity"] == ["block"] and last["source"] == [seeded["source"]]
    assert last["cursor"][0]
    assert not set(page.locator("#view tbody td:nth-child(5)").all_inner_texts()) & set(first_page)
    assert page.locator("#next-page").is_disabled()

    page.locator("#prev-page").click()
    expect(page.locator("#view tbody tr")).to_have_count(20)
    assert "cursor" not in report_requests(ui)[-1]
    assert page.locator("#view tbody td:nth-child(5)").all_inner_texts() == first_page

    page.locator("#view tbody a").first.click()
    page.wait_for_selector("#signature-state")
    assert page.inner_text("#signature-state") == "Not signed."
    assert page.locator("#sign").count() == 0  # a viewer is not offered Sign
    ui.shot("report-detail")

    page.get_by_role("link", name="Timeline").click()
    page.wait_for_selector("svg.chart rect.bar")
    assert page.locator("svg.chart rect.bar").count() >= 1
    ui.shot("timeline")


def test_auditor_signs_and_downloads_the_bundle(open_console: Any, seeded: dict[str, Any]) -> None:
    ui = open_console("auditor")
    page = ui.page
    page.goto(f"{ui.url}/console/#/reports?severity=block&source={seeded['source']}")
    page.wait_for_selector("#view tbody a")
    page.locator("#view tbody a").first.click()
    page.wait_for_selector("#sign")
    page.locator("#sign").click()
    expect(page.locator("#signature-state")).to_have_text("Signed.")
    ui.shot("report-signed")
    with page.expect_download() as download:
        page.locator("#bundle").click()
    path = download.value.path()
    assert download.value.suggested_filename.endswith(".zip")
    assert Path(path).read_bytes()[:2] == b"PK"
    page.get_by_role("link", name="Ops metrics").click()
    page.wait_for_selector("#ops-requests")
    ui.shot("ops-metrics")


def test_admin_exports_runs_retention_sees_keys_and_logs_out(open_console: Any, console: str,
                                                             seeded: dict[str, Any]) -> None:
    ui = open_console("admin")
    page = ui.page
    page.get_by_role("link", name="Exports").click()
    page.get_by_role("button", name="Create export").click()
    expect(page.locator("#export-status")).to_have_text("succeeded", timeout=20_000)
    ui.shot("exports")
    with page.expect_download() as download:
        page.locator("#export-download").click()
    assert Path(download.value.path()).read_bytes()[:2] == b"\x1f\x8b"  # gzip

    page.get_by_role("link", name="Retention").click()
    page.get_by_label("Older than (days)").fill("36500")  # nothing this old: deletes nothing
    page.get_by_role("button", name="Dry run").click()
    page.wait_for_selector("#retention-commit")
    assert page.inner_text("#retention-candidates") == "0"
    page.locator("#retention-commit").click()
    page.wait_for_selector("#retention-done")
    assert page.inner_text("#retention-done") == "Deleted 0 reports."
    ui.shot("retention")

    page.get_by_role("link", name="Alerts").click()
    page.wait_for_selector("text=Deliveries")
    ui.shot("alerts")
    page.get_by_role("link", name="API keys").click()
    page.wait_for_selector("text=Create key")
    ui.shot("keys")

    cookie = next(c["value"] for c in ui.context.cookies() if c["name"] == "qcc_session")
    assert httpx.get(f"{console}/reports", cookies={"qcc_session": cookie}).status_code == 200
    page.get_by_role("button", name="Log out").click()
    page.wait_for_selector("text=Logged out.")
    ui.shot("logged-out")
    assert httpx.get(f"{console}/reports", cookies={"qcc_session": cookie}).status_code == 401


def test_operator_sees_ops_and_alerts_but_no_admin_pages(open_console: Any) -> None:
    ui = open_console("operator")
    nav = ui.page.inner_text("#nav")
    assert "Ops metrics" in nav and "Alerts" in nav
    for hidden in ("Exports", "Retention", "API keys"):
        assert hidden not in nav
    ui.page.get_by_role("link", name="Alerts").click()
    ui.page.wait_for_selector("text=Deliveries")
    assert ui.page.get_by_role("button", name="Create rule").count() == 0
    started = time.monotonic()
    ui.page.get_by_role("link", name="Ops metrics").click()
    ui.page.wait_for_selector("#ops-requests")
    assert time.monotonic() - started < 10
