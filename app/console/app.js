// QC Collector console: plain ES modules, no build step. Every filter, sort, page and
// aggregate comes from the server; this code only renders what the API returns (the
// contract gate's tools/check_client_filter.py keeps it so).
import { api, ApiError } from "./api.js";

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

let session = null;
const view = document.getElementById("view");

function can(action) {
  return Boolean(session) && CAN[action].includes(session.role);
}

// --- DOM helpers: text only through textContent (never innerHTML with API data) ---------
function h(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (key === "text") node.textContent = value;
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function show(...nodes) {
  view.replaceChildren(...nodes);
}

function loading(target = view) {
  target.replaceChildren(h("p", { class: "loading", "aria-busy": "true" }, "Loading…"));
}

function failure(error, target = view) {
  const message = error instanceof ApiError ? `${error.status}: ${error.message}` : String(error);
  target.replaceChildren(h("p", { class: "error", role: "alert" }, message));
}

function table(headers, rows) {
  return h("table", {},
    h("thead", {}, h("tr", {}, ...headers.map((title) => h("th", { scope: "col" }, title)))),
    h("tbody", {}, ...rows));
}

function isEmpty(items) {
  return !items || items[0] === undefined;
}

function field(label, input) {
  return h("label", {}, label, input);
}

function checkboxes(legend, name, values, checked) {
  return h("fieldset", {}, h("legend", {}, legend),
    ...values.map((value) => h("label", {},
      h("input", { type: "checkbox", name, value, checked: checked.includes(value) }), value)));
}

function isoFromLocal(value) {
  return value ? new Date(value).toISOString() : "";
}

function localFromIso(value) {
  if (!value) return "";
  const date = new Date(value);
  const pad = (n) => String(n).padStart(2, "0");
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}T${pad(date.getHours())}:${pad(date.getMinutes())}`;
}

// --- routing: #/page?query ------------------------------------------------------------
function route() {
  const [path, search] = (location.hash.slice(1) || "/reports").split("?");
  const parts = path.split("/");
  return { page: parts[1] || "reports", id: parts[2], params: new URLSearchParams(search || "") };
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
  const pages = { reports, report, timeline, exports, retention, alerts, ops, keys };
  const draw = pages[page] || reports;
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
  document.getElementById("who").replaceChildren();
  const input = h("input", { type: "password", name: "api_key", id: "api-key", required: true,
                             autocomplete: "off", maxlength: 200 });
  const status = h("div", { "aria-live": "assertive" }, message ? h("p", { class: "error", role: "alert" }, message) : null);
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

function start() {
  const nav = document.getElementById("nav");
  nav.replaceChildren(...PAGES.map(([page, title, action]) =>
    action && !can(action) ? null : h("a", { href: `#/${page}`, "data-page": page }, title)).map((a) => a || ""));
  nav.hidden = false;
  const logout = h("button", { type: "button", class: "secondary", onclick: async () => {
    try { await api("/bff/logout", { method: "POST" }); } catch (error) { /* ended anyway */ }
    session = null;
    loginPage("Logged out.");
  } }, "Log out");
  document.getElementById("who").replaceChildren(
    h("span", { id: "whoami" }, `${session.tenant} · ${session.role} `), logout);
  if (!location.hash || location.hash === "#/") go("reports");
  else render();
}

window.addEventListener("qcc:unauthorized", () => {
  if (session) { session = null; loginPage("Your session has ended; log in again."); }
});
window.addEventListener("hashchange", render);

