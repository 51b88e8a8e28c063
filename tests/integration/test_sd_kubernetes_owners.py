"""kubernetes_sd_configs' attach_metadata deployment, job and cronjob (role
pod) against the scripted API server (kubeapi.KubeAPI): a pod owned by a
ReplicaSet owned by a Deployment, a pod owned by a Job owned by a CronJob;
__meta_kubernetes_pod_deployment_name, _job_name and _cronjob_name on their
targets; a ReplicaSet arriving after its pod and a Job changing owner update
the targets through the watches; ReplicaSets and Jobs listed in the
configured namespaces only; no load warning for those keys."""
import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import test_sd_kubernetes  # noqa: E402 (the module, not its classes: they would run twice)
from kilntest import KilnTestCase, wait_for  # noqa: E402
from kubeapi import KubeAPI, pod  # noqa: E402


def owner(kind, name):
    return {"kind": kind, "name": name, "controller": True, "apiVersion": "v1"}


def owned(resource, kind, ns, name, ctl=None):
    return {"kind": kind, "apiVersion": "apps/v1" if resource == "replicasets" else "batch/v1",
            "metadata": {"name": name, "namespace": ns, "ownerReferences": [ctl] if ctl else []}}


class TestKubernetesOwners(KilnTestCase):
    @classmethod
    def setUpClass(cls):
        cls.api = KubeAPI(token=None)
        api = cls.api
        api.put("pods", pod("default", "web-1", "10.3.0.1", [80], owner=owner("ReplicaSet", "web-7c9f")))
        api.put("replicasets", owned("replicasets", "ReplicaSet", "default", "web-7c9f",
                                     owner("Deployment", "web")))
        api.put("pods", pod("default", "backup-1", "10.3.0.2", [80], owner=owner("Job", "backup-29000")))
        api.put("jobs", owned("jobs", "Job", "default", "backup-29000", owner("CronJob", "backup")))
        # its ReplicaSet comes later (test_late_replicaset)
        api.put("pods", pod("default", "api-1", "10.3.0.3", [80], owner=owner("ReplicaSet", "api-55b")))
        # a namespace the job does not watch: its ReplicaSet of the same name is not used
        api.put("replicasets", owned("replicasets", "ReplicaSet", "other", "api-55b", owner("Deployment", "wrong")))
        attach = {"all": "{deployment: true, job: true, cronjob: true}", "cronjob_only": "{cronjob: true}",
                  "none": "{}"}
        cls.kiln_config = "global: {scrape_interval: 1h}\nscrape_configs:\n" + "".join(
            f"- {{job_name: {job}, kubernetes_sd_configs: [{{role: pod, api_server: '{api.url}', "
            f"namespaces: {{names: [default]}}, attach_metadata: {a}}}]}}\n" for job, a in attach.items())
        cls.addClassCleanup(cls.api.stop)  # after tearDownClass, or a setUpClass that failed
        super().setUpClass()

    discovered = test_sd_kubernetes.TestKubernetesSD.discovered

    def by_pod(self, job):
        return {d["__meta_kubernetes_pod_name"]: d for d in self.discovered(job)}

    def wait_pods(self, job, n=3):
        self.assertTrue(wait_for(lambda: len(self.by_pod(job)) == n, 20), self.kiln.read_log()[-3000:])
        return self.by_pod(job)

    def test_1_deployment_job_cronjob(self):
        d = self.wait_pods("all")
        self.assertEqual(d["web-1"]["__meta_kubernetes_pod_deployment_name"], "web")
        self.assertEqual(d["web-1"]["__meta_kubernetes_pod_controller_kind"], "ReplicaSet")
        self.assertNotIn("__meta_kubernetes_pod_job_name", d["web-1"])
        self.assertEqual(d["backup-1"]["__meta_kubernetes_pod_job_name"], "backup-29000")
        self.assertEqual(d["backup-1"]["__meta_kubernetes_pod_cronjob_name"], "backup")
        self.assertNotIn("__meta_kubernetes_pod_deployment_name", d["backup-1"])
        # only what is asked for
        d = self.wait_pods("cronjob_only")
        self.assertEqual(d["backup-1"]["__meta_kubernetes_pod_cronjob_name"], "backup")
        self.assertNotIn("__meta_kubernetes_pod_job_name", d["backup-1"])
        self.assertNotIn("__meta_kubernetes_pod_deployment_name", d["web-1"])
        d = self.wait_pods("none")
        for p in d.values():
            self.assertFalse([k for k in p if k.endswith(("deployment_name", "job_name"))], p)
        # ReplicaSets and Jobs listed and watched in the configured namespace, nowhere else
        self.assertTrue(self.api.got(lambda p, q: p == "/apis/apps/v1/namespaces/default/replicasets"))
        self.assertTrue(self.api.got(lambda p, q: p == "/apis/batch/v1/namespaces/default/jobs"))
        self.assertFalse(self.api.got(lambda p, q: p in ("/apis/apps/v1/replicasets", "/apis/batch/v1/jobs")))
        self.assertNotIn("attach_metadata", self.kiln.read_log())

    def test_2_late_replicaset(self):
        d = self.wait_pods("all")
        self.assertNotIn("__meta_kubernetes_pod_deployment_name", d["api-1"])  # not the other namespace's
        self.api.put("replicasets", owned("replicasets", "ReplicaSet", "default", "api-55b",
                                          owner("Deployment", "api")))
        self.assertTrue(wait_for(lambda: self.by_pod("all")["api-1"].get("__meta_kubernetes_pod_deployment_name")
                                 == "api", 20), self.by_pod("all")["api-1"])
        # a Job changing owner: its pod's cronjob follows; the Job deleted: both labels go
        self.api.put("jobs", owned("jobs", "Job", "default", "backup-29000", owner("CronJob", "backup-v2")))
        self.assertTrue(wait_for(lambda: self.by_pod("cronjob_only")["backup-1"].get(
            "__meta_kubernetes_pod_cronjob_name") == "backup-v2", 20), self.by_pod("cronjob_only")["backup-1"])
        self.api.delete("jobs", "default", "backup-29000")
        self.assertTrue(wait_for(lambda: "__meta_kubernetes_pod_job_name" not in self.by_pod("all")["backup-1"],
                                 20), self.by_pod("all")["backup-1"])
        self.assertNotIn("__meta_kubernetes_pod_cronjob_name", self.by_pod("all")["backup-1"])
        self.assertEqual(self.by_pod("all")["web-1"]["__meta_kubernetes_pod_deployment_name"], "web")


if __name__ == "__main__":
    unittest.main()
