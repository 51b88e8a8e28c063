// editor.js - the PromQL editor: a textarea over a highlighted copy of its
// text (same font and wrapping, so the colours line up), and a completion
// popup of metric names, label names and values (from kiln's API) and
// function names.  Enter runs the query, Shift+Enter breaks the line.
import { api, cached } from "./api.js";
import { h, clear } from "./util.js";

export const FUNCTIONS = (
  "abs absent absent_over_time acos acosh asin asinh atan atanh avg_over_time ceil changes clamp clamp_max " +
  "clamp_min cos cosh count_over_time day_of_month day_of_week day_of_year days_in_month deg delta deriv exp " +
  "floor histogram_avg histogram_count histogram_fraction histogram_quantile histogram_stddev histogram_stdvar " +
  "histogram_sum holt_winters double_exponential_smoothing hour idelta increase info irate label_join " +
  "label_replace last_over_time ln log10 log2 mad_over_time max_over_time min_over_time minute month pi " +
  "predict_linear present_over_time quantile_over_time rad rate resets round scalar sgn sin sinh sort " +
  "sort_by_label sort_by_label_desc sort_desc sqrt stddev_over_time stdvar_over_time sum_over_time tan tanh " +
  "time timestamp vector year"
).split(" ");
export const AGGREGATIONS = "sum min max avg group stddev stdvar count count_values bottomk topk quantile limitk limit_ratio".split(" ");
const KEYWORDS = "by without on ignoring group_left group_right offset bool and or unless atan2".split(" ");
const KEYSET = new Set([...KEYWORDS, ...AGGREGATIONS]);
const FUNCSET = new Set(FUNCTIONS);

