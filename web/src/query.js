// query.js - the expression browser (/query): panels of an editor with a
// table view (instant query at a settable time) and a graph view (range
// query, range/end/step pickers, stacked or not, zoom by drag).  The state
// lives in the URL as Prometheus 3 writes it: g0.expr, g0.tab (table or
// graph; 0/1 of old links too), g0.range_input, g0.end_input,
// g0.moment_input, g0.step_input, g0.stacked, g0.show_tree.
import { api } from "./api.js";
import { editor } from "./editor.js";
import { drawGraph } from "./graph.js";
import { treeView } from "./tree.js";
import { histogramView } from "./histogram.js";
import { h, clear, seriesName, labelsView, parseDuration, formatDuration, errorBox, notice } from "./util.js";

function readPanels() {
  const q = new URLSearchParams(location.search);
  const panels = [];
  for (let i = 0; q.has(`g${i}.expr`) || q.has(`g${i}.tab`) || i === 0; i++) {
    const g = (k) => q.get(`g${i}.${k}`);
    let tab = g("tab") || "table";
    if (tab === "0") tab = "graph";
    if (tab === "1") tab = "table";
    panels.push({
      expr: g("expr") || "",
      tab: tab === "graph" ? "graph" : "table",
      range: g("range_input") || "1h",
      end: g("end_input") || "",
      moment: g("moment_input") || "",
      step: g("step_input") || "",
      stacked: g("stacked") === "1" || g("display_mode") === "stacked",
      showTree: g("show_tree") || "0",
    });
    if (i > 50) break;
  }
  return panels;
}

function writeUrl(panels) {
  const q = new URLSearchParams();
  panels.forEach((p, i) => {
    q.set(`g${i}.expr`, p.expr);
    q.set(`g${i}.show_tree`, p.showTree);
    q.set(`g${i}.tab`, p.tab);
    q.set(`g${i}.range_input`, p.range);
    if (p.end) q.set(`g${i}.end_input`, p.end);
    if (p.moment) q.set(`g${i}.moment_input`, p.moment);
    if (p.step) q.set(`g${i}.step_input`, p.step);
    if (p.stacked) q.set(`g${i}.stacked`, "1");
  });
  history.replaceState(null, "", "?" + q.toString());
}

// "2026-12-03T10:00:00Z" or "2026-12-03 10:00:00" (UTC) or unix seconds -> seconds; "" -> now.
function parseTime(s) {
  if (!s) return Date.now() / 1000;
  if (/^\d+(\.\d+)?$/.test(s)) return Number(s);
  const t = Date.parse(/[zZ]|[+-]\d\d:?\d\d$/.test(s) ? s.replace(" ", "T") : s.replace(" ", "T") + "Z");
  return isNaN(t) ? null : t / 1000;
}
function fmtTime(sec) {
  return new Date(sec * 1000).toISOString().replace("T", " ").replace(/\.\d+Z$/, "");
}

function messages(el, j) {
  for (const w of j.warnings || []) el.append(notice("warning", w));
  for (const w of j.infos || []) el.append(notice("info", w));
}

function valueCell(v) {
  return v[1];
}

function tableView(out, data) {
  const rows = [];
  const r = data.result;
  switch (data.resultType) {
    case "vector":
      for (const s of r) rows.push(h("tr", h("td.series", seriesName(s.metric)), s.histogram ? h("td.hvalue", histogramView(s.histogram[1])) : h("td.value", valueCell(s.value))));
      break;
    case "matrix":
      for (const s of r)
        rows.push(
          h(
            "tr",
            h("td.series", seriesName(s.metric)),
            h("td.value", [...(s.values || []).map((v) => h("div", `${v[1]} @${v[0]}`)), ...(s.histograms || []).map((v) => h("div", `count ${v[1].count}, sum ${v[1].sum} @${v[0]}`))]),
          ),
        );
      break;
    case "scalar":
    case "string":
      rows.push(h("tr", h("td.series", data.resultType), h("td.value", r[1])));
      break;
  }
  if (!rows.length) out.append(h("p.muted", "Empty query result"));
  else out.append(h("table.data.result", h("tbody", rows)));
  return data.resultType === "scalar" || data.resultType === "string" ? 1 : r.length;
}

