"""dns_sd_configs against Debian's dnsmasq on a loopback port, serving SRV,
A, AAAA and MX records; kiln finds it through KILN_DNS_SD_RESOLV_CONF (a
resolv.conf whose nameserver line carries the port).  The discovered
targets are small exporters (sdserver.Exporters)."""
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from kilntest import Kiln, require, wait_for  # noqa: E402
from sdserver import Exporters  # noqa: E402

DNSMASQ = "/usr/sbin/dnsmasq"


def free_udp_port():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Dnsmasq:
    """dnsmasq answering only from the records it is given, on 127.0.0.1:port."""

    def __init__(self, port, tmp):
        self.port = port
        self.tmp = tmp
        self.proc = None

    def start(self, records):
        conf = os.path.join(self.tmp, "dnsmasq.conf")
        with open(conf, "w") as f:
            f.write("\n".join(records) + "\n")
        self.log = open(os.path.join(self.tmp, "dnsmasq.log"), "ab")
        self.proc = subprocess.Popen(
            [DNSMASQ, "--keep-in-foreground", f"--conf-file={conf}", f"--port={self.port}",
             "--listen-address=127.0.0.1", "--bind-interfaces", "--no-resolv", "--no-hosts", "--no-poll",
             "--user=root", "--group=root", "--pid-file=", "--log-facility=-"],
            stdout=self.log, stderr=subprocess.STDOUT)

        def answers():
            # a query for a name dnsmasq holds gets an answer
            q = b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00" + b"".join(
                bytes([len(p)]) + p.encode() for p in "t1.sd.test".split(".")) + b"\x00\x00\x01\x00\x01"
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.settimeout(0.2)
            try:
                s.sendto(q, ("127.0.0.1", self.port))
                return len(s.recv(512)) > 12
            except OSError:
                return False
            finally:
                s.close()
        # a loaded machine (ASan kilns beside it) can take seconds to start it
        if not wait_for(lambda: answers() or self.proc.poll() is not None, 30) or self.proc.poll() is not None:
            self.log.flush()
            with open(os.path.join(self.tmp, "dnsmasq.log"), "rb") as f:
                tail = f.read()[-2000:].decode(errors="replace")
            raise RuntimeError(f"dnsmasq did not answer (exit status {self.proc.poll()}): {tail}")

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
        self.proc = None
        if getattr(self, "log", None):
            self.log.close()
            self.log = None


