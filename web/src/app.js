// app.js - kiln's web UI: the navigation bar and the client-side router.
// Every page path answers index.html (api/ui.c); the last segment of the
// path picks the page, so the UI works under any prefix.
import "./style.css";
import { queryPage } from "./query.js";
import { alertsPage, rulesPage, targetsPage, sdPage, statusPage, configPage, flagsPage, tsdbPage } from "./pages.js";
import { h, clear } from "./util.js";

const PAGES = {
  query: ["Query", queryPage],
  alerts: ["Alerts", alertsPage],
  rules: ["Rules", rulesPage],
  targets: ["Targets", targetsPage],
  "service-discovery": ["Service discovery", sdPage],
  status: ["Runtime & build information", statusPage],
  config: ["Configuration", configPage],
  flags: ["Command-line flags", flagsPage],
  "tsdb-status": ["TSDB status", tsdbPage],
};
const STATUS = ["status", "tsdb-status", "flags", "config", "rules", "targets", "service-discovery"];

function nav(cur) {
  const link = (p) => h(`a${p === cur ? ".active" : ""}`, { href: p }, PAGES[p][0]);
  return h(
    "nav.top",
    h("a.brand", { href: "query" }, "kiln"),
    link("query"),
    link("alerts"),
    h("details.menu", h("summary", "Status"), h("div.menu-items", STATUS.map(link))),
  );
}

function main() {
  const seg = location.pathname.replace(/\/+$/, "").split("/").pop();
  const name = PAGES[seg] ? seg : "query";
  document.title = `${PAGES[name][0]} - kiln`;
  const content = h("main.content");
  clear(document.getElementById("app"), nav(name), content);
  PAGES[name][1](content);
}

main();
