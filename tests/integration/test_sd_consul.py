"""consul_sd_configs against a scripted server speaking Consul's HTTP API as
documented (agent/self, catalog/services and health/service/<name>, with
blocking queries: X-Consul-Index in every answer, ?index=&wait= held until
the index moves or the wait passes)."""
import json
import os
import sys
import threading
import time
import unittest
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from kilntest import Kiln, wait_for  # noqa: E402
from sdserver import Exporters, Server  # noqa: E402

TOKEN = "c0nsul-t0ken"


class Consul:
    """The catalog: services[name] = list of (node, service, checks) dicts in Consul's JSON."""

    def __init__(self):
        self.srv = Server()
        self.port = self.srv.port
        self.cond = threading.Condition()
        self.index = 10
        self.services = {}
        self.fail = False
        self.srv.route("/v1/agent/self", self.agent_self)
        self.srv.default = self.dispatch

    def set(self, services):
        with self.cond:
            self.services = services
            self.index += 1
            self.cond.notify_all()

    def headers(self, index):
        return {"Content-Type": "application/json", "X-Consul-Index": str(index), "X-Consul-Knownleader": "true",
                "X-Consul-Lastcontact": "0"}

    def block(self, req):
        """Consul's blocking query: hold while ?index= is the current index, at most the wait (cut short here)."""
        idx = int(req["query"].get("index", ["0"])[0] or 0)
        with self.cond:
            deadline = time.time() + 3
            while idx >= self.index and time.time() < deadline:
                self.cond.wait(deadline - time.time())
            return self.index, dict(self.services)

    def agent_self(self, req, h):
        return 200, {"Content-Type": "application/json"}, {"Config": {"Datacenter": "dc-agent", "NodeName": "n0"}}

    def dispatch(self, req, h):
        if req["headers"].get("x-consul-token") != TOKEN:
            return 403, {"Content-Type": "text/plain"}, "ACL not found"
        if self.fail:
            return 500, {"Content-Type": "text/plain"}, "rpc error: No cluster leader"
        path = req["path"]
        if path == "/v1/catalog/services":
            index, services = self.block(req)
            body = {name: sorted({t for e in entries for t in e["Service"]["Tags"]}) for name, entries in services.items()}
            return 200, self.headers(index), body
        if path.startswith("/v1/health/service/"):
            name = urllib.parse.unquote(path[len("/v1/health/service/"):])
            index, services = self.block(req)
            tags = req["query"].get("tag", [])
            entries = [e for e in services.get(name, []) if all(t in e["Service"]["Tags"] for t in tags)]
            return 200, self.headers(index), entries
        return 404, {"Content-Type": "text/plain"}, "not found"


def entry(node, addr, svc, sid, port, tags, saddr="", checks=("passing",), node_meta=None, svc_meta=None):
    return {
        "Node": {"ID": "40e4a748-2192-161a-0510-9bf59fe950b5", "Node": node, "Address": addr, "Datacenter": "dc1",
                 "TaggedAddresses": {"lan": addr, "wan": "198.51.100." + addr.rsplit(".", 1)[1]},
                 "Meta": node_meta or {"instance_type": "t2.medium"}, "CreateIndex": 5, "ModifyIndex": 5},
        "Service": {"ID": sid, "Service": svc, "Tags": list(tags), "Address": saddr,
                    "TaggedAddresses": {"lan": {"Address": saddr or addr, "Port": port}},
                    "Meta": svc_meta or {}, "Port": port, "Weights": {"Passing": 1, "Warning": 1},
                    "Namespace": "", "CreateIndex": 7, "ModifyIndex": 7},
        "Checks": [{"Node": node, "CheckID": f"service:{sid}:{i}", "Name": "check", "Status": st, "ServiceID": sid}
                   for i, st in enumerate(checks)],
    }