class TestDNSSD(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        require(DNSMASQ)
        cls.tmp = tempfile.mkdtemp(prefix="kiln-test-dns-")
        cls.exp = Exporters(3)
        cls.ports = [int(a.rsplit(":", 1)[1]) for a in cls.exp.addrs]
        cls.dns = Dnsmasq(free_udp_port(), cls.tmp)
        cls.dns.start(cls.records([0, 1]))
        resolv = os.path.join(cls.tmp, "resolv.conf")
        with open(resolv, "w") as f:
            f.write(f"# kiln's tests\nsearch sd.test\nnameserver 127.0.0.1:{cls.dns.port}\n")
        cfg = f"""
global: {{scrape_interval: 1s, scrape_timeout: 500ms}}
scrape_configs:
  - job_name: srv
    dns_sd_configs: [{{names: [_prom._tcp.sd.test], refresh_interval: 1s}}]
  - job_name: a
    dns_sd_configs: [{{names: [multi.sd.test], type: A, port: {cls.ports[2]}, refresh_interval: 1s}}]
  - job_name: aaaa
    dns_sd_configs: [{{names: [v6.sd.test], type: AAAA, port: 9, refresh_interval: 1s}}]
    relabel_configs: [{{source_labels: [__address__], regex: '.*', action: drop}}]
  - job_name: mx
    dns_sd_configs: [{{names: [sd.test], type: MX, port: 25, refresh_interval: 1s}}]
    relabel_configs: [{{source_labels: [__address__], regex: '.*', action: drop}}]
  - job_name: search
    dns_sd_configs: [{{names: [t1], type: A, port: 7, refresh_interval: 1s}}]
    relabel_configs: [{{source_labels: [__address__], regex: '.*', action: drop}}]
  - job_name: missing
    dns_sd_configs: [{{names: [nothing.sd.test], refresh_interval: 1s}}]
"""
        os.environ["KILN_DNS_SD_RESOLV_CONF"] = resolv
        cls.kiln = Kiln(config=cfg)
        try:
            cls.kiln.start()
        except Exception:
            cls.tearDownClass()
            raise
        finally:
            del os.environ["KILN_DNS_SD_RESOLV_CONF"]

    @classmethod
    def records(cls, srv):
        # the SRV targets are localhost, which the scrapes resolve without dnsmasq
        r = ["local=/sd.test/"] + [f"srv-host=_prom._tcp.sd.test,localhost,{cls.ports[i]},10,{i}" for i in srv]
        r += [f"host-record=t{i}.sd.test,127.0.0.1" for i in range(3)]
        r += ["host-record=multi.sd.test,127.0.0.1", "host-record=multi.sd.test,127.0.0.2",
              "host-record=v6.sd.test,::1", "mx-host=sd.test,mail.sd.test,10", "host-record=mail.sd.test,127.0.0.9"]
        return r

    @classmethod
    def tearDownClass(cls):
        cls.dns.stop()
        cls.exp.stop()
        try:
            cls.kiln.finish()
        finally:
            shutil.rmtree(cls.tmp, ignore_errors=True)

    def targets(self, job):
        st, body = self.kiln.get_json(f"/api/v1/targets?scrapePool={job}")
        self.assertEqual(st, 200)
        return body["data"]["activeTargets"], body["data"]["droppedTargets"]

    def discovered(self, job):
        a, d = self.targets(job)
        return sorted((t["discoveredLabels"] for t in a + d), key=lambda x: x["__address__"])

    def metric(self, name):
        return self.kiln.metrics().get(name, 0)

    def srv_addrs(self, idx):
        return sorted(f"localhost:{self.ports[i]}" for i in idx)

    def test_1_srv(self):
        want = self.srv_addrs([0, 1])
        ok = wait_for(lambda: [d["__address__"] for d in self.discovered("srv")] == want, 20)
        self.assertTrue(ok, (self.discovered("srv"), self.kiln.read_log()[-2000:]))
        for d in self.discovered("srv"):
            self.assertEqual(d["__meta_dns_name"], "_prom._tcp.sd.test")
            self.assertEqual(d["__meta_dns_srv_record_target"], "localhost.")
            self.assertEqual("localhost:" + d["__meta_dns_srv_record_port"], d["__address__"])
            self.assertNotIn("__meta_dns_mx_record_target", d)
        # the address is the SRV target's name, which resolves: the exporters are scraped
        def up():
            st, _, b = self.kiln.get("/api/v1/query?" + urllib.parse.urlencode({"query": 'up{job="srv"} == 1'}))
            return len(json.loads(b)["data"]["result"]) == 2
        self.assertTrue(wait_for(up, 20))
        self.assertGreaterEqual(self.metric("kiln_sd_dns_lookups_total"), 1)
        self.assertGreaterEqual(self.metric('kiln_sd_refreshes_total{mechanism="dns"}'), 1)

    def test_2_a_aaaa_mx_and_search(self):
        p = self.ports[2]
        ok = wait_for(lambda: [d["__address__"] for d in self.discovered("a")] ==
                      [f"127.0.0.1:{p}", f"127.0.0.2:{p}"], 20)
        self.assertTrue(ok, self.discovered("a"))
        d = self.discovered("a")[0]
        self.assertEqual(d["__meta_dns_name"], "multi.sd.test")
        self.assertNotIn("__meta_dns_srv_record_target", d)
        self.assertTrue(wait_for(lambda: [d["__address__"] for d in self.discovered("aaaa")] == ["[::1]:9"], 20))
        self.assertTrue(wait_for(lambda: self.discovered("mx"), 20))
        mx = self.discovered("mx")
        self.assertEqual([(d["__address__"], d["__meta_dns_mx_record_target"]) for d in mx],
                         [("mail.sd.test:25", "mail.sd.test.")])
        # a relative name goes through resolv.conf's search list
        self.assertTrue(wait_for(lambda: [d["__address__"] for d in self.discovered("search")] ==
                                 ["127.0.0.1:7"], 20), self.discovered("search"))
        self.assertEqual(self.discovered("search")[0]["__meta_dns_name"], "t1")
        # a name without records is no target and no failure
        self.assertEqual(self.discovered("missing"), [])

    def test_3_changes_and_failures(self):
        wait_for(lambda: len(self.discovered("srv")) == 2, 20)
        self.dns.stop()
        fails = self.metric("kiln_sd_dns_lookup_failures_total")
        try:
            # the server is gone: lookups fail and the last good targets stay
            self.assertTrue(wait_for(lambda: self.metric("kiln_sd_dns_lookup_failures_total") > fails, 30))
            self.assertEqual([d["__address__"] for d in self.discovered("srv")], self.srv_addrs([0, 1]))
            self.assertGreaterEqual(self.metric('kiln_sd_refresh_failures_total{mechanism="dns"}'), 1)
        finally:
            self.dns.start(self.records([1, 2]))
        want = self.srv_addrs([1, 2])
        ok = wait_for(lambda: [d["__address__"] for d in self.discovered("srv")] == want, 30)
        self.assertTrue(ok, self.discovered("srv"))


if __name__ == "__main__":
    unittest.main()
