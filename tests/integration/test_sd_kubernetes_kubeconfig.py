"""kubernetes_sd_configs with kubeconfig_file and attach_metadata.namespace,
against the scripted API server (kubeapi.KubeAPI): a kubeconfig whose
current context names a TLS cluster (its CA inline) and a user with a
client certificate (a file relative to the kubeconfig) and key (inline),
which the server requires; kubectl, client-go's own reader, checked on the
same file; another with a token file over plain HTTP; one with an exec
plugin, refused with a message; the namespace's labels and annotations on
the targets, following a change of the namespace."""
import base64
import json
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import test_sd_kubernetes  # noqa: E402 (the module, not its classes: they would run twice)
from kilntest import KilnTestCase, wait_for  # noqa: E402
from kubeapi import KubeAPI, make_cert, pod  # noqa: E402


def b64(path):
    with open(path, "rb") as f:
        return base64.b64encode(f.read()).decode()


def namespace(name, labels, annotations=None):
    return {"kind": "Namespace", "apiVersion": "v1",
            "metadata": {"name": name, "labels": labels, "annotations": annotations or {}}}


class TestKubeconfig(KilnTestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="kiln-test-kubeconfig-")
        t = cls.tmp
        # the client's certificate, self-signed: the server trusts it as its own CA
        cdir = os.path.join(t, "client")
        os.mkdir(cdir)
        make_cert(cdir)
        cls.tls = KubeAPI(token=None, tls_dir=t, client_ca=os.path.join(cdir, "server.crt"))
        cls.plain = KubeAPI(token="file-t0ken")
        for api in (cls.tls, cls.plain):
            api.put("pods", pod("default", "web-1", "10.2.0.1", [80], {"app": "web"}))
            api.put("pods", pod("other", "db-1", "10.2.0.2", [5432], {"app": "db"}))
            api.put("namespaces", namespace("default", {"team": "a", "tier.x/y": "front"}, {"owner": "ops"}))
            api.put("namespaces", namespace("other", {"team": "b"}))
        kdir = os.path.join(t, "kube")
        os.mkdir(kdir)
        shutil.copy(os.path.join(cdir, "server.crt"), os.path.join(kdir, "client.crt"))
        cls.kc_tls = os.path.join(kdir, "config")
        with open(cls.kc_tls, "w") as f:
            f.write(f"""apiVersion: v1
kind: Config
current-context: right
clusters:
- name: wrong
  cluster: {{server: "https://127.0.0.1:1"}}
- name: a
  cluster:
    server: {cls.tls.url}
    certificate-authority-data: {b64(cls.tls.ca)}
contexts:
- name: other
  context: {{cluster: wrong, user: u}}
- name: right
  context: {{cluster: a, user: u, namespace: kube-system}}
users:
- name: u
  user:
    client-certificate: client.crt
    client-key-data: {b64(os.path.join(cdir, "server.key"))}
""")
        with open(os.path.join(kdir, "token"), "w") as f:
            f.write("file-t0ken\n")
        cls.kc_token = os.path.join(kdir, "token-config")
        with open(cls.kc_token, "w") as f:
            f.write(f"""apiVersion: v1
clusters: [{{name: p, cluster: {{server: "{cls.plain.url}"}}}}]
users: [{{name: t, user: {{tokenFile: token}}}}]
contexts: [{{name: c, context: {{cluster: p, user: t}}}}]
current-context: c
""")
        cls.kc_exec = os.path.join(kdir, "exec-config")
        with open(cls.kc_exec, "w") as f:
            f.write(f"""clusters: [{{name: p, cluster: {{server: "{cls.plain.url}"}}}}]
users:
- name: e
  user:
    exec: {{apiVersion: client.authentication.k8s.io/v1, command: get-token}}
contexts: [{{name: c, context: {{cluster: p, user: e}}}}]
current-context: c
""")
        cls.kiln_config = f"""
global: {{scrape_interval: 1h}}
scrape_configs:
  - job_name: cert
    kubernetes_sd_configs:
      - role: pod
        kubeconfig_file: {cls.kc_tls}
        namespaces: {{own_namespace: true}}
        attach_metadata: {{namespace: true}}
  - job_name: token
    kubernetes_sd_configs: [{{role: pod, kubeconfig_file: {cls.kc_token}}}]
  - job_name: exec
    kubernetes_sd_configs: [{{role: pod, kubeconfig_file: {cls.kc_exec}}}]
"""
        try:
            super().setUpClass()
        except Exception:
            cls.stop_peers()
            raise

    @classmethod
    def stop_peers(cls):
        cls.tls.stop()
        cls.plain.stop()
        shutil.rmtree(cls.tmp, ignore_errors=True)

    @classmethod
    def tearDownClass(cls):
        cls.stop_peers()
        super().tearDownClass()

    discovered = test_sd_kubernetes.TestKubernetesSD.discovered

    def test_client_certificate_and_namespace_metadata(self):
        self.assertTrue(wait_for(lambda: [d["__address__"] for d in self.discovered("cert")] == ["10.2.0.1:80"],
                                 20), self.kiln.read_log()[-3000:])
        d = self.discovered("cert")[0]
        self.assertEqual(d["__meta_kubernetes_namespace"], "default")
        self.assertEqual(d["__meta_kubernetes_namespace_label_team"], "a")
        self.assertEqual(d["__meta_kubernetes_namespace_labelpresent_team"], "true")
        self.assertEqual(d["__meta_kubernetes_namespace_label_tier_x_y"], "front")
        self.assertEqual(d["__meta_kubernetes_namespace_annotation_owner"], "ops")
        self.assertEqual(d["__meta_kubernetes_namespace_annotationpresent_owner"], "true")
        # own_namespace with a kubeconfig is "default" (not the context's namespace), as in Prometheus
        self.assertTrue(self.tls.got(lambda p, q: p == "/api/v1/namespaces/default/pods"))
        self.assertFalse(self.tls.got(lambda p, q: "kube-system" in p))
        self.assertTrue(self.tls.got(lambda p, q: p == "/api/v1/namespaces"))
        # a change of the namespace reaches its targets through the watch
        self.tls.put("namespaces", namespace("default", {"team": "c"}))

        def relabelled():
            d = self.discovered("cert")
            return len(d) == 1 and d[0].get("__meta_kubernetes_namespace_label_team") == "c" and \
                "__meta_kubernetes_namespace_annotation_owner" not in d[0]
        self.assertTrue(wait_for(relabelled, 20), self.discovered("cert"))

    def test_kubectl_reads_the_same_file(self):
        """client-go (kubectl) connects with the kubeconfig kiln used."""
        if not shutil.which("kubectl"):
            self.fail("kubectl missing")
        out = subprocess.run(["kubectl", "--kubeconfig", self.kc_tls, "get", "--raw",
                              "/api/v1/namespaces/default/pods"], capture_output=True, timeout=60)
        self.assertEqual(out.returncode, 0, out.stderr.decode()[-2000:])
        self.assertEqual([p["metadata"]["name"] for p in json.loads(out.stdout)["items"]], ["web-1"])

    def test_token_file(self):
        # every namespace; db-1's sidecar (no ports) is a target of its own, web-1's is the same
        # target as its port 80 (the address gets :80)
        want = ["10.2.0.1:80", "10.2.0.2", "10.2.0.2:5432"]
        self.assertTrue(wait_for(lambda: [d["__address__"] for d in self.discovered("token")] == want, 20),
                        [d["__address__"] for d in self.discovered("token")])
        self.assertNotIn("__meta_kubernetes_namespace_label_team", self.discovered("token")[0])
        self.assertTrue(self.plain.got(lambda p, q: p == "/api/v1/pods"))

    def test_exec_plugin_refused(self):
        self.assertTrue(wait_for(lambda: "exec credential plugins are not supported" in self.kiln.read_log(), 20),
                        self.kiln.read_log()[-3000:])
        self.assertEqual(self.discovered("exec"), [])


if __name__ == "__main__":
    unittest.main()
