"""The console in headless Chromium (Debian's /usr/bin/chromium, driven by Playwright)
against a live server and worker, checked for what a person sees.

A fresh tenant is seeded with known reports, so the dashboard's numbers are exact. Every
role logs in; on every page it can open: no stray `null`/`undefined`/`NaN`/`[object
Object]`/`Invalid Date` (visible text or hover titles), no console error, no failed
request, no horizontal page scroll at 360 and 420 px, and an axe-core scan (vendored,
tests/browser/vendor/) with no serious or critical violation. Screenshots of every page
at 1366, 420 and 360 px and the axe summary go to var/test-artifacts/console/
(git-ignored) for review.

Chromium is required: without it these tests fail (they never skip, never download).
"""

from __future__ import annotations

import json
import os
import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import httpx
import pytest
from playwright.sync_api import expect

from tests.factories import report
from tools import liveserver
from tools.liveserver import TENANTS, key_for
from tools.liveserver import test_api_keys as env_api_keys

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--no-first-run", "--disable-sync"]
ROOT = Path(__file__).resolve().parent.parent.parent
SHOTS = Path(os.environ.get("CONSOLE_SCREENSHOTS", ROOT / "var" / "test-artifacts" / "console"))
AXE = (Path(__file__).resolve().parent / "vendor" / "axe-4.14.1.min.js").read_text()
WIDTHS = (1366, 420, 360)
# Words a person should never read: a JS value that leaked into the page.
STRAY = re.compile(r"(?<![A-Za-z])(?:null|undefined|NaN)+(?![A-Za-z_])|\[object Object\]|Invalid Date")
ROLE_PAGES = {
    "viewer": ["dashboard", "reports", "report", "timeline"],
    "operator": ["dashboard", "reports", "report", "timeline", "alerts", "ops"],
    "auditor": ["dashboard", "reports", "report", "timeline", "exports", "ops"],
    "admin": ["dashboard", "reports", "report", "timeline", "exports", "retention", "alerts",
              "ops", "keys"],
}
FAIL_BLOCK = [{"rule": "row_count_min", "status": "fail", "severity": "block",
               "message": "0 rows, expected >= 1000", "observed": 0, "expected": ">= 1000"},
              {"rule": "null_ratio", "status": "pass", "severity": "warn"}]
FAIL_WARN = [{"rule": "latency_p95", "status": "fail", "severity": "warn"}]
WARN_WARN = [{"rule": "freshness", "status": "warn", "severity": "warn"}]
PASS = [{"rule": "note", "status": "pass", "severity": "info"}]


@pytest.fixture(scope="module")
def tenant() -> str:
    return f"ui{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module")
