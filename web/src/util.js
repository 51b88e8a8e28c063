// util.js - small DOM and formatting helpers shared by the pages.

// h("div.cls", {attrs}, children...): an element; strings become text.
export function h(tag, attrs, ...kids) {
  const [name, ...cls] = tag.split(".");
  const el = document.createElement(name || "div");
  if (cls.length) el.className = cls.join(" ");
  if (attrs && (typeof attrs !== "object" || attrs instanceof Node || Array.isArray(attrs))) {
    kids.unshift(attrs);
    attrs = null;
  }
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "style" && typeof v === "object") Object.assign(el.style, v);
    else if (k in el && k !== "list" && typeof v !== "string") el[k] = v;
    else el.setAttribute(k, v === true ? "" : v);
  }
  append(el, kids);
  return el;
}

function append(el, kids) {
  for (const k of kids) {
    if (k === null || k === undefined || k === false) continue;
    if (Array.isArray(k)) append(el, k);
    else el.append(k instanceof Node ? k : document.createTextNode(String(k)));
  }
}

export function clear(el, ...kids) {
  el.replaceChildren();
  append(el, kids);
  return el;
}

// {__name__="up", job="x"} -> up{job="x"}
export function seriesName(metric) {
  const name = metric.__name__ || "";
  const rest = Object.keys(metric)
    .filter((k) => k !== "__name__")
    .sort()
    .map((k) => `${k}=${JSON.stringify(metric[k])}`);
  return rest.length || !name ? `${name}{${rest.join(", ")}}` : name;
}

export function labelsView(labels) {
  return h(
    "span.labels",
    Object.keys(labels || {})
      .sort()
      .map((k) => h("span.label", h("b", k), "=", labels[k])),
  );
}

// Prometheus durations: 1h30m, 5m, 10s, 250ms, 1d, 1w, 1y.
const UNITS = { y: 31536e6, w: 6048e5, d: 864e5, h: 36e5, m: 6e4, s: 1e3, ms: 1 };
export function parseDuration(s) {
  if (!s) return null;
  const re = /(\d+)(ms|y|w|d|h|m|s)/gy;
  let ms = 0,
    m,
    seen = false;
  re.lastIndex = 0;
  while ((m = re.exec(s))) {
    ms += Number(m[1]) * UNITS[m[2]];
    seen = true;
    if (re.lastIndex === s.length) return ms;
  }
  return seen && re.lastIndex === s.length ? ms : null;
}

export function formatDuration(ms) {
  if (ms <= 0) return "0s";
  let out = "";
  for (const [u, n] of Object.entries(UNITS)) {
    if (ms >= n) {
      out += Math.floor(ms / n) + u;
      ms %= n;
    }
  }
  return out;
}

export function ago(iso) {
  if (!iso || iso.startsWith("0001-")) return "never";
  const d = Date.now() - new Date(iso).getTime();
  if (d < 0) return "just now";
  return formatDuration(Math.round(d / 1000) * 1000 || 0) + " ago";
}

export function seconds(s) {
  if (s === undefined || s === null) return "";
  if (s < 1e-3) return (s * 1e6).toFixed(0) + "µs";
  if (s < 1) return (s * 1e3).toFixed(1) + "ms";
  return s.toFixed(3) + "s";
}

export function iso(tsSec) {
  return new Date(tsSec * 1000).toISOString().replace(".000Z", "Z");
}

export function errorBox(e) {
  return h("div.alert.error", { role: "alert" }, h("b", "Error: "), e.message || String(e));
}

export function notice(kind, text) {
  return h(`div.alert.${kind}`, h("b", kind === "warning" ? "Warning: " : "Info: "), text);
}

// A page's frame: title, then its body filled by load(body), which may be async.
export async function page(root, title, load) {
  const body = h("div.page-body", h("p.muted", "Loading…"));
  clear(root, h("h1", title), body);
  try {
    await load(body);
  } catch (e) {
    clear(body, errorBox(e));
  }
}
