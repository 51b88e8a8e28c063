// pages.js - the pages besides the expression browser: alerts, rules,
// targets, service discovery and the status pages (runtime and build
// information, configuration, flags, TSDB status).  Each reads one or two
// of kiln's API endpoints and draws tables.
import { api } from "./api.js";
import { h, clear, page, labelsView, ago, seconds } from "./util.js";

const table = (head, rows) => h("table.data", h("thead", h("tr", head.map((c) => h("th", c)))), h("tbody", rows));
const kv = (obj) => table(["Name", "Value"], Object.entries(obj).map(([k, v]) => h("tr", h("td", k), h("td", typeof v === "object" ? JSON.stringify(v) : String(v)))));
const queryLink = (expr) => h("a", { href: "query?g0.expr=" + encodeURIComponent(expr) + "&g0.tab=table" }, expr);

// ---- alerts ----

export function alertsPage(root) {
  page(root, "Alerts", async (body) => {
    const j = await api("rules", { type: "alert" });
    const show = { inactive: true, pending: true, firing: true };
    const count = { inactive: 0, pending: 0, firing: 0 };
    const rules = [];
    for (const g of j.data.groups) for (const r of g.rules) if (r.type === "alerting") rules.push([g, r]);
    for (const [, r] of rules) count[r.state] = (count[r.state] || 0) + 1;
    const list = h("div.alert-list");
    const text = h("input", { placeholder: "Filter by name or labels", size: 30 });
    const draw = () => {
      const f = text.value.toLowerCase();
      const shown = rules.filter(([, r]) => show[r.state] && (!f || JSON.stringify([r.name, r.labels]).toLowerCase().includes(f)));
      clear(
        list,
        shown.length ? null : h("p.muted", rules.length ? "No alerting rule matches the filter." : "No alerting rules."),
        shown.map(([g, r]) =>
          h(
            "details.group.alert-rule",
            { open: r.state !== "inactive", "data-state": r.state, "data-name": r.name },
            h("summary", h("span.badge." + r.state, r.state.toUpperCase()), r.name, h("span.muted", `${r.alerts.length} active`), h("span.muted", g.file + " > " + g.name)),
            h(
              "div.body.rule",
              h("pre", "alert: " + r.name + "\nexpr: " + r.query + (r.duration ? "\nfor: " + r.duration + "s" : "")),
              Object.keys(r.labels || {}).length ? h("div", "Labels: ", labelsView(r.labels)) : null,
              r.alerts.length
                ? table(
                    ["Labels", "State", "Active since", "Value"],
                    r.alerts.map((a) => h("tr", h("td", labelsView(a.labels)), h("td", h("span.badge." + a.state, a.state)), h("td", a.activeAt ? ago(a.activeAt) : ""), h("td", a.value))),
                  )
                : null,
            ),
          ),
        ),
      );
    };
    const box = (s) => h("label.check", h("input", { type: "checkbox", checked: true, onchange: (e) => ((show[s] = e.target.checked), draw()) }), ` ${s} (${count[s] || 0})`);
    text.addEventListener("input", draw);
    clear(body, h("div.filters", box("inactive"), box("pending"), box("firing"), text), list);
    draw();
  });
}

// ---- rules ----

export function rulesPage(root) {
  page(root, "Rules", async (body) => {
    const j = await api("rules");
    clear(
      body,
      j.data.groups.length ? null : h("p.muted", "No rule groups are loaded."),
      j.data.groups.map((g) =>
        h(
          "details.group",
          { open: true },
          h("summary", g.name, h("span.muted", g.file), h("span.muted", `interval ${g.interval}s, last evaluation ${ago(g.lastEvaluation)}, took ${seconds(g.evaluationTime)}`)),
          h(
            "div.body",
            table(
              ["Rule", "State", "Error", "Last evaluation", "Evaluation time"],
              g.rules.map((r) =>
                h(
                  "tr.rule",
                  h("td", h("pre", (r.type === "alerting" ? "alert: " : "record: ") + r.name + "\nexpr: "), queryLink(r.query), Object.keys(r.labels || {}).length ? h("div", labelsView(r.labels)) : null),
                  h("td", h("span.badge." + (r.health === "ok" ? "ok" : r.health === "err" ? "err" : "unknown"), r.health)),
                  h("td.error-text", r.lastError || ""),
                  h("td", ago(r.lastEvaluation)),
                  h("td", seconds(r.evaluationTime)),
                ),
              ),
            ),
          ),
        ),
      ),
    );
  });
}

// ---- targets ----