def console(database: Any, server: Any, worker: Any, tenant: str,
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A server with plain-http cookies (as `make serve`), reading the export files that
    the session's job worker writes, with keys for a fresh tenant of this module."""
    live = liveserver.start_server(
        database, workers=2, run_dir=tmp_path_factory.mktemp("console-ui"),
        env={"CONSOLE_INSECURE_COOKIES": "true", "VALIDATE_RESPONSES": "true",
             "EXPORT_DIR": str(server.log_path.parent / "exports"),
             "API_KEYS": env_api_keys((*TENANTS, tenant))})
    yield live.url
    live.stop()


@pytest.fixture(scope="module")
def seeded(console: str, tenant: str) -> dict[str, Any]:
    """Known data: 25 block failures + 3 passes from one source (two pages of 20 for
    block), 4 warn-severity failures from "payments", 2 warnings from "warehouse".
    Failing or warning reports by severity: block 25, warn 6."""
    source = f"console-{uuid.uuid4().hex[:6]}"
    # a rule first, so the ingest below also fills the delivery log the alerts page shows
    # (this module's worker does not dispatch: the deliveries stay pending)
    rule = httpx.post(f"{console}/alert-rules", headers={"X-Api-Key": key_for(tenant, "admin")},
                      json={"name": "blockers", "match": {"severity": ["block"]}, "channels": [
                          {"type": "slack", "url": "https://hooks.example.com/services/console"}]},
                      timeout=30)
    assert rule.status_code == 201, rule.text
    bodies = [report(source=source, labels={"env": "prod", "team": "billing"}, checks=FAIL_BLOCK)
              for _ in range(25)]
    bodies += [report(source=source, checks=PASS) for _ in range(3)]
    bodies += [report(source="payments", subject="table:ledger", checks=FAIL_WARN) for _ in range(4)]
    bodies += [report(source="warehouse", checks=WARN_WARN) for _ in range(2)]
    r = httpx.post(f"{console}/ingest/qc/batch", json={"reports": bodies},
                   headers={"X-Api-Key": key_for(tenant, "operator")}, timeout=30)
    assert r.status_code == 201, r.text
    return {"source": source, "report_id": r.json()["items"][0]["id"]}


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
    def __init__(self, browser: Any, url: str, tenant: str, role: str,
                 timezone: str | None = None) -> None:
        self.url = url
        self.tenant = tenant
        self.role = role
        self.context = browser.new_context(accept_downloads=True, timezone_id=timezone,
                                           viewport={"width": 1366, "height": 900})
        self.page = self.context.new_page()
        self.errors: list[str] = []
        self.failed: list[str] = []
        self.requests: list[str] = []
        self.page.on("pageerror", lambda exc: self.errors.append(f"pageerror: {exc}"))
        self.page.on("console", self._console)
        self.page.on("request", lambda req: self.requests.append(req.url))
        self.page.on("requestfailed", self._request_failed)
        self.page.on("response", self._response)

    def _console(self, message: Any) -> None:
        if message.type in ("error", "warning"):
            self.errors.append(f"console {message.type}: {message.text}")

    def _request_failed(self, request: Any) -> None:
        # a navigation (goto, reload) cancels what the previous page still loaded
        if request.failure != "net::ERR_ABORTED":
            self.failed.append(f"{request.url}: {request.failure}")

    def _response(self, response: Any) -> None:
        if response.status >= 400:
            self.failed.append(f"{response.request.method} {response.url}: {response.status}")

    def login(self) -> None:
        self.page.goto(f"{self.url}/console/")
        self.page.get_by_label("API key").fill(key_for(self.tenant, self.role))
        self.page.get_by_role("button", name="Log in").click()
        self.page.wait_for_selector("#whoami")
        assert self.role in self.page.inner_text("#whoami")
        self.wait_loaded()

    def wait_loaded(self) -> None:
        expect(self.page.locator("#view [aria-busy=true]")).to_have_count(0, timeout=15_000)
        # every chart on the page has drawn (ECharts puts a canvas in its box), asked as one
        # condition: right after a click the view may still be swapped, and a box listed
        # from the old view would be gone (it flaked under the full suite)
        expect(self.page.locator("#view div.chart:not(:has(canvas))")).to_have_count(0)

    def shot(self, name: str) -> None:
        SHOTS.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(SHOTS / f"{self.role}-{name}.png"), full_page=True)

    def close(self) -> None:
        assert self.errors == [], self.errors
        assert self.failed == [], self.failed
        self.context.close()


@pytest.fixture
def open_console(browser: Any, console: str, tenant: str) -> Iterator[Any]:
    opened: list[Console] = []

    def make(role: str, timezone: str | None = None) -> Console:
        one = Console(browser, console, tenant, role, timezone)
        opened.append(one)
        one.login()
        return one

    yield make
    for one in opened:
        one.close()


def requests_to(ui: Console, path: str) -> list[dict[str, list[str]]]:
    return [parse_qs(urlsplit(u).query) for u in ui.requests if urlsplit(u).path == path]


