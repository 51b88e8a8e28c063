// ui.mjs - drives kiln's web UI in Debian's headless Chromium (puppeteer-core
// from web/node_modules) and prints what it saw as one JSON object on
// stdout; tests/integration/test_ui.py starts kiln and its peers, runs this
// and asserts on the report.  Every page is screenshotted into the output
// folder.  Exits 1 on an uncaught failure (the report then has "fatal").
//
//   node tests/browser/ui.mjs <base-url> <out-dir> <options-json>
// options: {expr, metricPrefix, benchExpr, benchRuns, treeExpr, treeLeaf,
// slowExpr, histExpr}, or {smoke: true, expr}: the
// query page's table and the status page only
import { createRequire } from "node:module";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const require = createRequire(new URL("../../web/package.json", import.meta.url));
const puppeteer = require("puppeteer-core");

const [base, out, optsJson] = process.argv.slice(2);
const opts = JSON.parse(optsJson || "{}");
const report = { consoleErrors: [], failedRequests: [], pages: {} };
const profile = mkdtempSync(join(tmpdir(), "kiln-chromium-"));
const browser = await puppeteer.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  headless: true,
  userDataDir: profile,
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage"],
});

async function newPage() {
  const p = await browser.newPage();
  await p.setViewport({ width: 1280, height: 900 });
  p.on("console", (m) => m.type() === "error" && report.consoleErrors.push(`${p.url()}: ${m.text()}`));
  p.on("pageerror", (e) => report.consoleErrors.push(`${p.url()}: ${e.message}`));
  p.on("requestfailed", (r) => {
    // a query superseded by a newer one is aborted on purpose
    if (r.failure()?.errorText !== "net::ERR_ABORTED") report.failedRequests.push(`${r.url()}: ${r.failure()?.errorText}`);
  });
  p.on("response", (r) => r.status() >= 400 && report.failedRequests.push(`${r.url()}: HTTP ${r.status()}`));
  return p;
}
const shot = (p, name) => p.screenshot({ path: join(out, name + ".png"), fullPage: true });
const texts = (p, sel) => p.$$eval(sel, (els) => els.map((e) => e.textContent.trim()));
const loaded = (p) => p.waitForFunction(() => !document.querySelector(".page-body > p.muted") || document.querySelector(".page-body > p.muted").textContent !== "Loading…");