// --- reports ---------------------------------------------------------------------------
// Cursor paging forward and back: the page keeps the cursors it came through (a stack in
// the URL), the server does the paging.
async function reports(params) {
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
    for (const key of ["since", "until"]) if (data.get(key)) next.set(key, isoFromLocal(data.get(key)));
    go("reports", next);
  } },
    checkboxes("Severity", "severity", SEVERITIES, filters.severity),
    checkboxes("Status", "status", STATUSES, filters.status),
    field("Source", h("input", { name: "source", value: filters.source, maxlength: 100 })),
    field("Subject", h("input", { name: "subject", value: filters.subject, maxlength: 200 })),
    field("Labels (key:value, comma separated)", h("input", { name: "labels", value: filters.label.join(", ") })),
    field("Received since", h("input", { type: "datetime-local", name: "since", value: localFromIso(filters.since) })),
    field("Received until", h("input", { type: "datetime-local", name: "until", value: localFromIso(filters.until) })),
    field("Order", h("select", { name: "sort" },
      ...[["-received_at", "Newest received"], ["received_at", "Oldest received"],
          ["-observed_at", "Newest observed"], ["observed_at", "Oldest observed"]]
        .map(([value, title]) => h("option", { value, selected: value === filters.sort }, title)))),
    h("button", { type: "submit" }, "Apply filters"));
  const results = h("section", { "aria-label": "Reports" });
  show(h("h2", {}, "Reports"), form, results);
  loading(results);
  const page = await api("/reports", { params: {
    severity: filters.severity, status: filters.status, source: filters.source || undefined,
    subject: filters.subject || undefined, label: filters.label, since: filters.since,
    until: filters.until, sort: filters.sort, limit: PAGE_SIZE, cursor } });
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
  const pager = h("div", { class: "pager" }, previous, next);
  if (isEmpty(page.items)) {
    results.replaceChildren(h("p", { class: "empty" }, "No reports match these filters."), pager);
    return;
  }
  results.replaceChildren(table(
    ["Received", "Severity", "Status", "Source", "Subject", "Signed"],
    page.items.map((item) => h("tr", {},
      h("td", {}, item.received_at),
      h("td", { class: `sev-${item.severity}` }, item.severity),
      h("td", { class: `st-${item.status}` }, item.status),
      h("td", {}, item.source),
      h("td", {}, h("a", { href: `#/report/${item.id}` }, item.subject)),
      h("td", {}, item.signed ? "yes" : "no")))), pager);
}

async function report(_params, id) {
  const item = await api(`/reports/${encodeURIComponent(id)}`);
  const signature = h("section", { "aria-label": "Signature" });
  const drawSignature = (signed, details) => {
    signature.replaceChildren(h("h3", {}, "Signature"),
      h("p", { id: "signature-state" }, signed ? "Signed." : "Not signed."),
      details ? h("dl", {}, h("dt", {}, "Signing key"), h("dd", { class: "mono" }, details.signing_key_id),
                             h("dt", {}, "Signed at"), h("dd", {}, details.signed_at),
                             h("dt", {}, "Signer role"), h("dd", {}, details.signer.role)) : null,
      !signed && can("sign") ? h("button", { type: "button", id: "sign", onclick: async (event) => {
        event.target.disabled = true;
        try {
          drawSignature(true, await api(`/reports/${encodeURIComponent(id)}/sign`, { method: "POST" }));
        } catch (error) {
          failure(error, signature);
        }
      } }, "Sign") : null);
  };
  drawSignature(item.signed, null);
  show(h("p", {}, h("a", { href: "#/reports" }, "← Reports")),
    h("h2", {}, item.subject),
    h("dl", {},
      h("dt", {}, "Id"), h("dd", { class: "mono" }, item.id),
      h("dt", {}, "Source"), h("dd", {}, item.source),
      h("dt", {}, "Run"), h("dd", {}, item.run_id || "—"),
      h("dt", {}, "Observed"), h("dd", {}, item.observed_at),
      h("dt", {}, "Received"), h("dd", {}, item.received_at),
      h("dt", {}, "Status"), h("dd", { class: `st-${item.status}` }, item.status),
      h("dt", {}, "Severity"), h("dd", { class: `sev-${item.severity}` }, item.severity),
      h("dt", {}, "Labels"), h("dd", {}, Object.entries(item.labels || {}).map(([k, v]) => `${k}:${v}`).join(", ") || "—"),
      h("dt", {}, "Content sha256"), h("dd", { class: "mono" }, item.content_sha256)),
    h("h3", {}, "Checks"),
    isEmpty(item.checks) ? h("p", { class: "empty" }, "No checks.") : table(
      ["Rule", "Status", "Severity", "Message", "Observed", "Expected"],
      item.checks.map((check) => h("tr", {},
        h("td", {}, check.rule), h("td", { class: `st-${check.status}` }, check.status),
        h("td", { class: `sev-${check.severity}` }, check.severity), h("td", {}, check.message || ""),
        h("td", {}, check.observed === undefined ? "" : JSON.stringify(check.observed)),
        h("td", {}, check.expected === undefined ? "" : JSON.stringify(check.expected))))),
    signature,
    h("p", {}, h("a", { class: "button", id: "bundle", href: `/reports/${encodeURIComponent(id)}/bundle.zip`,
                        download: `report-${id}.zip` }, "Download evidence bundle")));
}