def stray_text(page: Any) -> list[str]:
    texts = page.evaluate("""() => [document.body.innerText,
        ...[...document.querySelectorAll('[title],[aria-label],[alt]')].flatMap(
            (e) => ['title', 'aria-label', 'alt'].map((a) => e.getAttribute(a) || ''))]""")
    return sorted({m.group(0) for text in texts for m in STRAY.finditer(text)})


def axe_scan(page: Any) -> list[dict[str, Any]]:
    if not page.evaluate("() => Boolean(window.axe)"):
        page.evaluate(AXE)  # DevTools evaluation: not subject to the page's CSP
    return page.evaluate("""async () => {
        const result = await axe.run(document, { resultTypes: ['violations'] });
        return result.violations.map((v) => ({ id: v.id, impact: v.impact, help: v.help,
            nodes: v.nodes.slice(0, 5).map((n) => n.target.join(' ')) }));
    }""")


# -- what a person sees --------------------------------------------------------------


# The page coordinates of the middle of the block bar at `index` of the dashboard chart.
BAR_POINT = """(index) => {
    const chart = echarts.getInstanceByDom(document.getElementById('dashboard-chart'));
    const [x, y] = chart.convertToPixel({ seriesIndex: 2 }, [index, 12]);
    const box = document.getElementById('dashboard-chart').getBoundingClientRect();
    return [box.left + x, box.top + y];
}"""


def test_the_dashboard_draws_the_seeded_counts_and_a_bar_opens_its_reports(
        open_console: Any, seeded: dict[str, Any]) -> None:
    ui = open_console("viewer")
    page = ui.page
    assert page.url.endswith("#/dashboard")  # the home page after login
    # the chart draws the server's buckets: exactly one bucket holds the seeded reports
    option = page.evaluate("""() => {
        const chart = echarts.getInstanceByDom(document.getElementById('dashboard-chart'));
        return chart.getOption().series.map((s) => ({ name: s.name, data: s.data }));
    }""")
    series = {s["name"]: s["data"] for s in option}
    assert set(series) == {"info", "warn", "block"}
    hot = [i for i in range(len(series["block"])) if series["block"][i] or series["warn"][i]]
    assert len(hot) == 1, series
    index = hot[0]
    assert (series["block"][index], series["warn"][index], series["info"][index]) == (25, 6, 0)
    # the timeline request asked the server for exactly this aggregate
    asked = requests_to(ui, "/timeline")[-1]
    assert asked["group_by"] == ["severity"] and sorted(asked["status"]) == ["fail", "warn"]
    # hover the bar: the tooltip reads the exact counts
    x, y = page.evaluate(BAR_POINT, index)
    page.mouse.move(x, y)
    tooltip = page.locator(".chart-tooltip")
    expect(tooltip).to_contain_text("block: 25")
    expect(tooltip).to_contain_text("warn: 6")
    expect(tooltip).to_contain_text("total: 31")
    ui.shot("dashboard-tooltip")
    # top failing sources and subjects, pass rates: the server's numbers in the tables
    sources = page.get_by_role("region", name="Table: Top failing sources")
    rows = [r.split("\t")[:4] for r in sources.locator("tbody tr").all_inner_texts()]
    assert rows == [[seeded["source"], "25", "25", "28"], ["payments", "4", "0", "4"]]
    subjects = page.get_by_role("region", name="Table: Top failing subjects")
    assert subjects.locator("tbody tr").first.inner_text().startswith("table:ledger\t4\t0\t4")
    rates = page.get_by_role("region", name="Table: Pass rate per source")
    assert [r.split("\t") for r in rates.locator("tbody tr").all_inner_texts()] == [
        ["payments", "0 of 4", "0.0 %"], ["warehouse", "0 of 2", "0.0 %"],
        [seeded["source"], "3 of 28", "10.7 %"]]
    blocking = page.get_by_role("region", name="Table: Latest blocking reports")
    expect(blocking.locator("tbody tr")).to_have_count(8)
    # the presets: 7 days of hours, 30 days of days; the seeded counts in one bar each
    for preset, bucket, bars in (("Last 7 days", "hour", 169), ("Last 30 days", "day", 31)):
        page.get_by_role("link", name=preset).click()
        expect(page.get_by_role("link", name=preset)).to_have_attribute("aria-current", "true")
        ui.wait_loaded()
        asked = requests_to(ui, "/timeline")[-1]
        assert asked["bucket"] == [bucket]
        drawn = page.evaluate("""() => echarts.getInstanceByDom(
            document.getElementById('dashboard-chart')).getOption().series.map((s) => s.data)""")
        assert len(drawn[2]) in (bars, bars + 1) and sorted(drawn[2])[-1] == 25
        ui.shot(f"dashboard-{bucket}-{bars}")
    page.get_by_role("link", name="Last 24 h").click()
    ui.wait_loaded()
    # the hourly chart is drawn again (not the 30-day one): find the bar anew, hover it
    # until its tooltip shows, then click it: the reports of that bucket, server-filtered
    # (between the click and the new page there may be no chart element at all)
    page.wait_for_function("""() => {
        const box = document.getElementById('dashboard-chart');
        const chart = box && echarts.getInstanceByDom(box);
        return chart && chart.getOption().series[2].data.length <= 26;
    }""")
    x, y = page.evaluate(BAR_POINT, index)
    page.mouse.move(x, y)
    expect(tooltip).to_contain_text("block: 25")
    page.mouse.click(x, y)
    expect(page.locator("#match-count")).to_have_text("25 reports match")
    query = parse_qs(unquote(page.url.split("?", 1)[1]))
    assert query["severity"] == ["block"] and query["since"] and query["until"]
    asked = requests_to(ui, "/dashboard/count")[-1]
    assert asked["severity"] == ["block"] and asked["since"] == query["since"]


