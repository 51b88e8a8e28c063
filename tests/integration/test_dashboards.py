"""The Grafana dashboards in docs/dashboards/: every panel query, with the
template variables filled in as Grafana would, runs on kiln (scraping itself
and a node exporter) and the main panels have data.
"""
import json
import os
import unittest
import urllib.parse

from kilntest import NODE_EXPORTER, ROOT, Kiln, Process, free_port, require, wait_for

DASHBOARDS = os.path.join(ROOT, "docs", "dashboards")


def exprs(name, variables):
    with open(os.path.join(DASHBOARDS, name)) as f:
        d = json.load(f)
    out = []
    for p in d["panels"]:
        for t in p["targets"]:
            e = t["expr"]
            for k, v in variables.items():
                e = e.replace("$" + k, v)
            out.append((p["title"], e))
    return d, out


class TestDashboards(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        require(NODE_EXPORTER)
        cls.ne_port = free_port()
        cls.ne = Process([NODE_EXPORTER, f"--web.listen-address=127.0.0.1:{cls.ne_port}"], "/dev/null")
        cls.kiln = Kiln()
        with open(cls.kiln.config_path, "w") as f:
            f.write(f"""global:
  scrape_interval: 1s
scrape_configs:
  - job_name: kiln
    static_configs: [{{targets: ["127.0.0.1:{cls.kiln.port}"]}}]
  - job_name: node
    static_configs: [{{targets: ["127.0.0.1:{cls.ne_port}"]}}]
""")
        cls.kiln.start()

    @classmethod
    def tearDownClass(cls):
        cls.ne.stop()
        code = cls.kiln.stop()
        log = cls.kiln.read_log()
        cls.kiln.cleanup()
        if code != 0:
            raise AssertionError(log[-3000:])

    def run_panels(self, name, variables, must_have):
        d, es = exprs(name, variables)
        self.assertTrue(d["uid"] and d["panels"])

        def ready():
            st, body = self.kiln.get_json("/api/v1/query?" + urllib.parse.urlencode({"query": es[0][1]}))
            return st == 200 and body["data"]["result"]
        self.assertTrue(wait_for(ready, 20), self.kiln.read_log()[-2000:])
        for title, e in es:
            def run():
                st, body = self.kiln.get_json("/api/v1/query?" + urllib.parse.urlencode({"query": e}))
                self.assertEqual(st, 200, f"{title}: {e}: {body}")
                self.assertEqual(body["status"], "success")
                return body["data"]["result"]
            if title in must_have:
                # a rate needs two scrapes in which the series exists (some appear
                # only after the first scrape of /metrics itself)
                self.assertTrue(wait_for(run, 20, 0.2), f"{title}: {e} has no data")
            else:
                run()

    def test_kiln_overview(self):
        self.run_panels("kiln-overview.json", {"job": "kiln", "datasource": "x"},
                        {"Samples ingested / s", "Head series", "HTTP requests / s by handler", "Resident memory",
                         "CPU (cores)", "Blocks and compactions"})

    def test_node_exporter(self):
        self.run_panels("node-exporter.json", {"job": "node", "instance": ".*", "datasource": "x"},
                        {"CPU busy", "CPU by mode", "Memory used", "Load (1m)", "Network", "Targets up"})


if __name__ == "__main__":
    unittest.main()
