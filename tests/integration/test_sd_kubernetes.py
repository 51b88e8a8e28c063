"""kubernetes_sd_configs against a scripted API server speaking the list and
watch protocol (kubeapi.KubeAPI): pods, nodes (attach_metadata), services,
endpoints and ingresses; watch events; a watch broken mid-stream; 410 Gone
(as an ERROR event and as the answer's status) and the re-list; the
in-cluster service account (token, CA, namespace) over TLS."""
import json
import os
import shutil
import sys
import tempfile
import time
import unittest
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from kilntest import Kiln, wait_for  # noqa: E402
from kubeapi import KubeAPI, node, pod  # noqa: E402
from sdserver import Exporters  # noqa: E402


class TestKubernetesSD(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="kiln-test-kube-")
        cls.exp = Exporters(1)
        cls.port = int(cls.exp.addrs[0].rsplit(":", 1)[1])
        cls.api = KubeAPI()
        api = cls.api
        api.put("nodes", node("node-1", "10.0.0.1", {"topology.kubernetes.io/zone": "z1"}))
        owner = {"kind": "ReplicaSet", "name": "web-5d8f", "controller": True, "apiVersion": "apps/v1"}
        api.put("pods", pod("default", "web-1", "127.0.0.1", [cls.port], {"app": "web"}, owner=owner))
        api.put("pods", pod("default", "web-2", "127.0.0.2", [8080, 9090], {"app": "web"}, ready="False"))
        api.put("pods", pod("other", "db-1", "127.0.0.3", [5432], {"app": "db"}))
        api.put("pods", pod("default", "pending", "", [80], {"app": "web"}, phase="Pending"))
        api.put("services", {"kind": "Service", "metadata": {"name": "web", "namespace": "default",
                                                            "labels": {"tier": "front"}},
                             "spec": {"type": "ClusterIP", "clusterIP": "10.96.0.10",
                                      "ports": [{"name": "http", "port": 80, "protocol": "TCP"}]}})
        api.put("endpoints", {"kind": "Endpoints", "metadata": {"name": "web", "namespace": "default"},
                              "subsets": [{"addresses": [{"ip": "127.0.0.2", "nodeName": "node-1",
                                                          "targetRef": {"kind": "Pod", "name": "web-2",
                                                                        "namespace": "default"}}],
                                           "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}]}]})
        api.put("ingresses", {"kind": "Ingress", "metadata": {"name": "site", "namespace": "default"},
                              "spec": {"ingressClassName": "nginx", "tls": [{"hosts": ["*.example.com"]}],
                                       "rules": [{"host": "a.example.com", "http": {"paths": [{"path": "/x"}]}},
                                                 {"host": "b.example.org"}]}})
        with open(os.path.join(cls.tmp, "token"), "w") as f:
            f.write(api.token + "\n")
        sd = f"api_server: {api.url}\n        bearer_token_file: {cls.tmp}/token"
        cfg = f"""
global: {{scrape_interval: 1s, scrape_timeout: 500ms}}
scrape_configs:
  - job_name: pods
    kubernetes_sd_configs:
      - role: pod
        {sd}
        namespaces: {{names: [default]}}
        attach_metadata: {{node: true}}
    relabel_configs:
      - {{source_labels: [__meta_kubernetes_pod_ip], regex: '127.0.0.1', action: keep}}
  - job_name: nodes
    kubernetes_sd_configs: [{{role: node, {sd.replace(chr(10) + '        ', ', ')}}}]
  - job_name: endpoints
    kubernetes_sd_configs: [{{role: endpoints, {sd.replace(chr(10) + '        ', ', ')}}}]
    relabel_configs: [{{source_labels: [__address__], regex: '.*', action: drop}}]
  - job_name: services
    kubernetes_sd_configs: [{{role: service, {sd.replace(chr(10) + '        ', ', ')}}}]
    relabel_configs: [{{source_labels: [__address__], regex: '.*', action: drop}}]
  - job_name: ingresses
    kubernetes_sd_configs: [{{role: ingress, {sd.replace(chr(10) + '        ', ', ')}}}]
    relabel_configs: [{{source_labels: [__address__], regex: '.*', action: drop}}]
  - job_name: selected
    kubernetes_sd_configs:
      - role: pod
        {sd}
        selectors: [{{role: pod, label: app=db}}]
    relabel_configs: [{{source_labels: [__address__], regex: '.*', action: drop}}]
"""
        cls.kiln = Kiln(config=cfg)
        try:
            cls.kiln.start()
        except Exception:
            cls.tearDownClass()
            raise

    @classmethod
    def tearDownClass(cls):
        cls.api.stop()
        cls.exp.stop()
        try:
            cls.kiln.finish()
        finally:
            shutil.rmtree(cls.tmp, ignore_errors=True)

    def discovered(self, job):
        st, body = self.kiln.get_json(f"/api/v1/targets?scrapePool={job}")
        self.assertEqual(st, 200)
        d = body["data"]
        return sorted((t["discoveredLabels"] for t in d["activeTargets"] + d["droppedTargets"]),
                      key=lambda x: x["__address__"])

    def addrs(self, job):
        return [d["__address__"] for d in self.discovered(job)]

    def metric(self, name):
        return self.kiln.metrics().get(name, 0)

    def query(self, q):
        st, _, body = self.kiln.get("/api/v1/query?" + urllib.parse.urlencode({"query": q}))
        return json.loads(body)["data"]["result"]

    def test_1_pod_role(self):
        want = ["127.0.0.1", f"127.0.0.1:{self.port}", "127.0.0.2", "127.0.0.2:8080", "127.0.0.2:9090"]
        ok = wait_for(lambda: self.addrs("pods") == want, 20)
        self.assertTrue(ok, (self.addrs("pods"), self.kiln.read_log()[-3000:]))
        d = {x["__address__"]: x for x in self.discovered("pods")}
        t = d[f"127.0.0.1:{self.port}"]
        self.assertEqual(t["__meta_kubernetes_namespace"], "default")
        self.assertEqual(t["__meta_kubernetes_pod_name"], "web-1")
        self.assertEqual(t["__meta_kubernetes_pod_ip"], "127.0.0.1")
        self.assertEqual(t["__meta_kubernetes_pod_ready"], "true")
        self.assertEqual(t["__meta_kubernetes_pod_phase"], "Running")
        self.assertEqual(t["__meta_kubernetes_pod_node_name"], "node-1")
        self.assertEqual(t["__meta_kubernetes_pod_host_ip"], "10.0.0.1")
        self.assertEqual(t["__meta_kubernetes_pod_uid"], "uid-web-1")
        self.assertEqual(t["__meta_kubernetes_pod_label_app"], "web")
        self.assertEqual(t["__meta_kubernetes_pod_labelpresent_app"], "true")
        self.assertEqual(t["__meta_kubernetes_pod_annotation_prometheus_io_scrape"], "true")
        self.assertEqual(t["__meta_kubernetes_pod_annotationpresent_prometheus_io_scrape"], "true")
        self.assertEqual(t["__meta_kubernetes_pod_controller_kind"], "ReplicaSet")
        self.assertEqual(t["__meta_kubernetes_pod_controller_name"], "web-5d8f")
        self.assertEqual(t["__meta_kubernetes_pod_container_name"], "main")
        self.assertEqual(t["__meta_kubernetes_pod_container_id"], "containerd://web-1-main")
        self.assertEqual(t["__meta_kubernetes_pod_container_image"], "example/app:1")
        self.assertEqual(t["__meta_kubernetes_pod_container_init"], "false")
        self.assertEqual(t["__meta_kubernetes_pod_container_port_number"], str(self.port))
        self.assertEqual(t["__meta_kubernetes_pod_container_port_name"], f"p{self.port}")
        self.assertEqual(t["__meta_kubernetes_pod_container_port_protocol"], "TCP")
        # attach_metadata.node
        self.assertEqual(t["__meta_kubernetes_node_name"], "node-1")
        self.assertEqual(t["__meta_kubernetes_node_label_topology_kubernetes_io_zone"], "z1")
        # a container without ports: the pod IP alone
        self.assertEqual(d["127.0.0.1"]["__meta_kubernetes_pod_container_name"], "sidecar")
        self.assertNotIn("__meta_kubernetes_pod_container_port_number", d["127.0.0.1"])
        self.assertEqual(d["127.0.0.2:8080"]["__meta_kubernetes_pod_ready"], "false")
        # the namespace limits the list and the watch
        lists = self.api.got(lambda p, q: p.endswith("/pods") and "watch" not in q)
        self.assertIn("/api/v1/namespaces/default/pods", [p for p, q in lists])
        # the kept target is scraped
        self.assertTrue(wait_for(lambda: self.query('up{job="pods"} == 1'), 20))
        # the selector goes to the server
        self.assertTrue(wait_for(lambda: self.addrs("selected") == ["127.0.0.3", "127.0.0.3:5432"], 20),
                        self.addrs("selected"))
        sel = self.api.got(lambda p, q: q.get("labelSelector") == ["app=db"])
        self.assertTrue(sel)

    def test_2_other_roles(self):
        self.assertTrue(wait_for(lambda: self.addrs("nodes") == ["10.0.0.1:10250"], 20), self.addrs("nodes"))
        n = self.discovered("nodes")[0]
        self.assertEqual(n["__meta_kubernetes_node_name"], "node-1")
        self.assertEqual(n["__meta_kubernetes_node_provider_id"], "aws:///node-1")
        self.assertEqual(n["__meta_kubernetes_node_address_InternalIP"], "10.0.0.1")
        self.assertEqual(n["__meta_kubernetes_node_address_Hostname"], "node-1")
        self.assertEqual(n["__meta_kubernetes_node_annotation_a"], "b")
        self.assertEqual(n["__meta_kubernetes_node_condition_ready"], "true")
        self.assertEqual(n["__meta_kubernetes_node_condition_memorypressure"], "false")
        self.assertTrue(wait_for(lambda: self.addrs("services") == ["web.default.svc:80"], 20))
        s = self.discovered("services")[0]
        self.assertEqual(s["__meta_kubernetes_service_name"], "web")
        self.assertEqual(s["__meta_kubernetes_service_cluster_ip"], "10.96.0.10")
        self.assertEqual(s["__meta_kubernetes_service_port_name"], "http")
        self.assertEqual(s["__meta_kubernetes_service_type"], "ClusterIP")
        self.assertEqual(s["__meta_kubernetes_service_label_tier"], "front")
        # endpoints: the address with the service's and the pod's labels, and the pod's other port
        self.assertTrue(wait_for(lambda: self.addrs("endpoints") == ["127.0.0.2:8080", "127.0.0.2:9090"], 20),
                        self.addrs("endpoints"))
        e, extra = self.discovered("endpoints")
        self.assertEqual(e["__meta_kubernetes_endpoints_name"], "web")
        self.assertEqual(e["__meta_kubernetes_endpoint_ready"], "true")
        self.assertEqual(e["__meta_kubernetes_endpoint_port_name"], "http")
        self.assertEqual(e["__meta_kubernetes_endpoint_node_name"], "node-1")
        self.assertEqual(e["__meta_kubernetes_endpoint_address_target_kind"], "Pod")
        self.assertEqual(e["__meta_kubernetes_endpoint_address_target_name"], "web-2")
        self.assertEqual(e["__meta_kubernetes_service_label_tier"], "front")
        self.assertEqual(e["__meta_kubernetes_pod_name"], "web-2")
        self.assertEqual(e["__meta_kubernetes_pod_container_port_number"], "8080")
        self.assertEqual(extra["__meta_kubernetes_pod_container_port_name"], "p9090")
        self.assertNotIn("__meta_kubernetes_endpoint_ready", extra)
        self.assertTrue(wait_for(lambda: len(self.discovered("ingresses")) == 2, 20))
        i1, i2 = self.discovered("ingresses")
        self.assertEqual((i1["__address__"], i1["__meta_kubernetes_ingress_scheme"], i1["__meta_kubernetes_ingress_path"]),
                         ("a.example.com", "https", "/x"))
        self.assertEqual((i2["__address__"], i2["__meta_kubernetes_ingress_scheme"], i2["__meta_kubernetes_ingress_path"]),
                         ("b.example.org", "http", "/"))
        self.assertEqual(i1["__meta_kubernetes_ingress_class_name"], "nginx")

    def test_3_watch_events(self):
        wait_for(lambda: len(self.addrs("pods")) == 5, 20)
        watches = self.api.got(lambda p, q: p == "/api/v1/namespaces/default/pods" and "watch" in q)
        self.assertTrue(watches)
        self.assertEqual(watches[0][1]["allowWatchBookmarks"], ["true"])
        self.api.put("pods", pod("default", "web-3", "127.0.0.4", [7070], {"app": "web"}))
        self.assertTrue(wait_for(lambda: "127.0.0.4:7070" in self.addrs("pods"), 20))
        self.api.delete("pods", "default", "web-2")
        self.assertTrue(wait_for(lambda: "127.0.0.2:8080" not in self.addrs("pods"), 20))
        # the endpoints follow the pod they point at
        self.assertTrue(wait_for(lambda: self.addrs("endpoints") == ["127.0.0.2:8080"], 20), self.addrs("endpoints"))
        # a node's labels change: its pods get them
        self.api.put("nodes", node("node-1", "10.0.0.1", {"topology.kubernetes.io/zone": "z2"}))
        self.assertTrue(wait_for(lambda: all(d.get("__meta_kubernetes_node_label_topology_kubernetes_io_zone") == "z2"
                                             for d in self.discovered("pods")), 20))
        self.assertGreaterEqual(self.metric('kiln_sd_kubernetes_events_total{role="pod",event="delete"}'), 1)

    def test_4_broken_watch_and_gone(self):
        wait_for(lambda: "127.0.0.4:7070" in self.addrs("pods"), 20)
        fails = self.metric("kiln_sd_kubernetes_failures_total")
        self.api.break_watches(partial=True)
        self.assertTrue(wait_for(lambda: self.metric("kiln_sd_kubernetes_failures_total") > fails, 20))
        # an event after the break arrives on the new watch, from the last version seen
        self.api.put("pods", pod("default", "web-5", "127.0.0.5", [6060], {"app": "web"}))
        self.assertTrue(wait_for(lambda: "127.0.0.5:6060" in self.addrs("pods"), 20), self.addrs("pods"))
        # history compacted while the watch is down: 410 as an ERROR event, then a list
        lists = len(self.api.got(lambda p, q: p == "/api/v1/namespaces/default/pods" and "watch" not in q))
        self.api.compact()
        self.api.delete("pods", "default", "web-5")  # missed by the broken watch: only the list shows it
        self.api.compact()
        self.api.break_watches(partial=False)
        ok = wait_for(lambda: len(self.api.got(lambda p, q: p == "/api/v1/namespaces/default/pods"
                                               and "watch" not in q)) > lists, 20)
        self.assertTrue(ok)
        self.assertTrue(wait_for(lambda: "127.0.0.5:6060" not in self.addrs("pods"), 20), self.addrs("pods"))
        self.assertIn("resource version gone", self.kiln.read_log())
        # the same with the 410 as the answer's status
        self.api.gone_as_status = True
        try:
            lists = len(self.api.got(lambda p, q: p == "/api/v1/namespaces/default/pods" and "watch" not in q))
            self.api.put("pods", pod("default", "web-6", "127.0.0.6", [6061], {"app": "web"}))
            self.api.compact()
            self.api.break_watches(partial=False)
            self.assertTrue(wait_for(lambda: "127.0.0.6:6061" in self.addrs("pods"), 20))
            self.assertGreater(len(self.api.got(lambda p, q: p == "/api/v1/namespaces/default/pods"
                                                and "watch" not in q)), lists)
        finally:
            self.api.gone_as_status = False


class TestKubernetesInCluster(unittest.TestCase):
    """No api_server: https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT with the service
    account's token, CA and namespace (KILN_KUBERNETES_SA_DIR names their directory)."""

    def test_in_cluster(self):
        tmp = tempfile.mkdtemp(prefix="kiln-test-kube-sa-")
        api = KubeAPI(token="sa-token", tls_dir=tmp)
        sa = os.path.join(tmp, "sa")
        os.mkdir(sa)
        shutil.copy(api.ca, os.path.join(sa, "ca.crt"))
        with open(os.path.join(sa, "token"), "w") as f:
            f.write("sa-token\n")
        with open(os.path.join(sa, "namespace"), "w") as f:
            f.write("team-a")
        api.put("pods", pod("team-a", "p1", "10.1.0.1", [80]))
        api.put("pods", pod("team-b", "p2", "10.1.0.2", [80]))
        env = {"KUBERNETES_SERVICE_HOST": "127.0.0.1", "KUBERNETES_SERVICE_PORT": str(api.port),
               "KILN_KUBERNETES_SA_DIR": sa}
        cfg = """
global: {scrape_interval: 1h}
scrape_configs:
  - job_name: k
    kubernetes_sd_configs: [{role: pod, namespaces: {own_namespace: true}}]
"""
        old = {k: os.environ.get(k) for k in env}
        os.environ.update(env)
        kiln = Kiln(config=cfg)
        try:
            kiln.start()
        finally:
            for k, v in old.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
        try:
            def addrs():
                st, b = kiln.get_json("/api/v1/targets")
                return [t["discoveredLabels"]["__address__"] for t in b["data"]["activeTargets"]]
            self.assertTrue(wait_for(lambda: addrs() == ["10.1.0.1:80"], 20), kiln.read_log()[-2000:])
            self.assertTrue(api.got(lambda p, q: p == "/api/v1/namespaces/team-a/pods"))
        finally:
            api.stop()
            code = kiln.stop()
            log = kiln.read_log()
            kiln.cleanup()
            shutil.rmtree(tmp, ignore_errors=True)
        self.assertEqual(code, 0, log[-3000:])


if __name__ == "__main__":
    unittest.main()