def test_viewer_filters_and_pages_on_the_server_and_sees_no_sign(open_console: Any,
                                                                  seeded: dict[str, Any]) -> None:
    ui = open_console("viewer")
    page = ui.page
    nav = page.inner_text("#nav")
    assert "Dashboard" in nav and "Reports" in nav and "Timeline" in nav
    for hidden in ("Exports", "Retention", "API keys", "Ops metrics", "Alerts"):
        assert hidden not in nav
    page.get_by_role("link", name="Reports", exact=True).click()
    ui.wait_loaded()
    page.get_by_role("checkbox", name="block").first.check()
    page.get_by_label("Source").fill(seeded["source"])
    page.get_by_role("button", name="Apply filters").click()
    expect(page.locator("#view tbody tr")).to_have_count(20)
    expect(page.locator("#match-count")).to_have_text("25 reports match")
    last = requests_to(ui, "/reports")[-1]
    assert last["severity"] == ["block"] and last["source"] == [seeded["source"]]
    assert "cursor" not in last
    assert set(page.locator("#view tbody td:nth-child(3)").all_inner_texts()) == {"block"}
    first_row = page.locator("#view tbody tr").first.inner_text()
    assert "1 pass" in first_row and "1 fail" in first_row  # check counts
    assert "env: prod" in first_row and "team: billing" in first_row  # label chips
    assert "not signed" in first_row
    first_page = page.locator("#view tbody td:nth-child(7)").all_inner_texts()

    page.locator("#next-page").click()
    expect(page.locator("#view tbody tr")).to_have_count(5)
    last = requests_to(ui, "/reports")[-1]
    assert last["severity"] == ["block"] and last["source"] == [seeded["source"]]
    assert last["cursor"][0]
    assert not set(page.locator("#view tbody td:nth-child(7)").all_inner_texts()) & set(first_page)
    assert page.locator("#next-page").is_disabled()

    page.locator("#prev-page").click()
    expect(page.locator("#view tbody tr")).to_have_count(20)
    assert "cursor" not in requests_to(ui, "/reports")[-1]
    assert page.locator("#view tbody td:nth-child(7)").all_inner_texts() == first_page

    page.locator("#view tbody td:nth-child(7) a").first.click()
    page.wait_for_selector("#signature-state")
    assert page.inner_text("#signature-state") == "Not signed."
    assert page.locator("#sign").count() == 0  # a viewer is not offered Sign


