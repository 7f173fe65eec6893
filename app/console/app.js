// QC Collector console: plain ES modules, no build step. Every filter, sort, page, count
// and aggregate comes from the server; this code only renders what the API returns (the
// contract gate's tools/check_client_filter.py keeps it so).
import { api, ApiError } from "./api.js";
import { SEVERITY_COLORS, STATUS_COLORS, chart, disposeAll } from "./charts.js";
import {
  ago, agoNode, bucketLabel, bytes, clock, inputFromIso, isoFromInput, number, parse, percent,
  setUtcMode, timeNode, utcMode, zoneLabel,
} from "./format.js";

// What the console offers each role: mirrors the spec's x-roles so that actions a role
// may not take are not shown. The server's guard still decides every request.
const CAN = {
  sign: ["auditor", "admin"],
  exports: ["auditor", "admin"],
  retention: ["admin"],
  alertRules: ["operator", "admin"],
  alertRulesWrite: ["admin"],
  notifications: ["operator", "admin"],
  ops: ["operator", "auditor", "admin"],
  keys: ["admin"],
};
const PAGES = [
  ["dashboard", "Dashboard", null],
  ["reports", "Reports", null],
  ["timeline", "Timeline", null],
  ["exports", "Exports", "exports"],
  ["retention", "Retention", "retention"],
  ["alerts", "Alerts", "alertRules"],
  ["ops", "Ops metrics", "ops"],
  ["keys", "API keys", "keys"],
];
const PAGE_SIZE = 20;
const SEVERITIES = ["info", "warn", "block"];
const STATUSES = ["pass", "warn", "fail"];
const HOUR = 3600 * 1000;
// Period presets: the span before now and the timeline bucket that reads well for it.
const PRESETS = [
  ["24h", "Last 24 h", 24 * HOUR, "hour"],
  ["7d", "Last 7 days", 7 * 24 * HOUR, "hour"],
  ["30d", "Last 30 days", 30 * 24 * HOUR, "day"],
];

let session = null;
const view = document.getElementById("view");

function can(action) {
  return Boolean(session) && CAN[action].includes(session.role);
}

// --- DOM helpers: text only through textContent (never innerHTML with API data) ---------
// null, undefined and false children are skipped everywhere, so no "null" ever shows.
function h(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (key === "text") node.textContent = value;
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  put(node, children, false);
  return node;
}

// Appends nodes (or text) to target, skipping null/undefined/false; replaces by default.
function put(target, nodes, replace = true) {
  if (replace) target.replaceChildren();
  for (const child of nodes) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) put(target, child, false);
    else target.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

function show(...nodes) {
  disposeAll();
  put(view, nodes);
}

function loading(target = view) {
  put(target, [h("p", { class: "loading", "aria-busy": "true" }, "Loading…")]);
}

function failure(error, target = view) {
  const message = error instanceof ApiError ? `${error.status}: ${error.message}` : String(error.message || error);
  put(target, [h("p", { class: "error", role: "alert" }, message)]);
}

// Each cell carries its column's title, so narrow screens show rows as labelled cards.
function table(caption, headers, rows) {
  for (const row of rows) {
    let column = 0;
    for (const cell of row.children) {
      cell.dataset.label = headers[column];
      column += 1;
    }
  }
  return h("div", { class: "table-wrap", tabindex: "0", role: "region", "aria-label": `Table: ${caption}` },
    h("table", {},
      h("thead", {}, h("tr", {}, ...headers.map((title) => h("th", { scope: "col" }, title)))),
      h("tbody", {}, ...rows)));
}

function isEmpty(items) {
  return !items || items[0] === undefined;
}

function field(label, input, hint) {
  return h("label", {}, h("span", {}, label, hint ? h("span", { class: "hint" }, ` (${hint})`) : null), input);
}

function checkboxes(legend, name, values, checked) {
  return h("fieldset", {}, h("legend", {}, legend),
    ...values.map((value) => h("label", {},
      h("input", { type: "checkbox", name, value, checked: checked.includes(value) }), value)));
}

function chip(text, kind) {
  return h("span", { class: `chip ${kind || ""}` }, text);
}

function severityChip(value) {
  return chip(value, `sev-${value}`);
}

function statusChip(value) {
  return chip(value, `st-${value}`);
}

function labelChips(labels) {
  const entries = Object.entries(labels || {});
  if (entries[0] === undefined) return h("span", { class: "muted" }, "—");
  return h("span", { class: "chips" }, ...entries.map(([k, v]) => chip(`${k}: ${v}`, "label")));
}

function countChips(counts) {
  return h("span", { class: "chips nowrap" },
    chip(`${counts.pass} pass`, "st-pass"), chip(`${counts.warn} warn`, "st-warn"), chip(`${counts.fail} fail`, "st-fail"));
}

function signerText(signature) {
  return `${signature.signer.role}${signature.signer.key_id ? ` key ${signature.signer.key_id.slice(0, 8)}…` : ""}`;
}

function signedCell(item) {
  if (!item.signed) return h("span", { class: "muted" }, "not signed");
  const signature = item.signature;
  if (!signature) return chip("signed", "signed");
  const date = parse(signature.signed_at);
  return h("span", { title: `Signed ${signature.signed_at} by ${signature.signer.role} (API key ${signature.signer.key_id || "—"}) with signing key ${signature.signing_key_id}` },
    chip("signed", "signed"), ` by ${signature.signer.role}`, date ? h("span", { class: "ago" }, ` · ${ago(date)}`) : null);
}

