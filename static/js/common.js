// Small helpers shared by every page: JSON fetch, DOM building, formatting.

export class ApiError extends Error {
  constructor(status, detail) {
    super(detail);
    this.status = status;
  }
}

const SAFE_METHODS = new Set(["GET", "HEAD", "OPTIONS"]);

/** The login's CSRF token (from <meta name="csrf-token">), as a header for changing requests. */
export function csrfHeaders(method) {
  if (SAFE_METHODS.has(String(method).toUpperCase())) return {};
  const meta = document.querySelector('meta[name="csrf-token"]');
  return meta && meta.content ? { "X-CSRF-Token": meta.content } : {};
}

/** Read a JSON API route; throws ApiError with the server's `detail` on a non-2xx answer. */
export async function api(method, url, body, headers = {}) {
  const init = { method, headers: { ...csrfHeaders(method), ...headers } };
  if (body instanceof FormData || body instanceof Blob) {
    init.body = body;
  } else if (body !== undefined) {
    init.body = JSON.stringify(body);
    init.headers["content-type"] = "application/json";
  }
  return readJson(await fetch(url, init));
}

/** The JSON body of a fetch Response; throws ApiError with the server's words when not ok. */
export async function readJson(response) {
  const text = await response.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch { data = text; }
  if (response.status === 401 && document.body) {
    // The login ended (expired or revoked): go to the login page, then come back here.
    window.location.assign(`/login?next=${encodeURIComponent(location.pathname + location.search)}`);
  }
  if (!response.ok) throw new ApiError(response.status, describeError(data, response));
  return data;
}

/** The server's error in words (FastAPI gives `detail` as a string or a list of problems). */
export function describeError(data, response) {
  const detail = data && data.detail;
  if (typeof detail === "string") return detail;
  if (Array.isArray(detail)) {
    return detail.map((d) => `${(d.loc || []).slice(1).join(".") || "input"}: ${d.msg}`).join("; ");
  }
  return `${response.status} ${response.statusText}`;
}

/** h("td", {class: "x", dataset: {id: 1}}, "text", child) builds an element; strings become text. */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") el.className = value;
    else if (key === "dataset") Object.assign(el.dataset, value);
    else if (key === "style" && typeof value === "object") Object.assign(el.style, value);
    else if (key.startsWith("on") && typeof value === "function") el.addEventListener(key.slice(2), value);
    else if (value === true) el.setAttribute(key, "");
    else el.setAttribute(key, String(value));
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

export function fmtBytes(n) {
  if (n == null) return "–";
  const units = ["B", "KB", "MB", "GB", "TB"];
  let i = 0;
  while (n >= 1000 && i < units.length - 1) { n /= 1000; i += 1; }
  return `${n.toFixed(n >= 100 || i === 0 ? 0 : 1)} ${units[i]}`;
}

export function fmtDuration(s) {
  if (s == null || !Number.isFinite(s)) return "–";
  s = Math.max(0, s);
  if (s < 60) return `${s < 10 ? s.toFixed(1) : Math.round(s)} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min ${String(Math.round(s % 60)).padStart(2, "0")} s`;
  return `${Math.floor(m / 60)} h ${String(m % 60).padStart(2, "0")} min`;
}

/** mm:ss.ff clock for the viewer. */
export function fmtClock(s) {
  if (!Number.isFinite(s)) return "–";
  const m = Math.floor(s / 60);
  const rest = s - m * 60;
  return `${m}:${rest.toFixed(2).padStart(5, "0")}`;
}

export function pct(x) {
  return `${Math.round((x || 0) * 100)}%`;
}

/** Read a JSON blob the server embedded in the page (<script type="application/json" id=...>). */
export function pageData(id = "page-data") {
  const el = document.getElementById(id);
  return el ? JSON.parse(el.textContent) : {};
}

export function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Sort a table's body by clicking its `th.sortable[data-key]` headers (values from td[data-sort]). */
export function makeSortable(table) {
  const heads = table.querySelectorAll("th.sortable");
  heads.forEach((th, col) => {
    th.addEventListener("click", () => {
      const asc = !th.classList.contains("sort-asc");
      heads.forEach((other) => other.classList.remove("sort-asc", "sort-desc"));
      th.classList.add(asc ? "sort-asc" : "sort-desc");
      const index = [...th.parentNode.children].indexOf(th);
      const body = table.tBodies[0];
      const rows = [...body.rows];
      const key = (row) => {
        const cell = row.cells[index];
        const raw = cell ? (cell.dataset.sort ?? cell.textContent.trim()) : "";
        const num = Number(raw);
        return raw !== "" && Number.isFinite(num) ? num : raw.toLowerCase();
      };
      rows.sort((a, b) => {
        const ka = key(a);
        const kb = key(b);
        const c = ka < kb ? -1 : ka > kb ? 1 : 0;
        return asc ? c : -c;
      });
      body.append(...rows);
      table.dataset.sortedBy = th.dataset.key || String(col);
    });
  });
}
