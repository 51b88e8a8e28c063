// histogram.js - a native histogram sample in the table view, as Prometheus
// 3's UI shows one: its count and sum, a bar chart of its buckets (one bar a
// bucket, its height the bucket's count) and the buckets as a table.  The
// sample is the API's JSON: {count, sum, buckets: [[rule, lower, upper,
// count], ...]} (rule: 0 (a,b], 1 [a,b), 2 (a,b), 3 [a,b]).
import { h } from "./util.js";

const OPEN = ["(", "[", "(", "["];
const CLOSE = ["]", ")", ")", "]"];

export function bucketRange(b) {
  return `${OPEN[b[0]] || "("}${b[1]}, ${b[2]}${CLOSE[b[0]] || "]"}`;
}

// The cell of one histogram sample.
export function histogramView(hist) {
  const buckets = hist.buckets || [];
  const max = Math.max(1e-300, ...buckets.map((b) => Number(b[3])));
  const bars = buckets.map((b) =>
    h("div.hbar", { title: `${bucketRange(b)}: ${b[3]}`, "data-count": b[3], style: { height: `${Math.max(1, (Number(b[3]) / max) * 100)}%` } }),
  );
  return h(
    "div.histogram",
    h("div.hsummary", `count: ${hist.count}   sum: ${hist.sum}`),
    buckets.length ? h("div.hchart", { "aria-label": "buckets" }, bars) : h("p.muted", "no buckets"),
    buckets.length
      ? h(
          "details.hbuckets",
          h("summary", `${buckets.length} buckets`),
          h("table.data", h("tbody", buckets.map((b) => h("tr", h("td", bucketRange(b)), h("td.value", b[3]))))),
        )
      : null,
  );
}