function panel(state, panels, rerender) {
  const el = h("section.panel");
  const out = h("div.output");
  const stats = h("span.stats.muted");
  const run = () => {
    state.expr = ed.get();
    writeUrl(panels);
    execute();
  };
  const ed = editor(state.expr, run);
  let ctrl = null;
  // the tree view (show_tree=1): a click on a node shows its result below
  const tree = h("div.tree-view");
  const treeBtn = h("button.tree-toggle", { title: "Show the expression's tree" });
  const showTree = () => {
    treeBtn.textContent = state.showTree === "1" ? "Hide tree" : "Show tree";
    treeBtn.classList.toggle("active", state.showTree === "1");
    tree.hidden = state.showTree !== "1";
  };
  treeBtn.onclick = () => {
    state.showTree = state.showTree === "1" ? "0" : "1";
    state.node = "";
    showTree();
    writeUrl(panels);
    if (state.expr) execute();
  };
  showTree();

  const tabs = h("div.tabs");
  const opts = h("div.options");
  const setTab = (t) => {
    state.tab = t;
    writeUrl(panels);
    build();
    if (state.expr) execute();
  };

  const endInput = h("input.end", { value: state.end ? fmtTime(parseTime(state.end)) : "", placeholder: "End time (UTC)", size: 19, "aria-label": "End time" });
  const momentInput = h("input.moment", { value: state.moment ? fmtTime(parseTime(state.moment)) : "", placeholder: "Evaluation time (UTC)", size: 19, "aria-label": "Evaluation time" });
  const rangeInput = h("input.range", { value: state.range, size: 6, "aria-label": "Range" });
  const stepInput = h("input.step", { value: state.step, placeholder: "Res. (s)", size: 7, "aria-label": "Resolution" });

  const shiftRange = (f) => {
    const r = parseDuration(rangeInput.value) || 3600e3;
    const steps = [1, 5, 10, 30, 60, 300, 900, 1800, 3600, 7200, 21600, 43200, 86400, 172800, 604800, 1209600, 2419200, 7257600, 31536000].map((s) => s * 1000);
    let i = steps.findIndex((s) => s >= r);
    if (i < 0) i = steps.length - 1;
    i = Math.max(0, Math.min(steps.length - 1, i + f));
    rangeInput.value = formatDuration(steps[i]);
    state.range = rangeInput.value;
    run();
  };
  const shiftEnd = (f) => {
    const r = (parseDuration(rangeInput.value) || 3600e3) / 1000;
    const e = parseTime(state.end) ?? Date.now() / 1000;
    state.end = fmtTime(e + (f * r) / 2);
    endInput.value = state.end;
    run();
  };
  for (const [inp, key] of [
    [endInput, "end"],
    [momentInput, "moment"],
    [rangeInput, "range"],
    [stepInput, "step"],
  ])
    inp.addEventListener("change", () => {
      state[key] = inp.value.trim();
      run();
    });

  function build() {
    clear(
      tabs,
      ["table", "graph"].map((t) =>
        h(`button.tab${state.tab === t ? ".active" : ""}`, { onclick: () => setTab(t), "data-tab": t }, t === "table" ? "Table" : "Graph"),
      ),
    );
    if (state.tab === "table") {
      clear(opts, h("label", "Evaluation time: ", momentInput), h("button.small", { onclick: () => ((momentInput.value = ""), (state.moment = ""), run()) }, "now"));
    } else {
      const stackedBox = h("input", { type: "checkbox", checked: state.stacked, onchange: (e) => ((state.stacked = e.target.checked), run()) });
      clear(
        opts,
        h("button.small", { onclick: () => shiftRange(-1), title: "Shrink range" }, "−"),
        rangeInput,
        h("button.small", { onclick: () => shiftRange(1), title: "Widen range" }, "+"),
        h("button.small", { onclick: () => shiftEnd(-1), title: "Earlier" }, "«"),
        endInput,
        h("button.small", { onclick: () => shiftEnd(1), title: "Later" }, "»"),
        h("button.small", { onclick: () => ((state.end = ""), (endInput.value = ""), run()) }, "now"),
        stepInput,
        h("label.check", stackedBox, " stacked"),
      );
    }
    clear(out);
  }

  // The tree of the whole expression (when shown); a click on a node runs
  // that node alone below it.
  let treeCtrl = null;
  function drawTree(whole) {
    if (treeCtrl) treeCtrl.abort();
    treeCtrl = new AbortController();
    if (state.showTree !== "1" || !whole) return clear(tree);
    const time = state.moment ? parseTime(state.moment) : undefined;
    const onSelect = (node) => {
      state.node = node;
      for (const n of tree.querySelectorAll(".tree-node")) n.classList.remove("sel");
      const mine = [...tree.querySelectorAll(".tree-node")].find((n) => (node ? n.dataset.expr === node : !n.parentElement.parentElement.closest("li")));
      if (mine) mine.classList.add("sel");
      execute(false);
    };
    treeView(tree, whole, { time: time ?? undefined, selected: state.node, onSelect, signal: treeCtrl.signal });
  }

  async function execute(withTree = true) {
    if (ctrl) ctrl.abort();
    ctrl = new AbortController();
    const signal = ctrl.signal;
    const whole = state.expr.trim();
    if (withTree) {
      if (state.node && !(state.showTree === "1" && whole.includes(state.node))) state.node = "";
      drawTree(whole);
    }
    const expr = (state.showTree === "1" && state.node) || whole;
    clear(out);
    stats.textContent = "";
    if (!expr) return;
    const note = expr !== whole ? h("p.node-note.muted", "Result of the tree's node ", h("code", expr)) : null;
    const t0 = performance.now();
    out.append(h("p.muted.loading", "Loading…"));
    try {
      if (state.tab === "table") {
        const time = state.moment ? parseTime(state.moment) : undefined;
        if (state.moment && time === null) throw new Error(`cannot parse evaluation time "${state.moment}"`);
        const j = await api("query", { query: expr, time }, { signal });
        const ms = performance.now() - t0;
        clear(out, note);
        messages(out, j);
        const n = tableView(out, j.data);
        stats.textContent = `Load time: ${Math.round(ms)}ms   Result series: ${n}`;
      } else {
        const range = parseDuration(state.range);
        if (!range) throw new Error(`cannot parse range "${state.range}"`);
        const end = parseTime(state.end);
        if (end === null) throw new Error(`cannot parse end time "${state.end}"`);
        const width = Math.max(300, out.clientWidth || el.clientWidth || 900);
        const rs = range / 1000;
        const step = Number(state.step) > 0 ? Number(state.step) : Math.max(1, Math.round(rs / (width / 2)));
        const start = Math.floor((end - rs) / step) * step;
        const e = Math.floor(end / step) * step;
        const j = await api("query_range", { query: expr, start, end: e, step }, { signal });
        const ms = performance.now() - t0;
        clear(out, note);
        messages(out, j);
        if (j.data.resultType !== "matrix") throw new Error(`the graph needs a range vector result, got ${j.data.resultType}`);
        const holder = h("div.graph");
        out.append(holder);
        if (!j.data.result.length) holder.append(h("p.muted", "Empty query result"));
        const g = j.data.result.length
          ? drawGraph(holder, j.data.result, {
              start,
              end: e,
              step,
              stacked: state.stacked,
              width: width - 2,
              onZoom: (a, b) => {
                state.range = formatDuration(Math.max(1, Math.round(b - a)) * 1000);
                state.end = fmtTime(b);
                rangeInput.value = state.range;
                endInput.value = state.end;
                run();
              },
            })
          : { ms: 0 };
        window.__kilnLastRender = { series: j.data.result.length, ms: g.ms, apiMs: ms };
        stats.textContent = `Load time: ${Math.round(ms)}ms   Render time: ${g.ms.toFixed(1)}ms   Resolution: ${step}s   Result series: ${j.data.result.length}`;
      }
    } catch (err) {
      if (err.name === "AbortError") return;
      clear(out, note, errorBox(err));
    }
  }

  const format = async () => {
    try {
      const j = await api("format_query", { query: ed.get() });
      ed.set(j.data);
      state.expr = j.data;
      writeUrl(panels);
    } catch (err) {
      clear(out, errorBox(err));
    }
  };
  const remove = () => {
    panels.splice(panels.indexOf(state), 1);
    if (!panels.length) panels.push({ expr: "", tab: "table", range: "1h", end: "", moment: "", step: "", stacked: false, showTree: "0" });
    writeUrl(panels);
    rerender();
  };

  build();
  el.append(
    h("div.query-row", ed.el, h("button.primary.execute", { onclick: run }, "Execute"), h("button.format", { onclick: format, title: "Format expression" }, "Format"), treeBtn, h("button.remove", { onclick: remove, title: "Remove panel" }, "✕")),
    tree,
    h("div.panel-bar", tabs, opts, stats),
    out,
  );
  if (state.expr) setTimeout(execute, 0);
  return el;
}

export function queryPage(root) {
  const panels = readPanels();
  const render = () => {
    clear(
      root,
      panels.map((p) => panel(p, panels, render)),
      h(
        "button.add",
        {
          onclick: () => {
            panels.push({ expr: "", tab: "table", range: "1h", end: "", moment: "", step: "", stacked: false, showTree: "0" });
            writeUrl(panels);
            render();
          },
        },
        "Add query",
      ),
    );
  };
  render();
}