function presetLinks(page, params, current) {
  return h("nav", { class: "presets", "aria-label": "Period" },
    ...PRESETS.map(([key, title]) => {
      const next = new URLSearchParams(params);
      next.set("period", key);
      next.delete("c");
      return h("a", { href: `#/${page}?${next}`, class: "preset", "aria-current": key === current ? "true" : null }, title);
    }));
}

function periodOf(params) {
  const key = params.get("period") || "24h";
  for (const preset of PRESETS) if (preset[0] === key) return preset;
  return PRESETS[0];
}

// --- routing: #/page?query ------------------------------------------------------------
function route() {
  const [path, search] = (location.hash.slice(1) || "/dashboard").split("?");
  const parts = path.split("/");
  return { page: parts[1] || "dashboard", id: parts[2], params: new URLSearchParams(search || "") };
}

function go(page, params) {
  const search = params ? params.toString() : "";
  location.hash = `#/${page}${search ? `?${search}` : ""}`;
}

async function render() {
  if (!session) return;
  const { page, id, params } = route();
  for (const link of document.querySelectorAll("#nav a")) {
    const current = link.dataset.page === page || (page === "report" && link.dataset.page === "reports");
    if (current) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  const pages = { dashboard, reports, report, timeline, exports, retention, alerts, ops, keys };
  const draw = pages[page] || dashboard;
  disposeAll();
  loading();
  try {
    await draw(params, id);
  } catch (error) {
    failure(error);
  }
}

// --- login / session -------------------------------------------------------------------
function loginPage(message) {
  document.getElementById("nav").hidden = true;
  put(document.getElementById("who"), []);
  const input = h("input", { type: "password", name: "api_key", id: "api-key", required: true,
                             autocomplete: "off", maxlength: 200 });
  const status = h("div", { "aria-live": "assertive" }, message ? h("p", { class: "notice", role: "status" }, message) : null);
  const form = h("form", { class: "inline", "aria-label": "Log in",
    onsubmit: async (event) => {
      event.preventDefault();
      const key = input.value;
      input.value = ""; // the key is sent once and never kept
      try {
        session = await api("/bff/login", { method: "POST", body: { api_key: key } });
        start();
      } catch (error) {
        failure(error, status);
      }
    } },
    field("API key", input), h("button", { type: "submit" }, "Log in"));
  show(h("h2", {}, "Log in"), h("p", {}, "Exchange an API key for a console session (the key is not stored in the browser)."), form, status);
  input.focus();
}

function timesToggle() {
  const button = h("button", { type: "button", class: "secondary", id: "utc-toggle", "aria-pressed": utcMode() ? "true" : "false",
    title: "Show times in UTC instead of local time", onclick: () => {
      setUtcMode(!utcMode());
      button.setAttribute("aria-pressed", utcMode() ? "true" : "false");
      render();
    } }, "UTC");
  return button;
}

function start() {
  const nav = document.getElementById("nav");
  put(nav, PAGES.map(([page, title, action]) =>
    action && !can(action) ? null : h("a", { href: `#/${page}`, "data-page": page }, title)));
  nav.hidden = false;
  const logout = h("button", { type: "button", class: "secondary", onclick: async () => {
    try { await api("/bff/logout", { method: "POST" }); } catch (error) { /* ended anyway */ }
    session = null;
    loginPage("Logged out.");
  } }, "Log out");
  put(document.getElementById("who"), [
    h("span", { id: "whoami" }, `${session.tenant} · ${session.role}`), timesToggle(), logout]);
  if (!location.hash || location.hash === "#/") go("dashboard");
  else render();
}

window.addEventListener("qcc:unauthorized", () => {
  if (session) { session = null; loginPage("Your session has ended; log in again."); }
});
window.addEventListener("hashchange", render);

// --- dashboard: what is failing, where, since when ---------------------------------------
async function dashboard(params) {
  const [period, title, span, bucket] = periodOf(params);
  const since = new Date(Date.now() - span).toISOString();
  const problems = { status: ["fail", "warn"] };
  const [series, sources, subjects, rates, blocking] = await Promise.all([
    api("/timeline", { params: { bucket, group_by: "severity", since, ...problems } }),
    api("/dashboard/top", { params: { by: "source", since, limit: 10 } }),
    api("/dashboard/top", { params: { by: "subject", since, limit: 10 } }),
    api("/dashboard/pass-rates", { params: { since, limit: 15 } }),
    api("/reports", { params: { severity: "block", since, limit: 8 } }),
  ]);
  const chartBox = h("div", { class: "chart", id: "dashboard-chart", role: "img",
    "aria-label": `Stacked bars: failing and warning reports per ${bucket} by severity, ${title.toLowerCase()}` });
  const rateBox = h("div", { class: "chart small", id: "pass-rate-chart", role: "img",
    "aria-label": "Bars: pass rate per source, lowest first" });
  show(
    h("div", { class: "page-head" }, h("h2", {}, "What is failing"), presetLinks("dashboard", params, period)),
    h("p", { class: "muted" }, `${title}: `, timeNode(h, series.since, { hint: false }), " to ", timeNode(h, series.until, { hint: false }), ` (${zoneLabel()}).`),
    h("section", { "aria-labelledby": "h-over-time", class: "card" },
      h("h3", { id: "h-over-time" }, `Failing and warning reports per ${bucket}, by severity`),
      chartBox, h("p", { class: "hint" }, "Hover a bar for exact counts; click it to open those reports.")),
    h("div", { class: "grid2" },
      topSection("Top failing sources", "source", sources, since),
      topSection("Top failing subjects", "subject", subjects, since)),
    h("div", { class: "grid2" },
      h("section", { "aria-labelledby": "h-pass-rate", class: "card" },
        h("h3", { id: "h-pass-rate" }, "Pass rate per source"),
        isEmpty(rates.items) ? h("p", { class: "empty" }, "No reports in this period.") : rateBox,
        isEmpty(rates.items) ? null : table("Pass rate per source", ["Source", "Passing", "Pass rate"],
          rates.items.map((r) => h("tr", {}, h("td", {}, sourceLink(r.source, since)),
            h("td", { class: "num" }, `${number(r.passing)} of ${number(r.total)}`), h("td", { class: "num" }, percent(r.pass_rate)))))),
      h("section", { "aria-labelledby": "h-blocking", class: "card" },
        h("h3", { id: "h-blocking" }, "Latest blocking reports"),
        isEmpty(blocking.items) ? h("p", { class: "empty" }, "No blocking report in this period.") : table("Latest blocking reports",
          ["Received", "Source", "Subject", "Status"],
          blocking.items.map((item) => h("tr", {},
            h("td", {}, timeNode(h, item.received_at)), h("td", {}, item.source),
            h("td", {}, h("a", { href: `#/report/${item.id}` }, item.subject)), h("td", {}, statusChip(item.status))))),
        h("p", {}, h("a", { href: `#/reports?${new URLSearchParams({ severity: "block", since })}` }, "All blocking reports of the period →")))));
  stackedBars(chartBox, series, ["info", "warn", "block"], SEVERITY_COLORS, (key, from, to) => {
    go("reports", new URLSearchParams([["severity", key], ["status", "fail"], ["status", "warn"], ["since", from], ["until", to]]));
  });
  if (!isEmpty(rates.items)) {
    chart(rateBox, {
      grid: { left: 8, right: 48, top: 8, bottom: 8, containLabel: true },
      xAxis: { type: "value", min: 0, max: 100, interval: 25, axisLabel: { formatter: "{value} %", hideOverlap: true } },
      yAxis: { type: "category", inverse: true, data: rates.items.map((r) => r.source), axisLabel: { width: 120, overflow: "truncate" } },
      tooltip: { trigger: "axis", axisPointer: { type: "shadow" }, confine: true,
        formatter: (items) => tooltipNode(rates.items[items[0].dataIndex].source,
          [["Pass rate", percent(rates.items[items[0].dataIndex].pass_rate)],
           ["Passing", `${rates.items[items[0].dataIndex].passing} of ${rates.items[items[0].dataIndex].total}`]]) },
      series: [{ type: "bar", name: "Pass rate", itemStyle: { color: "#067647" },
        data: rates.items.map((r) => Math.round(r.pass_rate * 1000) / 10),
        label: { show: true, position: "right", formatter: "{c} %" } }],
    });
  }
}

function sourceLink(source, since) {
  return h("a", { href: `#/reports?${new URLSearchParams({ source, since })}` }, source);
}

function topSection(heading, by, answer, since) {
  const id = `h-top-${by}`;
  return h("section", { "aria-labelledby": id, class: "card" }, h("h3", { id }, heading),
    isEmpty(answer.items) ? h("p", { class: "empty" }, "Nothing failed in this period.") : table(heading,
      [by === "source" ? "Source" : "Subject", "Failing", "Blocking", "Total", "Failing since"],
      answer.items.map((row) => h("tr", {},
        h("td", {}, h("a", { href: `#/reports?${new URLSearchParams({ [by]: row.key, status: "fail", since })}` }, row.key)),
        h("td", { class: "num" }, number(row.failing)), h("td", { class: "num" }, number(row.blocking)),
        h("td", { class: "num" }, number(row.total)),
        h("td", {}, timeNode(h, row.first_failure_hour, { hint: false }),
          h("div", { class: "ago" }, "latest ", agoNode(h, row.last_failure_hour)))))));
}

// A tooltip as DOM (never HTML from API text).
function tooltipNode(title, rows) {
  return h("div", { class: "tip" }, h("strong", {}, title),
    ...rows.map(([name, value, color]) => h("div", { class: "tip-row" },
      color ? h("span", { class: "swatch", style: `background:${color}` }) : null, `${name}: `, h("b", {}, String(value)))));
}

// Stacked bars of a /timeline answer: one series per key, each bucket's numbers as the
// server sent them; the tooltip shows the server's counts and total.
function stackedBars(container, data, order, colors, onPick) {
  const keys = new Set(order);
  for (const one of data.buckets) for (const key of Object.keys(one.counts)) keys.add(key);
  const names = [...keys];
  const nextStart = (index) => (data.buckets[index + 1] ? data.buckets[index + 1].start : data.until);
  return chart(container, {
    grid: { left: 8, right: 16, top: 36, bottom: 8, containLabel: true },
    legend: { top: 0, data: names },
    tooltip: { trigger: "axis", axisPointer: { type: "shadow" }, confine: true, className: "chart-tooltip",
      formatter: (items) => {
        const one = data.buckets[items[0].dataIndex];
        return tooltipNode(`${bucketLabel(one.start, data.bucket)} · ${data.bucket}`,
          [...names.map((key) => [key, one.counts[key] || 0, colors[key]]), ["total", one.total]]);
      } },
    xAxis: { type: "category", data: data.buckets.map((one) => bucketLabel(one.start, data.bucket)),
      axisLabel: { hideOverlap: true, formatter: (value) => (data.bucket === "day" ? value.slice(5) : value.slice(5, 16)) },
      axisTick: { alignWithLabel: true } },
    yAxis: { type: "value", minInterval: 1 },
    series: names.map((key) => ({
      type: "bar", stack: "total", name: key, barMaxWidth: 36,
      itemStyle: { color: colors[key] }, emphasis: { focus: "series" },
      data: data.buckets.map((one) => one.counts[key] || 0),
    })),
  }, (event) => onPick(event.seriesName, data.buckets[event.dataIndex].start, nextStart(event.dataIndex)));
}

// --- reports ---------------------------------------------------------------------------
// Cursor paging forward and back: the page keeps the cursors it came through (a stack in
// the URL), the server does the paging and the (capped) count.
async function reports(params) {
  if (params.get("period")) {
    const preset = periodOf(params);
    const next = new URLSearchParams(params);
    next.delete("period");
    next.delete("until");
    next.set("since", new Date(Date.now() - preset[2]).toISOString());
    go("reports", next);
    return;
  }
  const filters = {
    severity: params.getAll("severity"),
    status: params.getAll("status"),
    source: params.get("source") || "",
    subject: params.get("subject") || "",
    label: params.getAll("label"),
    since: params.get("since") || "",
    until: params.get("until") || "",
    sort: params.get("sort") || "-received_at",
  };
  const cursors = params.getAll("c"); // the stack of cursors that led here
  const cursor = cursors[cursors.length - 1]; // ui-only: top of the page's own cursor stack
  const form = h("form", { class: "filters", "aria-label": "Report filters", onsubmit: (event) => {
    event.preventDefault();
    const data = new FormData(event.target);
    const next = new URLSearchParams();
    for (const value of data.getAll("severity")) next.append("severity", value);
    for (const value of data.getAll("status")) next.append("status", value);
    for (const key of ["source", "subject", "sort"]) if (data.get(key)) next.set(key, data.get(key));
    for (const label of String(data.get("labels") || "").split(",")) {
      if (label.trim()) next.append("label", label.trim());
    }
    for (const key of ["since", "until"]) if (data.get(key)) next.set(key, isoFromInput(data.get(key)));
    go("reports", next);
  } },
    checkboxes("Severity", "severity", SEVERITIES, filters.severity),
    checkboxes("Status", "status", STATUSES, filters.status),
    field("Source", h("input", { name: "source", value: filters.source, maxlength: 100 })),
    field("Subject", h("input", { name: "subject", value: filters.subject, maxlength: 200 })),
    field("Labels", h("input", { name: "labels", value: filters.label.join(", "), placeholder: "env:prod, team:billing" }), "key:value, comma separated"),
    field("Received since", h("input", { type: "datetime-local", name: "since", value: inputFromIso(filters.since) }), zoneLabel()),
    field("Received until", h("input", { type: "datetime-local", name: "until", value: inputFromIso(filters.until) }), zoneLabel()),
    field("Order", h("select", { name: "sort" },
      ...[["-received_at", "Newest received"], ["received_at", "Oldest received"],
          ["-observed_at", "Newest observed"], ["observed_at", "Oldest observed"]]
        .map(([value, title]) => h("option", { value, selected: value === filters.sort }, title)))),
    h("div", { class: "actions" }, h("button", { type: "submit" }, "Apply filters"),
      h("a", { href: "#/reports", class: "button secondary" }, "Clear")));
  const results = h("section", { "aria-label": "Reports" });
  show(h("div", { class: "page-head" }, h("h2", {}, "Reports"), presetLinks("reports", params, null)), form, results);
  loading(results);
  const query = {
    severity: filters.severity, status: filters.status, source: filters.source || undefined,
    subject: filters.subject || undefined, label: filters.label, since: filters.since, until: filters.until };
  const [page, count] = await Promise.all([
    api("/reports", { params: { ...query, sort: filters.sort, limit: PAGE_SIZE, cursor } }),
    api("/dashboard/count", { params: query }),
  ]);
  const pageParams = (stack) => {
    const next = new URLSearchParams(params);
    next.delete("c");
    for (const one of stack) next.append("c", one);
    return next;
  };
  const previous = h("button", { type: "button", class: "secondary", id: "prev-page",
    disabled: cursor === undefined, onclick: () => go("reports", pageParams(cursors.slice(0, -1))) }, "← Previous");
  const next = h("button", { type: "button", class: "secondary", id: "next-page",
    disabled: !page.next_cursor, onclick: () => go("reports", pageParams([...cursors, page.next_cursor])) }, "Next →");
  const total = count.capped ? `${count.cap}+` : number(count.count);
  const summary = h("p", { id: "match-count", class: "count" },
    h("strong", {}, total), ` ${count.count === 1 && !count.capped ? "report matches" : "reports match"}`,
    cursors[0] === undefined ? "" : ` · page ${cursors.length + 1}`); // ui-only: page number from the cursor stack
  const pager = h("div", { class: "pager" }, previous, next);
  if (isEmpty(page.items)) {
    put(results, [summary, h("p", { class: "empty" }, "No reports match these filters."), pager]);
    return;
  }
  put(results, [summary, table("Reports",
    ["Received", "Observed", "Severity", "Status", "Checks", "Source", "Subject", "Labels", "Signed"],
    page.items.map((item) => h("tr", {},
      h("td", {}, timeNode(h, item.received_at)),
      h("td", {}, timeNode(h, item.observed_at, { hint: false })),
      h("td", {}, severityChip(item.severity)),
      h("td", {}, statusChip(item.status)),
      h("td", {}, countChips(item.counts)),
      h("td", {}, item.source),
      h("td", {}, h("a", { href: `#/report/${item.id}` }, item.subject)),
      h("td", {}, labelChips(item.labels)),
      h("td", {}, signedCell(item))))), pager]);
}

async function report(_params, id) {
  const item = await api(`/reports/${encodeURIComponent(id)}`);
  const signature = h("section", { "aria-labelledby": "h-signature", class: "card" });
  const drawSignature = (details) => {
    put(signature, [h("h3", { id: "h-signature" }, "Signature"),
      h("p", { id: "signature-state" }, details ? "Signed." : "Not signed."),
      details ? h("dl", { id: "signature-details" },
        h("dt", {}, "Signed at"), h("dd", {}, timeNode(h, details.signed_at)),
        h("dt", {}, "Signer"), h("dd", { id: "signer" }, details.signer.role,
          details.signer.key_id ? h("span", { class: "mono" }, ` (API key ${details.signer.key_id})`) : null),
        h("dt", {}, "Signing key id"), h("dd", { class: "mono", id: "signing-key" }, details.signing_key_id)) : null,
      !details && can("sign") ? h("button", { type: "button", id: "sign", onclick: async (event) => {
        event.target.disabled = true;
        try {
          drawSignature(await api(`/reports/${encodeURIComponent(id)}/sign`, { method: "POST" }));
        } catch (error) {
          failure(error, signature);
        }
      } }, "Sign") : null]);
  };
  drawSignature(item.signature || null);
  show(h("p", {}, h("a", { href: "#/reports" }, "← Reports")),
    h("div", { class: "title-row" }, h("h2", {}, item.subject), h("span", { class: "chips" }, severityChip(item.severity), statusChip(item.status))),
    h("dl", { class: "facts" },
      h("dt", {}, "Source"), h("dd", {}, item.source),
      h("dt", {}, "Run"), h("dd", {}, item.run_id || "—"),
      h("dt", {}, "Observed"), h("dd", {}, timeNode(h, item.observed_at)),
      h("dt", {}, "Received"), h("dd", {}, timeNode(h, item.received_at)),
      h("dt", {}, "Checks"), h("dd", {}, countChips(item.counts)),
      h("dt", {}, "Labels"), h("dd", {}, labelChips(item.labels)),
      h("dt", {}, "Id"), h("dd", { class: "mono" }, item.id),
      h("dt", {}, "Content sha256"), h("dd", { class: "mono" }, item.content_sha256)),
    h("h3", {}, "Checks"),
    isEmpty(item.checks) ? h("p", { class: "empty" }, "No checks.") : table("Checks",
      ["Rule", "Status", "Severity", "Message", "Observed", "Expected"],
      item.checks.map((check) => h("tr", {},
        h("td", {}, check.rule), h("td", {}, statusChip(check.status)),
        h("td", {}, severityChip(check.severity)), h("td", {}, check.message || "—"),
        h("td", { class: "mono" }, check.observed === undefined ? "—" : JSON.stringify(check.observed)),
        h("td", { class: "mono" }, check.expected === undefined ? "—" : JSON.stringify(check.expected))))),
    signature,
    h("p", {}, h("a", { class: "button", id: "bundle", href: `/reports/${encodeURIComponent(id)}/bundle.zip`,
      download: `report-${id}.zip` }, "Download evidence bundle")));
}

// --- timeline: ECharts stacked bars from the server's buckets -------------------------------
async function timeline(params) {
  const [period, title, span, defaultBucket] = periodOf(params);
  const bucket = params.get("bucket") || defaultBucket;
  const groupBy = params.get("group_by") || "severity";
  const since = new Date(Date.now() - span).toISOString();
  const form = h("form", { class: "inline", "aria-label": "Timeline options", onsubmit: (event) => {
    event.preventDefault();
    const data = new FormData(event.target);
    go("timeline", new URLSearchParams({ period, bucket: data.get("bucket"), group_by: data.get("group_by") }));
  } },
    field("Bucket", h("select", { name: "bucket" }, ...["hour", "day"].map((v) => h("option", { value: v, selected: v === bucket }, v)))),
    field("Group by", h("select", { name: "group_by" }, ...["severity", "status", "source"].map((v) => h("option", { value: v, selected: v === groupBy }, v)))),
    h("button", { type: "submit" }, "Show"));
  const data = await api("/timeline", { params: { bucket, group_by: groupBy, since } });
  const box = h("div", { class: "chart", id: "timeline-chart", role: "img",
    "aria-label": `Stacked bars: reports per ${bucket} by ${groupBy}, ${title.toLowerCase()}` });
  show(h("div", { class: "page-head" }, h("h2", {}, "Timeline"), presetLinks("timeline", params, period)), form,
    h("section", { class: "card", "aria-label": "Timeline chart" }, box,
      h("p", { class: "muted", id: "timeline-range" }, "From ", timeNode(h, data.since, { hint: false }), " to ",
        timeNode(h, data.until, { hint: false }), `, one bar per ${bucket} (${zoneLabel()}). Click a bar to open its reports.`)));
  const colors = groupBy === "status" ? STATUS_COLORS : groupBy === "severity" ? SEVERITY_COLORS : {};
  const order = groupBy === "status" ? STATUSES : groupBy === "severity" ? SEVERITIES : [];
  stackedBars(box, data, order, colors, (key, from, to) => {
    go("reports", new URLSearchParams([[groupBy, key], ["since", from], ["until", to]]));
  });
}

// --- exports ---------------------------------------------------------------------------
const EXPORT_PERIODS = [["-24h", "Last 24 h"], ["-7d", "Last 7 days"], ["-30d", "Last 30 days"]];

async function exports(params) {
  const status = h("section", { "aria-label": "New export status", "aria-live": "polite" });
  const form = h("form", { class: "inline", "aria-label": "New export", onsubmit: async (event) => {
    event.preventDefault();
    const data = new FormData(event.target);
    loading(status);
    try {
      const made = await api("/exports", { method: "POST", body: { format: data.get("format"), since: data.get("since") } });
      await follow(made.id, status);
      go("exports", new URLSearchParams({ t: String(Date.now()) })); // re-read the list
    } catch (error) {
      failure(error, status);
    }
  } },
    field("Format", h("select", { name: "format" }, h("option", { value: "csv" }, "CSV"), h("option", { value: "ndjson" }, "NDJSON"))),
    field("Period", h("select", { name: "since" }, ...EXPORT_PERIODS.map(([value, title]) => h("option", { value }, title)))),
    h("button", { type: "submit", id: "create-export" }, "Create export"));
  const cursors = params.getAll("c");
  const cursor = cursors[cursors.length - 1]; // ui-only: top of the page's own cursor stack
  const list = await api("/exports", { params: { limit: PAGE_SIZE, cursor } });
  const pageParams = (stack) => {
    const next = new URLSearchParams();
    for (const one of stack) next.append("c", one);
    return next;
  };
  show(h("h2", {}, "Exports"), form, status,
    h("h3", {}, "Past exports"),
    isEmpty(list.items) ? h("p", { class: "empty" }, "No exports yet.") : table("Past exports",
      ["Created", "Status", "Format", "Period", "Rows", "Size", "File expires", "Download"],
      list.items.map((job) => h("tr", {},
        h("td", {}, timeNode(h, job.created_at)),
        h("td", {}, chip(job.status, `job-${job.status}`), job.error ? h("div", { class: "error-text" }, job.error) : null),
        h("td", {}, job.format.toUpperCase()),
        h("td", {}, periodText(job)),
        h("td", { class: "num" }, job.manifest ? number(job.manifest.rows) : "—"),
        h("td", { class: "num" }, job.manifest ? bytes(job.manifest.bytes) : "—"),
        h("td", {}, timeNode(h, job.file_expires_at)),
        h("td", {}, job.download_url ? h("a", { href: job.download_url, download: "", class: "download" }, `Download ${job.format}.gz`) : h("span", { class: "muted" }, "—"))))),
    h("div", { class: "pager" },
      h("button", { type: "button", class: "secondary", disabled: cursor === undefined,
        onclick: () => go("exports", pageParams(cursors.slice(0, -1))) }, "← Newer"),
      h("button", { type: "button", class: "secondary", disabled: !list.next_cursor,
        onclick: () => go("exports", pageParams([...cursors, list.next_cursor])) }, "Older →")));
}

function periodText(job) {
  const since = parse(job.since);
  const until = parse(job.until);
  if (!since || !until) return "—";
  return h("span", { title: `${job.since} – ${job.until}` }, `${clock(since)} – ${clock(until)}`);
}

async function follow(id, target) {
  for (;;) {
    const job = await api(`/exports/${encodeURIComponent(id)}`);
    put(target, [h("p", { role: "status" }, "Export ", h("span", { class: "mono" }, job.id.slice(0, 8)), ": ",
      h("span", { id: "export-status" }, job.status),
      job.manifest ? ` · ${number(job.manifest.rows)} rows, ${bytes(job.manifest.bytes)}` : null,
      job.error ? ` · ${job.error}` : null)]);
    if (["succeeded", "failed", "expired"].includes(job.status)) return;
    await new Promise((resolve) => setTimeout(resolve, 700));
  }
}

// --- retention (admin): dry run → plan → commit with its hash ------------------------------
async function retention() {
  const result = h("section", { "aria-label": "Retention plan", "aria-live": "polite" });
  const form = h("form", { class: "inline", "aria-label": "Retention dry run", onsubmit: async (event) => {
    event.preventDefault();
    const data = new FormData(event.target);
    const request = { older_than_days: Number(data.get("days")), include_signed: data.get("include_signed") === "on" };
    loading(result);
    try {
      const plan = await api("/admin/retention/run", { method: "POST", body: { ...request, dry_run: true } });
      put(result, [h("h3", {}, "Plan"), h("dl", { class: "facts" },
        h("dt", {}, "Cutoff"), h("dd", {}, timeNode(h, plan.plan.cutoff)),
        h("dt", {}, "Reports to delete"), h("dd", { id: "retention-candidates" }, plan.plan.candidates),
        h("dt", {}, "Signed reports kept"), h("dd", {}, plan.plan.held_signed),
        h("dt", {}, "Plan hash"), h("dd", { class: "mono" }, plan.plan_hash),
        h("dt", {}, "Plan expires"), h("dd", {}, timeNode(h, plan.expires_at))),
      h("button", { type: "button", id: "retention-commit", onclick: async (click) => {
        click.target.disabled = true;
        try {
          const done = await api("/admin/retention/run", { method: "POST", body: { ...request, dry_run: false, plan_hash: plan.plan_hash } });
          result.append(h("p", { id: "retention-done", role: "status" }, `Deleted ${done.deleted} reports.`));
        } catch (error) {
          result.append(h("p", { class: "error", role: "alert" }, String(error.message)));
        }
      } }, "Commit this plan")]);
    } catch (error) {
      failure(error, result);
    }
  } },
    field("Older than (days)", h("input", { type: "number", name: "days", min: 0, max: 36500, value: 90, required: true })),
    h("label", { class: "check" }, h("input", { type: "checkbox", name: "include_signed" }), "Include signed reports"),
    h("button", { type: "submit", id: "retention-dry-run" }, "Dry run"));
  show(h("h2", {}, "Retention"), h("p", { class: "muted" }, "A dry run shows what would be deleted; only that plan can then be committed."), form, result);
}

// --- alert rules and deliveries ------------------------------------------------------------
async function alerts(params) {
  const rules = await api("/alert-rules");
  const sections = [h("h2", {}, "Alert rules")];
  if (can("alertRulesWrite")) {
    sections.push(h("form", { class: "inline", "aria-label": "New alert rule", onsubmit: async (event) => {
      event.preventDefault();
      const data = new FormData(event.target);
      const match = {};
      if (data.getAll("severity")[0] !== undefined) match.severity = data.getAll("severity");
      try {
        await api("/alert-rules", { method: "POST", body: { name: data.get("name"), match,
          channels: [{ type: data.get("type"), url: data.get("url") }] } });
        render();
      } catch (error) {
        event.target.append(h("p", { class: "error", role: "alert" }, error.message));
      }
    } },
      field("Name", h("input", { name: "name", required: true, maxlength: 100 })),
      checkboxes("Severity", "severity", SEVERITIES, []),
      field("Channel", h("select", { name: "type" }, h("option", { value: "slack" }, "Slack"), h("option", { value: "webhook" }, "Webhook"))),
      field("URL", h("input", { name: "url", type: "url", required: true, maxlength: 2000 })),
      h("button", { type: "submit" }, "Create rule")));
  }
  sections.push(isEmpty(rules.items) ? h("p", { class: "empty" }, "No alert rules.") : table("Alert rules",
    ["Name", "Match", "Channels", "Created", "Actions"],
    rules.items.map((rule) => h("tr", {},
      h("td", {}, rule.name), h("td", {}, matchChips(rule.match)),
      h("td", {}, ...rule.channels.map((c) => h("div", {}, chip(c.type, "label"), " ", h("span", { class: "mono" }, c.target)))),
      h("td", {}, timeNode(h, rule.created_at)),
      h("td", {}, can("alertRulesWrite") ? h("button", { type: "button", class: "secondary",
        "aria-label": `Delete rule ${rule.name}`, onclick: async () => {
          try { await api(`/alert-rules/${rule.id}`, { method: "DELETE" }); render(); } catch (error) { failure(error); }
        } }, "Delete") : h("span", { class: "muted" }, "—"))))));
  const status = params.get("status") || "";
  const cursors = params.getAll("c");
  const cursor = cursors[cursors.length - 1]; // ui-only: top of the page's own cursor stack
  const deliveries = await api("/notifications", { params: { status: status || undefined, limit: PAGE_SIZE, cursor } });
  sections.push(h("h2", {}, "Deliveries"),
    h("form", { class: "inline", "aria-label": "Delivery filter", onsubmit: (event) => {
      event.preventDefault();
      const value = new FormData(event.target).get("status");
      go("alerts", new URLSearchParams(value ? { status: value } : {}));
    } }, field("Status", h("select", { name: "status" }, ...["", "pending", "delivered", "dead", "cancelled"]
      .map((v) => h("option", { value: v, selected: v === status }, v || "any")))), h("button", { type: "submit" }, "Show")),
    isEmpty(deliveries.items) ? h("p", { class: "empty" }, "No notifications.") : table("Deliveries",
      ["Created", "Rule", "Level", "Summary", "Status", "Attempts", "Last error"],
      deliveries.items.map((n) => h("tr", {}, h("td", {}, timeNode(h, n.created_at)), h("td", {}, n.rule_name),
        h("td", {}, n.level), h("td", {}, n.summary), h("td", {}, chip(n.status, `job-${n.status}`)), h("td", { class: "num" }, n.attempts),
        h("td", {}, n.last_error || "—")))),
    h("div", { class: "pager" },
      h("button", { type: "button", class: "secondary", disabled: cursor === undefined, onclick: () => {
        const next = new URLSearchParams(params); next.delete("c");
        for (const one of cursors.slice(0, -1)) next.append("c", one);
        go("alerts", next);
      } }, "← Previous"),
      h("button", { type: "button", class: "secondary", disabled: !deliveries.next_cursor, onclick: () => {
        const next = new URLSearchParams(params); next.append("c", deliveries.next_cursor); go("alerts", next);
      } }, "Next →")));
  show(...sections);
}

function matchChips(match) {
  const parts = [];
  for (const [key, value] of Object.entries(match || {})) {
    if (key === "labels") for (const [k, v] of Object.entries(value)) parts.push(chip(`${k}: ${v}`, "label"));
    else parts.push(chip(`${key}: ${[].concat(value).join(" or ")}`, "label"));
  }
  return parts[0] === undefined ? h("span", { class: "muted" }, "every report") : h("span", { class: "chips" }, ...parts);
}

// --- ops metrics: figures and small charts of the server's counts ---------------------------
function figure(label, value, id) {
  return h("div", { class: "figure" }, h("div", { class: "figure-value", id }, value), h("div", { class: "figure-label" }, label));
}

function smallBars(title, categories, series, colors) {
  const box = h("div", { class: "chart tiny", role: "img",
    "aria-label": `${title}: ${series.map((s) => `${s.name} ${categories.map((c, i) => `${c} ${s.data[i]}`).join(", ")}`).join("; ")}` });
  const section = h("section", { class: "card", "aria-label": title }, h("h3", {}, title), box);
  return [section, () => chart(box, {
    grid: { left: 8, right: 12, top: series[1] ? 28 : 12, bottom: 4, containLabel: true },
    legend: series[1] ? { top: 0 } : undefined,
    tooltip: { trigger: "axis", axisPointer: { type: "shadow" }, confine: true },
    xAxis: { type: "category", data: categories },
    yAxis: { type: "value", minInterval: 1 },
    series: series.map((s, i) => ({ type: "bar", name: s.name, data: s.data, barMaxWidth: 28,
      label: { show: true, position: "top" },
      itemStyle: colors && !series[1] ? { color: (p) => colors[categories[p.dataIndex]] || "#0b5cad" } : { color: ["#7a9cc6", "#0b5cad"][i] } })),
  })];
}

async function ops() {
  const m = await api("/ops/metrics");
  const r = m.requests;
  const parts = [];
  const severity = smallBars("Reports by severity", SEVERITIES, [
    { name: "last hour", data: SEVERITIES.map((s) => m.reports.last_hour[s] || 0) },
    { name: "last 24 h", data: SEVERITIES.map((s) => m.reports.last_24h[s] || 0) }]);
  const jobStates = ["queued", "running", "succeeded", "failed", "expired"];
  const jobs = smallBars("Export jobs by status", jobStates, [{ name: "jobs", data: jobStates.map((s) => m.exports[s] || 0) }],
    { queued: "#5b6470", running: "#0b5cad", succeeded: "#067647", failed: "#b42318", expired: "#8a6d00" });
  const refusedCodes = Object.keys(r.rejected);
  const refused = refusedCodes[0] === undefined ? null
    : smallBars("Refused requests by status", refusedCodes, [{ name: "refused", data: refusedCodes.map((code) => r.rejected[code]) }]);
  parts.push(severity, jobs);
  show(h("h2", {}, "Ops metrics"),
    h("p", { class: "muted" }, "As of ", timeNode(h, m.as_of), `; requests over the last ${r.window_minutes} minutes.`),
    h("div", { class: "figures", id: "ops-requests" },
      figure("requests", number(r.total)),
      figure("errors per minute", String(r.errors_per_minute)),
      figure("5xx ratio", percent(r.server_error_ratio)),
      figure("ingest p50", r.ingest_latency_ms.p50 === null ? "—" : `${r.ingest_latency_ms.p50} ms`),
      figure("ingest p95", r.ingest_latency_ms.p95 === null ? "—" : `${r.ingest_latency_ms.p95} ms`),
      figure("notification backlog", number(m.notifications.backlog)),
      figure("dead letters", number(m.notifications.dead_letters)),
      figure("dead letters, 24 h", number(m.notifications.dead_letters_last_24h))),
    h("div", { class: "grid3" }, severity[0], jobs[0],
      refused ? refused[0] : h("section", { class: "card" }, h("h3", {}, "Refused requests by status"), h("p", { class: "empty" }, "None in the last hour."))));
  for (const [, draw] of parts) draw();
  if (refused) refused[1]();
}

// --- API keys (admin) --------------------------------------------------------------------
async function keys() {
  const list = await api("/admin/keys");
  const made = h("div", { "aria-live": "polite" });
  show(h("h2", {}, "API keys"),
    h("form", { class: "inline", "aria-label": "New API key", onsubmit: async (event) => {
      event.preventDefault();
      const data = new FormData(event.target);
      try {
        const key = await api("/admin/keys", { method: "POST", body: { name: data.get("name"), role: data.get("role") } });
        put(made, [h("p", { role: "status" }, "Copy this secret now; it is never shown again: ", h("code", {}, key.secret))]);
      } catch (error) {
        failure(error, made);
      }
    } },
      field("Name", h("input", { name: "name", required: true, maxlength: 100 })),
      field("Role", h("select", { name: "role" }, ...["viewer", "operator", "auditor", "admin"].map((r) => h("option", { value: r }, r)))),
      h("button", { type: "submit" }, "Create key")),
    made,
    isEmpty(list.items) ? h("p", { class: "empty" }, "No keys.") : table("API keys",
      ["Name", "Role", "Prefix", "Origin", "Created", "Last used", "Revoked", "Actions"],
      list.items.map((key) => h("tr", {}, h("td", {}, key.name), h("td", {}, key.role), h("td", { class: "mono" }, key.prefix),
        h("td", {}, key.origin), h("td", {}, timeNode(h, key.created_at)), h("td", {}, timeNode(h, key.last_used_at)),
        h("td", {}, timeNode(h, key.revoked_at)),
        h("td", {}, key.revoked_at ? h("span", { class: "muted" }, "—") : h("button", { type: "button", class: "secondary", "aria-label": `Revoke key ${key.name}`,
          onclick: async () => {
            try { await api(`/admin/keys/${key.id}`, { method: "DELETE" }); render(); } catch (error) { failure(error); }
          } }, "Revoke"))))));
}

// --- start: the login check (200 with authenticated false when there is no session) --------
(async () => {
  try {
    const who = await api("/bff/session");
    if (who.authenticated) {
      session = who;
      start();
    } else {
      loginPage(null);
    }
  } catch (error) {
    loginPage(String(error.message));
  }
})();
