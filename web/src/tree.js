// tree.js - the query panel's tree view (g0.show_tree=1), as Prometheus 3's
// UI shows an expression: the tree /api/v1/parse_query answers (Prometheus'
// translateAST JSON), each node printed back as PromQL, evaluated on its own
// as an instant query (result count, time, label names with their number of
// values), and clickable: a click shows that node's result in the panel.
// query.js calls treeView; toPromQL is exported for the tests' use too.
import { api } from "./api.js";
import { h, clear, formatDuration } from "./util.js";

const quote = (s) => JSON.stringify(s);
const dur = (ms) => (ms < 0 ? "-" + formatDuration(-ms) : formatDuration(ms));
const names = (l) => (l || []).join(", ");

function atOffset(n) {
  let s = "";
  if (n.timestamp !== null && n.timestamp !== undefined) s += ` @ ${(n.timestamp / 1000).toFixed(3)}`;
  else if (n.startOrEnd) s += ` @ ${n.startOrEnd}()`;
  if (n.offset) s += ` offset ${dur(n.offset)}`;
  return s;
}

function selector(n) {
  const ms = (n.matchers || []).filter((m) => !(n.name && m.name === "__name__" && m.type === "="));
  const body = ms.map((m) => `${m.name}${m.type}${quote(m.value)}`).join(", ");
  return (n.name || "") + (body || !n.name ? `{${body}}` : "");
}

// The PromQL text of a parse_query node, as Prometheus' String() prints it.
export function toPromQL(n) {
  if (!n) return "";
  switch (n.type) {
    case "numberLiteral":
      return n.val;
    case "stringLiteral":
      return quote(n.val);
    case "vectorSelector":
      return selector(n) + atOffset(n);
    case "matrixSelector":
      return `${selector(n)}[${dur(n.range)}]` + atOffset(n);
    case "subquery":
      return `${toPromQL(n.expr)}[${dur(n.range)}:${n.step ? dur(n.step) : ""}]` + atOffset(n);
    case "call":
      return `${n.func.name}(${(n.args || []).map(toPromQL).join(", ")})`;
    case "parenExpr":
      return `(${toPromQL(n.expr)})`;
    case "unaryExpr":
      return `${n.op}${toPromQL(n.expr)}`;
    case "aggregation": {
      const grp = n.without ? ` without (${names(n.grouping)})` : n.grouping && n.grouping.length ? ` by (${names(n.grouping)})` : "";
      return `${n.op}${grp} (${n.param ? toPromQL(n.param) + ", " : ""}${toPromQL(n.expr)})`;
    }
    case "binaryExpr": {
      let op = n.op + (n.bool ? " bool" : "");
      const m = n.matching;
      if (m && (m.on || (m.labels && m.labels.length))) op += ` ${m.on ? "on" : "ignoring"} (${names(m.labels)})`;
      if (m && m.card === "many-to-one") op += ` group_left (${names(m.include)})`;
      if (m && m.card === "one-to-many") op += ` group_right (${names(m.include)})`;
      return `${toPromQL(n.lhs)} ${op} ${toPromQL(n.rhs)}`;
    }
  }
  return "";
}

function children(n) {
  switch (n.type) {
    case "binaryExpr":
      return [n.lhs, n.rhs];
    case "aggregation":
      return n.param ? [n.param, n.expr] : [n.expr];
    case "call":
      return n.args || [];
    case "subquery":
    case "parenExpr":
    case "unaryExpr":
      return [n.expr];
  }
  return [];
}

// The node's own line: what it is, without its children's text.
function headline(n) {
  switch (n.type) {
    case "binaryExpr":
      return toPromQL({ ...n, lhs: { type: "numberLiteral", val: "…" }, rhs: { type: "numberLiteral", val: "…" } }).replace(/^… | …$/g, "");
    case "aggregation":
      return toPromQL({ ...n, param: null, expr: { type: "numberLiteral", val: "…" } }).replace(/ \(…\)$/, "");
    case "call":
      return `${n.func.name}(…)`;
    case "subquery":
      return `[${dur(n.range)}:${n.step ? dur(n.step) : ""}]` + atOffset(n);
    case "parenExpr":
      return "( … )";
    case "unaryExpr":
      return n.op;
  }
  return toPromQL(n);
}

// "job: 2 values, instance: 3 values" of a vector or matrix result.
function labelStats(data) {
  if (data.resultType !== "vector" && data.resultType !== "matrix") return "";
  const seen = new Map();
  for (const s of data.result)
    for (const [k, v] of Object.entries(s.metric))
      if (k !== "__name__") (seen.get(k) || seen.set(k, new Set()).get(k)).add(v);
  return [...seen.keys()]
    .sort()
    .map((k) => `${k}: ${seen.get(k).size}`)
    .join(", ");
}

async function evaluate(info, expr, time, signal) {
  const t0 = performance.now();
  try {
    const j = await api("query", { query: expr, time }, { signal });
    const d = j.data;
    const n = d.resultType === "vector" || d.resultType === "matrix" ? d.result.length : 1;
    const stats = labelStats(d);
    const what = d.resultType === "scalar" || d.resultType === "string" ? d.resultType : `${n} series`;
    clear(info, `${what} · ${Math.round(performance.now() - t0)}ms`, stats && h("span.tree-labels", ` · labels: ${stats}`));
    info.dataset.results = String(n);
  } catch (e) {
    if (e.name === "AbortError") return;
    info.classList.add("error-text");
    clear(info, e.message);
    info.dataset.results = "error";
  }
}

// Draws the tree of expr into el; onSelect(nodeText) when a node is
// clicked (the root selects the whole expression).  Resolves when every
// node's evaluation has answered.
export async function treeView(el, expr, { time, selected, onSelect, signal }) {
  clear(el, h("p.muted", "Parsing…"));
  let root;
  try {
    root = (await api("parse_query", { query: expr }, { signal })).data;
  } catch (e) {
    if (e.name === "AbortError") return;
    clear(el, h("div.alert.error", h("b", "Error: "), e.message));
    return;
  }
  const jobs = [];
  let count = 0;
  const node = (n, depth) => {
    const text = toPromQL(n);
    const info = h("span.tree-info.muted", "…");
    const line = h(
      `div.tree-node${text === selected || (!selected && depth === 0) ? ".sel" : ""}`,
      { "data-expr": text, title: text, onclick: () => onSelect(depth === 0 ? "" : text) },
      h("code", headline(n)),
      " ",
      info,
    );
    if (count++ < 50) jobs.push(() => evaluate(info, text, time, signal));
    else clear(info, "not evaluated");
    const kids = children(n).filter(Boolean);
    return h("li", line, kids.length ? h("ul", kids.map((k) => node(k, depth + 1))) : null);
  };
  clear(el, h("ul.tree", node(root, 0)));
  // one at a time: a big expression's nodes must not flood the server
  for (const job of jobs) await job();
}