// --- timeline: bars drawn from the server's buckets --------------------------------------
const COLORS = { block: "#b42318", warn: "#b54708", info: "#0b5cad", fail: "#b42318", pass: "#067647" };

async function timeline(params) {
  const bucket = params.get("bucket") || "hour";
  const groupBy = params.get("group_by") || "severity";
  const form = h("form", { class: "filters", "aria-label": "Timeline options", onsubmit: (event) => {
    event.preventDefault();
    const data = new FormData(event.target);
    go("timeline", new URLSearchParams({ bucket: data.get("bucket"), group_by: data.get("group_by") }));
  } },
    field("Bucket", h("select", { name: "bucket" }, ...["hour", "day"].map((v) => h("option", { value: v, selected: v === bucket }, v)))),
    field("Group by", h("select", { name: "group_by" }, ...["severity", "status", "source"].map((v) => h("option", { value: v, selected: v === groupBy }, v)))),
    h("button", { type: "submit" }, "Show"));
  const data = await api("/timeline", { params: { bucket, group_by: groupBy } });
  const width = 900;
  const height = 240;
  const slot = width / Math.max(1, data.buckets.length); // ui-only: bar width from the bucket count
  // ui-only: the y scale's top; every number drawn is the server's bucket total or count
  let top = 1;
  for (const one of data.buckets) top = Math.max(top, one.total);
  const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
  svg.setAttribute("class", "chart");
  svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
  svg.setAttribute("role", "img");
  svg.setAttribute("aria-label", `Reports per ${bucket} by ${groupBy}, ${data.since} to ${data.until}`);
  const keys = new Set();
  data.buckets.forEach((one, index) => {
    let y = height;
    for (const [key, count] of Object.entries(one.counts)) {
      keys.add(key);
      const barHeight = (count / top) * (height - 10);
      y -= barHeight;
      const rect = document.createElementNS("http://www.w3.org/2000/svg", "rect");
      rect.setAttribute("class", "bar");
      rect.setAttribute("x", String(index * slot + 1));
      rect.setAttribute("y", String(y));
      rect.setAttribute("width", String(Math.max(1, slot - 2)));
      rect.setAttribute("height", String(barHeight));
      rect.setAttribute("fill", COLORS[key] || "#6b7280");
      const title = document.createElementNS("http://www.w3.org/2000/svg", "title");
      title.textContent = `${one.start}: ${key} ${count} (total ${one.total})`;
      rect.append(title);
      svg.append(rect);
    }
  });
  const legend = h("p", { class: "legend" }, ...[...keys].map((key) =>
    h("span", {}, h("span", { class: "swatch", style: `background:${COLORS[key] || "#6b7280"}` }), key)));
  show(h("h2", {}, "Timeline"), form, svg, legend,
    h("p", { class: "empty" }, `${data.since} – ${data.until}, one bar per ${bucket}.`));
}

