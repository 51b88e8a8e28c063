// graph.js - the graph view's chart: a range query's matrix drawn by uPlot,
// stacked or not, with a legend showing hover values.  Dragging over the
// plot selects a time range: onZoom(startSec, endSec).
import uPlot from "uplot";
import "uplot/dist/uPlot.min.css";
import { h, seriesName } from "./util.js";

// Distinct colours for up to many series (golden-angle hues).
function colour(i) {
  return `hsl(${Math.round((i * 137.508) % 360)}, 65%, 45%)`;
}

// A matrix on one time axis: xs from start to end by step, ys with nulls
// where a series has no sample.
export function align(result, start, end, step) {
  const n = Math.floor((end - start) / step) + 1;
  const xs = new Float64Array(n);
  for (let i = 0; i < n; i++) xs[i] = start + i * step;
  const ys = result.map((s) => {
    const y = new Array(n).fill(null);
    // a native histogram's line is its count
    for (const [t, v] of s.values || (s.histograms || []).map(([ht, hv]) => [ht, hv.count])) {
      const i = Math.round((t - start) / step);
      if (i >= 0 && i < n) y[i] = parseFloat(v);
    }
    return y;
  });
  return { xs, ys };
}

// Indices of the values whose neighbours are both gaps (null for none).
function isolated(y) {
  const out = [];
  for (let i = 0; i < y.length; i++)
    if (y[i] !== null && (i === 0 || y[i - 1] === null) && (i === y.length - 1 || y[i + 1] === null)) out.push(i);
  return out.length ? out : null;
}

function stack(ys) {
  const acc = ys.length ? new Array(ys[0].length).fill(0) : [];
  return ys.map((y) =>
    y.map((v, i) => {
      if (v === null) return null;
      acc[i] += v;
      return acc[i];
    }),
  );
}

// Draws into el; returns {plot, ms}: ms is the render time (performance.now()).
export function drawGraph(el, result, { start, end, step, stacked, width, onZoom }) {
  const t0 = performance.now();
  const { xs, ys } = align(result, start, end, step);
  const raw = ys;
  const data = [xs, ...(stacked ? stack(ys) : ys)];
  const names = result.map((s) => seriesName(s.metric));
  const opts = {
    width,
    height: 360,
    cursor: { drag: { x: true, y: false, setScale: false } },
    legend: { live: true },
    scales: { x: { time: true, min: start, max: end } },
    series: [
      { label: "Time", value: (u, v) => (v === null ? "" : new Date(v * 1000).toISOString()) },
      ...names.map((n, i) => ({
        label: n,
        stroke: colour(i),
        width: 1.25,
        fill: stacked ? colour(i).replace("hsl", "hsla").replace(")", ", 0.25)") : undefined,
        // a sample with no neighbour draws no line: show it as a dot
        points: { show: true, size: 5, filter: (u, si) => isolated(u.data[si]) },
        spanGaps: false,
        value: (u, v, si, di) => (di === null || raw[i][di] === null || raw[i][di] === undefined ? "" : String(raw[i][di])),
      })),
    ],
    axes: [{}, { size: 70 }],
    hooks: {
      setSelect: [
        (u) => {
          if (u.select.width < 4) return;
          const a = u.posToVal(u.select.left, "x"),
            b = u.posToVal(u.select.left + u.select.width, "x");
          u.setSelect({ width: 0, height: 0 }, false);
          onZoom && onZoom(a, b);
        },
      ],
    },
  };
  el.replaceChildren();
  const holder = h("div.chart");
  el.append(holder);
  const plot = new uPlot(opts, data, holder);
  const ms = performance.now() - t0;
  holder.dataset.series = String(result.length);
  holder.dataset.renderMs = ms.toFixed(1);
  return { plot, ms };
}