def test_times_are_local_with_a_utc_toggle_and_the_full_timestamp_on_hover(
        open_console: Any, seeded: dict[str, Any]) -> None:
    ui = open_console("viewer", timezone="Asia/Kolkata")  # UTC+05:30: local differs from UTC
    page = ui.page
    page.goto(f"{ui.url}/console/#/report/{seeded['report_id']}")
    ui.wait_loaded()
    received = page.locator("dd time").nth(1)
    stamp = received.get_attribute("datetime")
    assert stamp and stamp.endswith("Z")
    title = received.get_attribute("title")
    assert title.startswith(stamp) and "UTC+05:30" in title
    local = received.inner_text()
    assert "ago" in local or "now" in local
    page.locator("#utc-toggle").click()
    ui.wait_loaded()
    utc = page.locator("dd time").nth(1).inner_text()
    assert " UTC" in utc and utc.split(" UTC")[0] == stamp[:16].replace("T", " ")
    assert utc.split(" UTC")[0] != local.split(" ·")[0]
    page.locator("#utc-toggle").click()  # back to local for the other tests of this context


def test_auditor_signs_and_sees_signer_key_and_time_and_downloads_the_bundle(
        open_console: Any, seeded: dict[str, Any]) -> None:
    ui = open_console("auditor")
    page = ui.page
    page.goto(f"{ui.url}/console/#/reports?severity=block&source={seeded['source']}")
    page.wait_for_selector("#view tbody a")
    page.locator("#view tbody td:nth-child(7) a").first.click()
    page.wait_for_selector("#sign")
    assert page.locator("#signature-details").count() == 0
    page.locator("#sign").click()
    expect(page.locator("#signature-state")).to_have_text("Signed.")
    assert page.inner_text("#signer").startswith("auditor (API key ")
    assert re.fullmatch(r"[A-Za-z0-9_-]{43}", page.inner_text("#signing-key"))
    assert "ago" in page.inner_text("#signature-details") or "now" in page.inner_text("#signature-details")
    ui.shot("report-signed")
    with page.expect_download() as download:
        page.locator("#bundle").click()
    assert download.value.suggested_filename.endswith(".zip")
    assert Path(download.value.path()).read_bytes()[:2] == b"PK"
    # reloaded, the signature is still shown, and the list says who signed
    page.reload()
    ui.wait_loaded()
    assert page.inner_text("#signature-state") == "Signed."
    assert page.inner_text("#signer").startswith("auditor")
    page.goto(f"{ui.url}/console/#/reports?severity=block&source={seeded['source']}")
    ui.wait_loaded()
    assert "signed by auditor" in page.locator("#view tbody").inner_text()


