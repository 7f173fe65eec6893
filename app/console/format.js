// Display helpers: readable times (local or UTC, a relative hint, the full timestamp on
// hover), sizes and percentages. They format single values the server sent; they never
// filter, sort or count API data.

const PREF = "qcc-times"; // "utc" or "local": a display preference, not data
const pad = (n) => String(n).padStart(2, "0");
const relative = new Intl.RelativeTimeFormat("en", { numeric: "auto" });
const STEPS = [[60, "second"], [60, "minute"], [24, "hour"], [7, "day"], [4.35, "week"], [12, "month"], [Infinity, "year"]];

export function utcMode() {
  try { return localStorage.getItem(PREF) === "utc"; } catch { return false; }
}

export function setUtcMode(on) {
  try { localStorage.setItem(PREF, on ? "utc" : "local"); } catch { /* private mode */ }
}

export function parse(value) {
  if (!value) return null;
  const date = new Date(value);
  return Number.isNaN(date.getTime()) ? null : date;
}

function zoneName() {
  const minutes = -new Date().getTimezoneOffset();
  if (minutes === 0) return "UTC";
  const sign = minutes > 0 ? "+" : "-";
  const abs = Math.abs(minutes);
  return `UTC${sign}${pad(Math.floor(abs / 60))}:${pad(abs % 60)}`;
}

export function zoneLabel() {
  return utcMode() ? "UTC" : `local time, ${zoneName()}`;
}

// "2026-12-02 03:10" in the chosen zone (seconds when asked).
export function clock(date, { seconds = false, utc = utcMode() } = {}) {
  const parts = utc
    ? [date.getUTCFullYear(), date.getUTCMonth() + 1, date.getUTCDate(), date.getUTCHours(), date.getUTCMinutes(), date.getUTCSeconds()]
    : [date.getFullYear(), date.getMonth() + 1, date.getDate(), date.getHours(), date.getMinutes(), date.getSeconds()];
  const [y, mo, d, h, mi, s] = parts;
  return `${y}-${pad(mo)}-${pad(d)} ${pad(h)}:${pad(mi)}${seconds ? `:${pad(s)}` : ""}${utc ? " UTC" : ""}`;
}

// Short axis/tooltip label for a bucket start: hours for hourly buckets, dates for days.
export function bucketLabel(value, bucket) {
  const date = parse(value);
  if (!date) return "—";
  const full = clock(date);
  return bucket === "day" ? full.slice(0, 10) : full;
}

export function ago(date, now = Date.now()) {
  let delta = (date.getTime() - now) / 1000;
  for (const [size, unit] of STEPS) {
    if (Math.abs(delta) < size) return relative.format(Math.round(delta), unit);
    delta /= size;
  }
  return "";
}

// The full instant for a tooltip: UTC with microseconds as the server wrote it, plus local.
export function fullStamp(value, date) {
  return `${value} (${clock(date, { seconds: true, utc: false })} ${zoneName()})`;
}

// A <time> element: readable text, relative hint, full timestamp on hover.
export function timeNode(h, value, { hint = true } = {}) {
  const date = parse(value);
  if (!date) return h("span", { class: "muted" }, "—");
  return h("time", { datetime: value, title: fullStamp(value, date) },
    clock(date), hint ? h("span", { class: "ago" }, ` · ${ago(date)}`) : null);
}

// Only the relative time ("16 minutes ago"), the exact instant on hover.
export function agoNode(h, value) {
  const date = parse(value);
  if (!date) return h("span", { class: "muted" }, "—");
  return h("time", { datetime: value, title: fullStamp(value, date) }, ago(date));
}

export function bytes(n) {
  if (n === null || n === undefined) return "—";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let value = Number(n);
  let unit = 0;
  while (value >= 1024 && unit < 4) { value /= 1024; unit += 1; }
  return `${unit === 0 ? value : value.toFixed(1)} ${units[unit]}`;
}

export function percent(ratio) {
  if (ratio === null || ratio === undefined) return "—";
  return `${(Number(ratio) * 100).toFixed(1)} %`;
}

export function number(n) {
  if (n === null || n === undefined) return "—";
  return Number(n).toLocaleString("en");
}

// datetime-local input value <-> RFC 3339, in the chosen zone.
export function inputFromIso(value) {
  const date = parse(value);
  if (!date) return "";
  return clock(date, { utc: utcMode() }).replace(" UTC", "").replace(" ", "T");
}

export function isoFromInput(value) {
  if (!value) return "";
  const date = new Date(utcMode() ? `${value}:00Z` : value);
  return Number.isNaN(date.getTime()) ? "" : date.toISOString();
}