// --- exports ---------------------------------------------------------------------------
async function exports() {
  const status = h("section", { "aria-label": "Export status", "aria-live": "polite" });
  const form = h("form", { class: "inline", "aria-label": "New export", onsubmit: async (event) => {
    event.preventDefault();
    const data = new FormData(event.target);
    loading(status);
    try {
      const made = await api("/exports", { method: "POST", body: { format: data.get("format"), since: data.get("since") } });
      await follow(made.id, status);
    } catch (error) {
      failure(error, status);
    }
  } },
    field("Format", h("select", { name: "format" }, h("option", { value: "csv" }, "CSV"), h("option", { value: "ndjson" }, "NDJSON"))),
    field("Since (e.g. -24h or an RFC 3339 time)", h("input", { name: "since", value: "-24h", required: true, maxlength: 64 })),
    h("button", { type: "submit", id: "create-export" }, "Create export"));
  show(h("h2", {}, "Exports"), form, status);
}

async function follow(id, target) {
  for (;;) {
    const job = await api(`/exports/${encodeURIComponent(id)}`);
    target.replaceChildren(h("dl", {},
      h("dt", {}, "Export"), h("dd", { class: "mono" }, job.id),
      h("dt", {}, "Status"), h("dd", { id: "export-status" }, job.status),
      job.manifest ? h("dt", {}, "Rows") : null, job.manifest ? h("dd", {}, job.manifest.rows) : null,
      job.error ? h("dt", {}, "Error") : null, job.error ? h("dd", {}, job.error) : null),
      job.download_url ? h("a", { class: "button", id: "export-download", href: job.download_url, download: "" }, "Download (signed link)") : null);
    if (["succeeded", "failed", "expired"].includes(job.status)) return;
    await new Promise((resolve) => setTimeout(resolve, 1000));
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
      result.replaceChildren(h("h3", {}, "Plan"), h("dl", {},
        h("dt", {}, "Cutoff"), h("dd", {}, plan.plan.cutoff),
        h("dt", {}, "Reports to delete"), h("dd", { id: "retention-candidates" }, plan.plan.candidates),
        h("dt", {}, "Signed reports kept"), h("dd", {}, plan.plan.held_signed),
        h("dt", {}, "Plan hash"), h("dd", { class: "mono" }, plan.plan_hash),
        h("dt", {}, "Plan expires"), h("dd", {}, plan.expires_at || "—")),
      h("button", { type: "button", id: "retention-commit", onclick: async (click) => {
        click.target.disabled = true;
        try {
          const done = await api("/admin/retention/run", { method: "POST", body: { ...request, dry_run: false, plan_hash: plan.plan_hash } });
          result.append(h("p", { id: "retention-done", role: "status" }, `Deleted ${done.deleted} reports.`));
        } catch (error) {
          result.append(h("p", { class: "error", role: "alert" }, String(error.message)));
        }
      } }, "Commit this plan"));
    } catch (error) {
      failure(error, result);
    }
  } },
    field("Older than (days)", h("input", { type: "number", name: "days", min: 0, max: 36500, value: 90, required: true })),
    h("label", {}, h("input", { type: "checkbox", name: "include_signed" }), "Include signed reports"),
    h("button", { type: "submit", id: "retention-dry-run" }, "Dry run"));
  show(h("h2", {}, "Retention"), form, result);
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
  sections.push(isEmpty(rules.items) ? h("p", { class: "empty" }, "No alert rules.") : table(
    ["Name", "Match", "Channels", ""],
    rules.items.map((rule) => h("tr", {},
      h("td", {}, rule.name), h("td", { class: "mono" }, JSON.stringify(rule.match || {})),
      h("td", {}, rule.channels.map((c) => `${c.type} ${c.target}`).join("; ")),
      h("td", {}, can("alertRulesWrite") ? h("button", { type: "button", class: "secondary",
        "aria-label": `Delete rule ${rule.name}`, onclick: async () => {
          try { await api(`/alert-rules/${rule.id}`, { method: "DELETE" }); render(); } catch (error) { failure(error); }
        } }, "Delete") : "")))));
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
    isEmpty(deliveries.items) ? h("p", { class: "empty" }, "No notifications.") : table(
      ["Created", "Rule", "Level", "Summary", "Status", "Attempts", "Last error"],
      deliveries.items.map((n) => h("tr", {}, h("td", {}, n.created_at), h("td", {}, n.rule_name),
        h("td", {}, n.level), h("td", {}, n.summary), h("td", {}, n.status), h("td", {}, n.attempts),
        h("td", {}, n.last_error || "")))),
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