// Tokens for highlighting: [class, text].
const TOKEN =
  /(#[^\n]*)|("(?:[^"\\]|\\.)*"?|'(?:[^'\\]|\\.)*'?|`[^`]*`?)|(\d+(?:ms|[smhdwy])(?:\d+(?:ms|[smhdwy]))*|0x[0-9a-fA-F]+|\d*\.?\d+(?:[eE][+-]?\d+)?|\bInf\b|\bNaN\b)|([a-zA-Z_:][a-zA-Z0-9_:]*)|(=~|!~|!=|==|<=|>=|[-+*/%^<>=@])|([{}()[\],])|(\s+)|(.)/g;

export function tokenize(src) {
  const out = [];
  let inBraces = false;
  let m;
  TOKEN.lastIndex = 0;
  while ((m = TOKEN.exec(src))) {
    const t = m[0];
    let c = "";
    if (m[1]) c = "comment";
    else if (m[2]) c = "string";
    else if (m[3]) c = "number";
    else if (m[4]) {
      if (inBraces) c = "label";
      else if (KEYSET.has(t)) c = "keyword";
      else if (FUNCSET.has(t) && /^\s*\(/.test(src.slice(TOKEN.lastIndex))) c = "function";
      else c = "metric";
    } else if (m[5]) c = "operator";
    else if (m[6]) {
      c = "paren";
      if (t === "{") inBraces = true;
      if (t === "}") inBraces = false;
    }
    out.push([c, t]);
  }
  return out;
}

// What to complete at pos: {kind: "metric"|"label"|"value", prefix, label, metric, start}.
export function context(src, pos) {
  const before = src.slice(0, pos);
  const vm = /([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*"([^"]*)$/.exec(before);
  const open = before.lastIndexOf("{"),
    close = before.lastIndexOf("}");
  const metricOf = () => (/([a-zA-Z_:][a-zA-Z0-9_:]*)\s*$/.exec(before.slice(0, open)) || [])[1];
  if (vm && open > close) return { kind: "value", label: vm[1], prefix: vm[3], metric: metricOf(), start: pos - vm[3].length };
  const wm = /[a-zA-Z_:][a-zA-Z0-9_:]*$/.exec(before);
  const prefix = wm ? wm[0] : "";
  const start = pos - prefix.length;
  if (open > close) return { kind: "label", prefix, metric: metricOf(), start };
  if (/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*$/.test(before)) return { kind: "label", prefix, start };
  if (!prefix) return null;
  return { kind: "metric", prefix, start };
}

async function candidates(ctx) {
  const p = ctx.prefix.toLowerCase();
  const match = (xs) => xs.filter((x) => x.toLowerCase().includes(p) && x !== ctx.prefix);
  const rank = (xs) => xs.sort((a, b) => (b.toLowerCase().startsWith(p) - a.toLowerCase().startsWith(p)) || a.localeCompare(b));
  if (ctx.kind === "value") {
    const match0 = ctx.metric ? { "match[]": `{__name__=${JSON.stringify(ctx.metric)}}` } : {};
    const vals = await cached("v:" + ctx.label + ":" + (ctx.metric || ""), () =>
      api("label/" + encodeURIComponent(ctx.label) + "/values", match0).then((r) => r.data),
    );
    return rank(vals.filter((v) => v.toLowerCase().includes(p))).slice(0, 50).map((v) => ({ text: v, kind: "value" }));
  }
  if (ctx.kind === "label") {
    const match0 = ctx.metric ? { "match[]": `{__name__=${JSON.stringify(ctx.metric)}}` } : {};
    const names = await cached("l:" + (ctx.metric || ""), () => api("labels", match0).then((r) => r.data));
    return rank(match(names.filter((n) => n !== "__name__"))).slice(0, 50).map((v) => ({ text: v, kind: "label" }));
  }
  const metrics = await cached("m", () => api("label/__name__/values").then((r) => r.data));
  const fns = match([...FUNCTIONS, ...AGGREGATIONS]).map((t) => ({ text: t, kind: "function" }));
  const kws = match(KEYWORDS).map((t) => ({ text: t, kind: "keyword" }));
  const ms = rank(match(metrics)).map((t) => ({ text: t, kind: "metric" }));
  return [...ms.slice(0, 40), ...fns, ...kws].slice(0, 60);
}

// An editor in parent; onRun() when Enter is pressed.  Returns {el, get(), set(v), focus()}.
export function editor(value, onRun) {
  const hl = h("pre.hl", { "aria-hidden": "true" });
  const ta = h("textarea.input", { spellcheck: "false", rows: 1, placeholder: "Enter expression (press Shift+Enter for newlines)", "aria-label": "Expression" });
  const pop = h("ul.complete", { role: "listbox", hidden: true });
  const wrap = h("div.editor", hl, ta, pop);
  let items = [],
    sel = 0,
    ctx = null,
    seq = 0;

  const paint = () => {
    clear(hl, tokenize(ta.value).map(([c, t]) => (c ? h("span.t-" + c, t) : t)), "\n");
    ta.style.height = "auto";
    ta.style.height = ta.scrollHeight + "px";
  };
  const close = () => {
    pop.hidden = true;
    items = [];
  };
  const accept = (i) => {
    const it = items[i];
    if (!it || !ctx) return;
    const pos = ta.selectionStart;
    let text = it.text;
    if (it.kind === "function") text += "(";
    if (it.kind === "value") {
      text = text.replace(/\\/g, "\\\\").replace(/"/g, '\\"');
      if (ta.value[pos] !== '"') text += '"';
    }
    ta.value = ta.value.slice(0, ctx.start) + text + ta.value.slice(pos);
    const at = ctx.start + text.length;
    ta.setSelectionRange(at, at);
    close();
    paint();
    ta.focus();
  };
  const show = () => {
    clear(
      pop,
      items.map((it, i) =>
        h(`li.item${i === sel ? ".sel" : ""}`, { role: "option", onmousedown: (e) => (e.preventDefault(), accept(i)) }, h("span.kind.k-" + it.kind, it.kind[0]), it.text),
      ),
    );
    pop.hidden = items.length === 0;
    const s = pop.children[sel];
    if (s) s.scrollIntoView({ block: "nearest" });
  };
  const complete = async () => {
    const my = ++seq;
    ctx = context(ta.value, ta.selectionStart);
    if (!ctx) return close();
    const c = await candidates(ctx);
    if (my !== seq) return;
    items = c;
    sel = 0;
    show();
  };

  ta.value = value || "";
  ta.addEventListener("input", () => {
    paint();
    complete();
  });
  ta.addEventListener("scroll", () => (hl.scrollTop = ta.scrollTop));
  ta.addEventListener("blur", () => setTimeout(close, 100));
  ta.addEventListener("keydown", (e) => {
    if (!pop.hidden && items.length) {
      if (e.key === "ArrowDown" || e.key === "ArrowUp") {
        sel = (sel + (e.key === "ArrowDown" ? 1 : items.length - 1)) % items.length;
        show();
        return e.preventDefault();
      }
      if (e.key === "Tab" || (e.key === "Enter" && !e.shiftKey)) {
        accept(sel);
        return e.preventDefault();
      }
      if (e.key === "Escape") return close();
    }
    if (e.key === "Enter" && !e.shiftKey) {
      e.preventDefault();
      close();
      onRun();
    }
  });
  requestAnimationFrame(paint);
  return {
    el: wrap,
    get: () => ta.value,
    set: (v) => {
      ta.value = v;
      paint();
    },
    focus: () => ta.focus(),
  };
}
