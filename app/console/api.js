// The console's only way to the API: same-origin fetch with the session cookie.
// Every request carries X-Requested-With (the server demands it for unsafe methods with a
// cookie). cache: "no-cache" makes the browser revalidate with If-None-Match, so repeated
// reads are 304s answered from its cache. The API key is never stored in the browser.

export class ApiError extends Error {
  constructor(status, problem) {
    super((problem && (problem.detail || problem.title)) || `HTTP ${status}`);
    this.status = status;
    this.problem = problem;
  }
}

export function query(params) {
  const search = new URLSearchParams();
  for (const [key, value] of Object.entries(params || {})) {
    if (value === undefined || value === null || value === "") continue;
    if (Array.isArray(value)) {
      for (const one of value) search.append(key, one);
    } else {
      search.append(key, String(value));
    }
  }
  const text = search.toString();
  return text ? `?${text}` : "";
}

export async function api(path, { method = "GET", body, params } = {}) {
  const headers = { "X-Requested-With": "qc-console", Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(path + query(params), {
    method,
    headers,
    credentials: "same-origin",
    cache: "no-cache",
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (response.status === 204) return null;
  const type = response.headers.get("content-type") || "";
  const data = type.includes("json") ? await response.json() : null;
  if (!response.ok) {
    if (response.status === 401) window.dispatchEvent(new CustomEvent("qcc:unauthorized"));
    throw new ApiError(response.status, data);
  }
  return data;
}