// --- ops metrics -------------------------------------------------------------------------
function counts(title, values) {
  const entries = Object.entries(values || {});
  return h("section", {}, h("h3", {}, title), entries[0] === undefined ? h("p", { class: "empty" }, "None.")
    : table(["", "Count"], entries.map(([key, n]) => h("tr", {}, h("td", {}, key), h("td", {}, n)))));
}

async function ops() {
  const m = await api("/ops/metrics");
  const r = m.requests;
  show(h("h2", {}, "Ops metrics"), h("p", { class: "empty" }, `As of ${m.as_of}; requests over the last ${r.window_minutes} minutes.`),
    counts("Reports, last hour, by severity", m.reports.last_hour),
    counts("Reports, last 24 hours, by severity", m.reports.last_24h),
    counts("Export jobs by status", m.exports),
    h("h3", {}, "Requests"), h("dl", { id: "ops-requests" },
      h("dt", {}, "Requests"), h("dd", {}, r.total),
      h("dt", {}, "Errors per minute"), h("dd", {}, r.errors_per_minute),
      h("dt", {}, "5xx ratio"), h("dd", {}, r.server_error_ratio),
      h("dt", {}, "Ingest latency p50 / p95 (ms)"), h("dd", {}, `${r.ingest_latency_ms.p50 ?? "—"} / ${r.ingest_latency_ms.p95 ?? "—"}`)),
    counts("Refused requests by status", r.rejected),
    h("h3", {}, "Notifications"), h("dl", {},
      h("dt", {}, "Backlog"), h("dd", {}, m.notifications.backlog),
      h("dt", {}, "Dead letters"), h("dd", {}, m.notifications.dead_letters),
      h("dt", {}, "Dead letters, last 24 hours"), h("dd", {}, m.notifications.dead_letters_last_24h)));
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
        made.replaceChildren(h("p", { role: "status" }, "Copy this secret now; it is never shown again: ", h("code", {}, key.secret)));
      } catch (error) {
        failure(error, made);
      }
    } },
      field("Name", h("input", { name: "name", required: true, maxlength: 100 })),
      field("Role", h("select", { name: "role" }, ...["viewer", "operator", "auditor", "admin"].map((r) => h("option", { value: r }, r)))),
      h("button", { type: "submit" }, "Create key")),
    made,
    isEmpty(list.items) ? h("p", { class: "empty" }, "No keys.") : table(
      ["Name", "Role", "Prefix", "Origin", "Created", "Last used", "Revoked", ""],
      list.items.map((key) => h("tr", {}, h("td", {}, key.name), h("td", {}, key.role), h("td", { class: "mono" }, key.prefix),
        h("td", {}, key.origin), h("td", {}, key.created_at), h("td", {}, key.last_used_at || "—"), h("td", {}, key.revoked_at || "—"),
        h("td", {}, key.revoked_at ? "" : h("button", { type: "button", class: "secondary", "aria-label": `Revoke key ${key.name}`,
          onclick: async () => {
            try { await api(`/admin/keys/${key.id}`, { method: "DELETE" }); render(); } catch (error) { failure(error); }
          } }, "Revoke"))))));
}

// --- start: resume a session (the cookie is httpOnly: ask the server who we are) ------------
(async () => {
  try {
    session = await api("/bff/session");
    start();
  } catch (error) {
    loginPage(error instanceof ApiError && error.status === 401 ? null : String(error.message));
  }
})();