export function targetsPage(root) {
  page(root, "Targets", async (body) => {
    const j = await api("targets", { state: "active" });
    const pools = new Map();
    for (const t of j.data.activeTargets) {
      if (!pools.has(t.scrapePool)) pools.set(t.scrapePool, []);
      pools.get(t.scrapePool).push(t);
    }
    const health = h("select", { "aria-label": "Health" }, ["all", "up", "down", "unknown"].map((s) => h("option", { value: s }, s === "all" ? "All health" : s)));
    const text = h("input", { placeholder: "Filter by endpoint or labels", size: 30 });
    const list = h("div");
    const draw = () => {
      const f = text.value.toLowerCase();
      const want = health.value;
      const groups = [];
      for (const [pool, ts] of [...pools].sort((a, b) => a[0].localeCompare(b[0]))) {
        const up = ts.filter((t) => t.health === "up").length;
        const shown = ts.filter((t) => (want === "all" || t.health === want) && (!f || (t.scrapeUrl + JSON.stringify(t.labels)).toLowerCase().includes(f)));
        if (!shown.length) continue;
        groups.push(
          h(
            "details.group.pool",
            { open: true, "data-pool": pool },
            h("summary", pool, h("span.muted", `(${up}/${ts.length} up)`)),
            h(
              "div.body",
              table(
                ["Endpoint", "Labels", "Last scrape", "State", "Scrape duration", "Error"],
                shown.map((t) =>
                  h(
                    "tr.target",
                    { "data-health": t.health, "data-url": t.scrapeUrl },
                    h("td", h("a", { href: t.scrapeUrl }, t.scrapeUrl)),
                    h("td", labelsView(t.labels)),
                    h("td", ago(t.lastScrape)),
                    h("td", h("span.badge." + t.health, t.health.toUpperCase())),
                    h("td", seconds(t.lastScrapeDuration)),
                    h("td.error-text.target-error", t.lastError || ""),
                  ),
                ),
              ),
            ),
          ),
        );
      }
      clear(list, groups.length ? groups : h("p.muted", pools.size ? "No target matches the filter." : "No targets."));
    };
    health.addEventListener("change", draw);
    text.addEventListener("input", draw);
    clear(body, h("div.filters", health, text), list);
    draw();
  });
}

// ---- service discovery ----

export function sdPage(root) {
  page(root, "Service discovery", async (body) => {
    const j = await api("targets", { state: "any" });
    const pools = new Map();
    const add = (t, kept) => {
      const p = t.scrapePool || t.discoveredLabels?.job || "";
      if (!pools.has(p)) pools.set(p, []);
      pools.get(p).push([t, kept]);
    };
    j.data.activeTargets.forEach((t) => add(t, true));
    (j.data.droppedTargets || []).forEach((t) => add(t, false));
    clear(
      body,
      pools.size ? null : h("p.muted", "No targets discovered."),
      [...pools].map(([pool, ts]) =>
        h(
          "details.group",
          { open: true },
          h("summary", pool, h("span.muted", `(${ts.filter((x) => x[1]).length} active / ${ts.length} discovered)`)),
          h("div.body", table(["Discovered labels", "Target labels"], ts.map(([t, kept]) => h("tr", h("td", labelsView(t.discoveredLabels)), h("td", kept ? labelsView(t.labels) : h("span.badge", "Dropped")))))),
        ),
      ),
    );
  });
}

// ---- status pages ----

export function statusPage(root) {
  page(root, "Runtime & build information", async (body) => {
    const [b, r] = await Promise.all([api("status/buildinfo"), api("status/runtimeinfo")]);
    clear(body, h("h2", "Build information"), kv(b.data), h("h2", "Runtime information"), kv(r.data));
  });
}

export function configPage(root) {
  page(root, "Configuration", async (body) => {
    const j = await api("status/config");
    clear(body, h("pre.code.config", j.data.yaml));
  });
}

export function flagsPage(root) {
  page(root, "Command-line flags", async (body) => {
    const j = await api("status/flags");
    const text = h("input", { placeholder: "Filter", size: 30 });
    const tb = h("div");
    const draw = () => {
      const f = text.value.toLowerCase();
      const rows = Object.keys(j.data)
        .sort()
        .filter((k) => !f || (k + j.data[k]).toLowerCase().includes(f))
        .map((k) => h("tr", h("td", "--" + k), h("td", j.data[k])));
      clear(tb, table(["Flag", "Value"], rows));
    };
    text.addEventListener("input", draw);
    clear(body, h("div.filters", text), tb);
    draw();
  });
}

export function tsdbPage(root) {
  page(root, "TSDB status", async (body) => {
    const j = await api("status/tsdb");
    const d = j.data;
    const hs = d.headStats || {};
    const t = (v) => (v ? new Date(v).toISOString() : "");
    const top = (title, key, col) =>
      d[key] && d[key].length ? [h("h2", title), table([col, "Count"], d[key].map((x) => h("tr", h("td", x.name), h("td", String(x.value)))))] : null;
    clear(
      body,
      h("h2", "Head block"),
      table(
        ["Number of series", "Number of chunks", "Current min time", "Current max time"],
        [h("tr", h("td", String(hs.numSeries ?? "")), h("td", String(hs.chunkCount ?? "")), h("td", t(hs.minTime)), h("td", t(hs.maxTime)))],
      ),
      top("Top 10 series count by metric names", "seriesCountByMetricName", "Name"),
      top("Top 10 label names with value count", "labelValueCountByLabelName", "Name"),
      top("Top 10 label names with high memory usage", "memoryInBytesByLabelName", "Name"),
      top("Top 10 series count by label value pairs", "seriesCountByLabelValuePair", "Name"),
    );
  });
}