def test_admin_exports_lists_them_runs_retention_sees_keys_and_logs_out(
        open_console: Any, console: str) -> None:
    ui = open_console("admin")
    page = ui.page
    page.get_by_role("link", name="Exports").click()
    ui.wait_loaded()
    page.get_by_role("button", name="Create export").click()
    expect(page.locator("#view tbody tr").first).to_contain_text("succeeded", timeout=20_000)
    row = page.locator("#view tbody tr").first.inner_text()
    assert "CSV" in row and "34" in row and "B" in row  # the seeded rows and the file size
    with page.expect_download() as download:
        page.locator("#view tbody a.download").first.click()
    assert Path(download.value.path()).read_bytes()[:2] == b"\x1f\x8b"  # gzip
    assert requests_to(ui, "/exports")  # the list comes from GET /exports

    page.get_by_role("link", name="Retention").click()
    page.get_by_label("Older than (days)").fill("36500")  # nothing this old: deletes nothing
    page.get_by_role("button", name="Dry run").click()
    page.wait_for_selector("#retention-commit")
    assert page.inner_text("#retention-candidates") == "0"
    page.locator("#retention-commit").click()
    page.wait_for_selector("#retention-done")
    assert page.inner_text("#retention-done") == "Deleted 0 reports."

    cookie = next(c["value"] for c in ui.context.cookies() if c["name"] == "qcc_session")
    assert httpx.get(f"{console}/reports", cookies={"qcc_session": cookie}).status_code == 200
    page.get_by_role("button", name="Log out").click()
    page.wait_for_selector("text=Logged out.")
    assert httpx.get(f"{console}/reports", cookies={"qcc_session": cookie}).status_code == 401
    # a reload after logout: the login check answers 200 (no 401 in the browser's log)
    page.reload()
    page.wait_for_selector("#api-key")


def test_operator_sees_ops_and_alerts_but_no_admin_pages(open_console: Any) -> None:
    ui = open_console("operator")
    nav = ui.page.inner_text("#nav")
    assert "Ops metrics" in nav and "Alerts" in nav
    for hidden in ("Exports", "Retention", "API keys"):
        assert hidden not in nav
    ui.page.get_by_role("link", name="Alerts").click()
    ui.page.wait_for_selector("text=Deliveries")
    assert ui.page.get_by_role("button", name="Create rule").count() == 0
    ui.page.get_by_role("link", name="Ops metrics").click()
    ui.wait_loaded()
    figures = ui.page.inner_text("#ops-requests")
    assert "requests" in figures and "5xx ratio" in figures


# -- every page, every role ----------------------------------------------------------


def test_every_page_for_every_role_reads_clean_fits_360px_and_passes_axe(
        open_console: Any, browser: Any, console: str, seeded: dict[str, Any]) -> None:
    summary: dict[str, Any] = {}
    problems: list[str] = []

    def visit(ui: Console, name: str, hash_path: str) -> None:
        page = ui.page
        page.set_viewport_size({"width": 1366, "height": 900})
        page.goto(f"{console}/console/#/{hash_path}")
        page.reload()  # a fresh load of the page itself (and its login check)
        ui.wait_loaded()
        where = f"{ui.role}/{name}"
        stray = stray_text(page)
        if stray:
            problems.append(f"{where}: stray text {stray}")
        violations = axe_scan(page)
        summary[where] = {"violations": [(v["id"], v["impact"]) for v in violations]}
        for v in violations:
            if v["impact"] in ("serious", "critical"):
                problems.append(f"{where}: axe {v['impact']} {v['id']} ({v['help']}) {v['nodes']}")
        ui.shot(f"{name}-1366")
        for width in WIDTHS[1:]:
            page.set_viewport_size({"width": width, "height": 800})
            page.wait_for_timeout(150)  # the charts' resize handler
            scroll = page.evaluate("() => document.documentElement.scrollWidth")
            summary[where][f"scrollWidth@{width}"] = scroll
            if scroll > width:
                problems.append(f"{where}: page scrolls sideways at {width}px ({scroll}px wide)")
            ui.shot(f"{name}-{width}")

    for role, pages in ROLE_PAGES.items():
        ui = open_console(role)
        for name in pages:
            target = f"report/{seeded['report_id']}" if name == "report" else name
            visit(ui, name, target)
    logged_out = Console(browser, console, "nobody", "logged-out")
    logged_out.page.goto(f"{console}/console/")
    logged_out.page.wait_for_selector("#api-key")
    visit(logged_out, "login", "")
    logged_out.close()

    SHOTS.mkdir(parents=True, exist_ok=True)
    (SHOTS / "axe-summary.json").write_text(json.dumps(summary, indent=1, sort_keys=True))
    assert problems == [], "\n".join(problems)