try {
  const p = await newPage();
  if (opts.smoke) {
    // under a route prefix: / lands on the query page, whose table fills from the API
    await p.goto(base + "/", { waitUntil: "networkidle0" });
    report.rootLandsOn = new URL(p.url()).pathname;
    await p.goto(base + "/query?g0.expr=" + encodeURIComponent(opts.expr) + "&g0.tab=table", { waitUntil: "networkidle0" });
    await p.waitForSelector("table.result tr, .output .alert");
    report.tableRows = await p.$$eval("table.result tr", (rows) => rows.map((r) => [...r.cells].map((c) => c.textContent.trim())));
    await p.goto(base + "/status", { waitUntil: "networkidle0" });
    await loaded(p);
    report.statusErrors = await texts(p, ".alert.error");
    throw "done";
  }

  // / -> /query
  await p.goto(base + "/", { waitUntil: "networkidle0" });
  report.rootLandsOn = new URL(p.url()).pathname;

  // /graph keeps its parameters; the table view lists the instant vector's rows
  const q = "g0.expr=" + encodeURIComponent(opts.expr) + "&g0.tab=1&g0.range_input=15m";
  await p.goto(base + "/graph?" + q, { waitUntil: "networkidle0" });
  const u = new URL(p.url());
  report.graphRedirect = { path: u.pathname, expr: u.searchParams.get("g0.expr"), range: u.searchParams.get("g0.range_input") };
  await p.goto(base + "/query?g0.expr=" + encodeURIComponent(opts.expr) + "&g0.tab=table", { waitUntil: "networkidle0" });
  await p.waitForSelector("table.result tr, .output .alert, .output p.muted:not(.loading)");
  report.tableRows = await p.$$eval("table.result tr", (rows) => rows.map((r) => [...r.cells].map((c) => c.textContent.trim())));
  report.tableErrors = await texts(p, ".output .alert.error");
  await shot(p, "query-table");

  // the graph view: one uPlot series per result series
  await p.click("button[data-tab=graph]");
  await p.waitForSelector(".chart[data-series] canvas, .output .alert.error");
  report.graph = await p.evaluate(() => {
    const c = document.querySelector(".chart[data-series]");
    return c && {
      series: Number(c.dataset.series),
      legend: document.querySelectorAll(".u-legend .u-series").length - 1,
      canvas: !!c.querySelector("canvas"),
      tab: new URLSearchParams(location.search).get("g0.tab"),
    };
  });
  report.graphErrors = await texts(p, ".output .alert.error");
  await shot(p, "query-graph");

  // completion of a partial metric name
  const c = await newPage();
  await c.goto(base + "/query", { waitUntil: "networkidle0" });
  await c.type(".editor textarea", opts.metricPrefix, { delay: 20 });
  await c.waitForSelector("ul.complete:not([hidden]) li");
  report.completion = await c.$$eval("ul.complete li", (els) => els.map((e) => e.textContent.slice(1)));
  await shot(c, "query-completion");
  await c.close();

  // targets: the real node exporter up, the dead one down with its error
  await p.goto(base + "/targets", { waitUntil: "networkidle0" });
  await p.waitForSelector("tr.target");
  report.targets = await p.$$eval("tr.target", (rows) =>
    rows.map((r) => ({ url: r.dataset.url, health: r.dataset.health, error: r.querySelector(".target-error").textContent })));
  await shot(p, "targets");

  // alerts: the firing rule
  await p.goto(base + "/alerts", { waitUntil: "networkidle0" });
  await p.waitForSelector(".alert-rule");
  report.alerts = await p.$$eval(".alert-rule", (els) => els.map((e) => ({ name: e.dataset.name, state: e.dataset.state, alerts: e.querySelectorAll("tbody tr").length })));
  await shot(p, "alerts");

  for (const name of ["rules", "service-discovery", "status", "config", "flags", "tsdb-status"]) {
    await p.goto(base + "/" + name, { waitUntil: "networkidle0" });
    await loaded(p);
    report.pages[name] = {
      title: await p.$eval("h1", (e) => e.textContent),
      errors: await texts(p, ".alert.error"),
      rows: (await p.$$("table.data tbody tr")).length,
      text: (await p.$eval(".page-body", (e) => e.textContent)).slice(0, 2000),
    };
    await shot(p, name);
  }

  // the tree view: every node printed back, evaluated, and a click on one
  // shows its result
  if (opts.treeExpr) {
    await p.goto(base + "/query?g0.expr=" + encodeURIComponent(opts.treeExpr) + "&g0.tab=table&g0.show_tree=1", { waitUntil: "networkidle0" });
    await p.waitForFunction(() => {
      const infos = [...document.querySelectorAll(".tree-info")];
      return infos.length && infos.every((i) => i.dataset.results);
    });
    report.tree = await p.$$eval(".tree-node", (els) => els.map((e) => ({ expr: e.dataset.expr, head: e.querySelector("code").textContent, results: e.querySelector(".tree-info").dataset.results, sel: e.classList.contains("sel") })));
    report.treeUrl = new URL(p.url()).searchParams.get("g0.show_tree");
    await shot(p, "query-tree");
    await p.$$eval(".tree-node", (els, leaf) => els.find((e) => e.dataset.expr === leaf).click(), opts.treeLeaf);
    await p.waitForSelector(".node-note");
    await p.waitForFunction(() => !document.querySelector(".output p.loading"));
    report.treeLeaf = {
      note: await p.$eval(".node-note code", (e) => e.textContent),
      rows: await p.$$eval("table.result tr", (rows) => rows.map((r) => r.cells[0].textContent.trim())),
      sel: await p.$$eval(".tree-node.sel", (els) => els.map((e) => e.dataset.expr)),
    };
    await shot(p, "query-tree-node");
  }

  // a native histogram in the table: its count and sum, a bar a bucket, the buckets' table
  if (opts.histExpr) {
    await p.goto(base + "/query?g0.expr=" + encodeURIComponent(opts.histExpr) + "&g0.tab=table", { waitUntil: "networkidle0" });
    await p.waitForSelector(".histogram, .output .alert");
    await p.click("details.hbuckets summary");
    report.hist = {
      summary: await p.$eval(".hsummary", (e) => e.textContent),
      bars: await p.$$eval(".hbar", (els) => els.map((e) => e.dataset.count)),
      rows: await p.$$eval("details.hbuckets tr", (rows) => rows.map((r) => [...r.cells].map((c) => c.textContent))),
    };
    await shot(p, "query-histogram");
  }

  // a slow query (opts.slowExpr, about 10 s) runs in the first panel; the
  // page's other controls are measured meanwhile, in the browser
  if (opts.slowExpr) {
    const s = await newPage();
    await s.goto(base + "/query?g0.expr=" + encodeURIComponent(opts.slowExpr) + "&g0.tab=table", { waitUntil: "domcontentloaded" });
    await s.waitForSelector(".output p.loading");
    await s.evaluate(() => {
      // the main thread's stalls: how late a 10 ms timer fires at worst
      window.__stall = { max: 0, last: performance.now(), start: performance.now() };
      window.__stallTimer = setInterval(() => {
        const now = performance.now();
        window.__stall.max = Math.max(window.__stall.max, now - window.__stall.last - 10);
        window.__stall.last = now;
      }, 10);
    });
    const r = {};
    // a click that adds a panel, to the next frame
    r.addPanelMs = await s.evaluate(async () => {
      const t0 = performance.now();
      document.querySelector("button.add").click();
      await new Promise((res) => requestAnimationFrame(() => setTimeout(res, 0)));
      return document.querySelectorAll(".panel").length === 2 ? performance.now() - t0 : -1;
    });
    // typing a metric name's start in the new panel, to completion's list
    await s.evaluate(() => {
      const ta = document.querySelectorAll(".editor textarea")[1];
      ta.addEventListener("input", () => (window.__typed ??= performance.now()), { once: true });
    });
    await s.type(".panel:nth-of-type(2) .editor textarea", opts.metricPrefix, { delay: 20 });
    await s.waitForSelector(".panel:nth-of-type(2) ul.complete:not([hidden]) li");
    r.completionMs = await s.evaluate(() => performance.now() - window.__typed);
    r.completion = await s.$$eval(".panel:nth-of-type(2) ul.complete li", (els) => els.map((e) => e.textContent.slice(1)));
    // a quick query in the new panel, to its table's row
    await s.keyboard.press("Escape");
    r.quickMs = await s.evaluate(async () => {
      const ta = document.querySelectorAll(".editor textarea")[1];
      ta.value = "vector(42)";
      ta.dispatchEvent(new Event("input"));
      const t0 = performance.now();
      document.querySelectorAll("button.execute")[1].click();
      const panel = document.querySelectorAll(".panel")[1];
      while (!panel.querySelector("table.result td.value")) await new Promise((res) => setTimeout(res, 5));
      return [performance.now() - t0, panel.querySelector("table.result td.value").textContent];
    });
    r.slowStillLoading = await s.evaluate(() => !!document.querySelector(".panel:nth-of-type(1) .output p.loading"));
    r.stallDuringMs = await s.evaluate(() => window.__stall.max);
    await s.waitForFunction(() => !document.querySelector(".panel:nth-of-type(1) .output p.loading"), { timeout: 180000 });
    r.slowStats = await s.$eval(".panel:nth-of-type(1) .stats", (e) => e.textContent);
    r.slowRows = await s.$$eval(".panel:nth-of-type(1) table.result tr", (rows) => rows.length);
    r.slowErrors = await texts(s, ".panel:nth-of-type(1) .alert.error");
    r.stallMs = await s.evaluate(() => (clearInterval(window.__stallTimer), window.__stall.max));
    report.slow = r;
    await shot(s, "query-slow");
    await s.close();
  }

  // render time of a range query's graph (performance.now() around uPlot's draw)
  if (opts.benchExpr) {
    report.bench = [];
    for (let i = 0; i < (opts.benchRuns || 5); i++) {
      await p.goto(base + "/query?g0.expr=" + encodeURIComponent(opts.benchExpr) + "&g0.tab=graph&g0.range_input=1h", { waitUntil: "networkidle0" });
      await p.waitForSelector(".chart[data-series]");
      report.bench.push(await p.evaluate(() => window.__kilnLastRender));
    }
    await shot(p, "query-graph-200");
  }
} catch (e) {
  if (e !== "done") report.fatal = String(e.stack || e);
} finally {
  await browser.close();
  rmSync(profile, { recursive: true, force: true });
}
process.stdout.write(JSON.stringify(report) + "\n");
process.exit(report.fatal ? 1 : 0);