class TestConsulSD(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.exp = Exporters(3)
        cls.ports = [int(a.rsplit(":", 1)[1]) for a in cls.exp.addrs]
        cls.consul = Consul()
        cls.consul.set(cls.catalog())
        cfg = f"""
global: {{scrape_interval: 1s, scrape_timeout: 500ms}}
scrape_configs:
  - job_name: all
    consul_sd_configs:
      - server: 127.0.0.1:{cls.consul.port}
        token: {TOKEN}
        refresh_interval: 1s
        tag_separator: '|'
  - job_name: filtered
    consul_sd_configs:
      - server: 127.0.0.1:{cls.consul.port}
        token: {TOKEN}
        datacenter: dc9
        allow_stale: false
        services: [web, api]
        tags: [prod]
        node_meta: {{rack: r1}}
        refresh_interval: 1s
"""
        cls.kiln = Kiln(config=cfg)
        try:
            cls.kiln.start()
        except Exception:
            cls.tearDownClass()
            raise

    @classmethod
    def catalog(cls, extra=False):
        web = [entry("node1", "127.0.0.1", "web", "web-1", cls.ports[0], ["prod", "v1"],
                     node_meta={"rack": "r1", "os.name": "linux"}, svc_meta={"version": "1.2"}),
               entry("node2", "10.9.9.9", "web", "web-2", cls.ports[1], ["canary"], saddr="127.0.0.1",
                     checks=("passing", "warning"))]
        api = [entry("node3", "127.0.0.1", "api", "api-1", cls.ports[2], ["prod"], checks=("critical", "passing"))]
        db = [entry("node4", "127.0.0.1", "db", "db-1", 5432, ["prod"])]
        if extra:
            api.append(entry("node5", "127.0.0.5", "api", "api-2", 9999, ["prod"]))
        return {"web": web, "api": api, "db": db}

    @classmethod
    def tearDownClass(cls):
        cls.consul.srv.stop()
        cls.exp.stop()
        cls.kiln.finish()

    def discovered(self, job):
        st, body = self.kiln.get_json(f"/api/v1/targets?scrapePool={job}")
        self.assertEqual(st, 200)
        d = body["data"]
        return {t["discoveredLabels"]["__meta_consul_service_id"]: t["discoveredLabels"]
                for t in d["activeTargets"] + d["droppedTargets"]}

    def metric(self, name):
        return self.kiln.metrics().get(name, 0)

    def test_1_meta_labels(self):
        ok = wait_for(lambda: sorted(self.discovered("all")) == ["api-1", "db-1", "web-1", "web-2"], 20)
        self.assertTrue(ok, (self.discovered("all"), self.kiln.read_log()[-2000:]))
        t = self.discovered("all")
        w1, w2, a1 = t["web-1"], t["web-2"], t["api-1"]
        self.assertEqual(w1["__address__"], f"127.0.0.1:{self.ports[0]}")
        self.assertEqual(w1["__meta_consul_address"], "127.0.0.1")
        self.assertEqual(w1["__meta_consul_node"], "node1")
        self.assertEqual(w1["__meta_consul_service"], "web")
        self.assertEqual(w1["__meta_consul_dc"], "dc-agent")  # the agent's, none configured
        self.assertEqual(w1["__meta_consul_tags"], "|prod|v1|")
        self.assertEqual(w1["__meta_consul_service_port"], str(self.ports[0]))
        self.assertEqual(w1["__meta_consul_health"], "passing")
        self.assertEqual(w1["__meta_consul_metadata_rack"], "r1")
        self.assertEqual(w1["__meta_consul_metadata_os_name"], "linux")
        self.assertEqual(w1["__meta_consul_service_metadata_version"], "1.2")
        self.assertEqual(w1["__meta_consul_tagged_address_lan"], "127.0.0.1")
        self.assertEqual(w1["__meta_consul_tagged_address_wan"], "198.51.100.1")
        self.assertNotIn("__meta_consul_service_address", w1)
        # the service address wins over the node's
        self.assertEqual(w2["__address__"], f"127.0.0.1:{self.ports[1]}")
        self.assertEqual(w2["__meta_consul_address"], "10.9.9.9")
        self.assertEqual(w2["__meta_consul_service_address"], "127.0.0.1")
        self.assertEqual(w2["__meta_consul_health"], "warning")
        self.assertEqual(a1["__meta_consul_health"], "critical")
        self.assertGreaterEqual(self.metric('kiln_sd_refreshes_total{mechanism="consul"}'), 1)

    def test_2_filters_and_request_parameters(self):
        ok = wait_for(lambda: sorted(self.discovered("filtered")) == ["api-1", "web-1"], 20)
        self.assertTrue(ok, self.discovered("filtered"))
        self.assertEqual(self.discovered("filtered")["web-1"]["__meta_consul_dc"], "dc9")
        reqs = self.consul.srv.got("/v1/health/service/web")
        filt = [r for r in reqs if r["query"].get("dc") == ["dc9"]]
        self.assertTrue(filt)
        q = filt[-1]["query"]
        self.assertEqual(q["tag"], ["prod"])
        self.assertEqual(q["node-meta"], ["rack:r1"])
        self.assertEqual(q["wait"], ["2m"])
        self.assertNotIn("stale", q)
        self.assertEqual(filt[-1]["headers"]["x-consul-token"], TOKEN)
        # the other job asks for stale answers, and for no datacenter
        allq = [r for r in reqs if "dc" not in r["query"]]
        self.assertIn("stale", allq[-1]["query"])
        # db is not among the services asked for
        self.assertFalse([r for r in self.consul.srv.got("/v1/health/service/db") if r["query"].get("dc") == ["dc9"]])

    def test_3_blocking_queries_follow_changes(self):
        wait_for(lambda: len(self.discovered("all")) == 4, 20)
        before = self.consul.index
        self.consul.set(self.catalog(extra=True))
        ok = wait_for(lambda: "api-2" in self.discovered("all"), 20)
        self.assertTrue(ok, self.discovered("all"))
        # the watches carried the index of the answers before
        reqs = self.consul.srv.got("/v1/health/service/api")
        self.assertIn(str(before), [r["query"].get("index", [""])[0] for r in reqs])
        cat = self.consul.srv.got("/v1/catalog/services")
        self.assertEqual(cat[0]["query"].get("index"), None)
        self.assertTrue(any(r["query"].get("index") == [str(before)] for r in cat))
        # a service leaves the catalog: its targets go
        svcs = self.catalog(extra=True)
        del svcs["db"]
        self.consul.set(svcs)
        self.assertTrue(wait_for(lambda: "db-1" not in self.discovered("all"), 20))

    def test_4_failures_keep_the_last_good_targets(self):
        wait_for(lambda: "api-2" in self.discovered("all") and "db-1" not in self.discovered("all"), 20)
        want = sorted(self.discovered("all"))
        fails = self.metric("kiln_sd_consul_rpc_failures_total")
        self.consul.fail = True
        try:
            self.consul.set(self.catalog())  # wakes the held queries into the failure
            self.assertTrue(wait_for(lambda: self.metric("kiln_sd_consul_rpc_failures_total") > fails, 30))
            time.sleep(1)
            self.assertEqual(sorted(self.discovered("all")), want)
            self.assertGreaterEqual(self.metric('kiln_sd_refresh_failures_total{mechanism="consul"}'), 1)
        finally:
            self.consul.fail = False
        ok = wait_for(lambda: sorted(self.discovered("all")) == ["api-1", "db-1", "web-1", "web-2"], 40)
        self.assertTrue(ok, self.discovered("all"))


if __name__ == "__main__":
    unittest.main()
