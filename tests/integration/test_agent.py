"""kiln --agent: a scraper and remote-write forwarder only.  kiln scrapes a
target whose every answer is numbered and timestamped and forwards to
Debian's Prometheus 2.42 (--web.enable-remote-write-receiver): every sample
served arrives.  The data directory defaults to data-agent/, the WAL is
truncated (a checkpoint, older segments gone) while forwarding goes on, the
query endpoints answer as Prometheus' agent does, and the server-only flags
and sections are refused as Prometheus refuses them."""
import glob
import http.server
import json
import os
import re
import socketserver
import subprocess
import threading
import time
import unittest
import urllib.parse

from kilntest import KILN_BIN, Kiln, http_get, wait_for
from test_remote_write_out import Receiver


class Target:
    """An exporter whose n-th answer is `agent_seq n <ms>`; served records
    (ms, n) for each answer."""

    def __init__(self):
        self.served = []
        outer = self

        class H(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                ms = int(time.time() * 1000)
                n = len(outer.served) + 1
                outer.served.append((ms, n))
                # and a series that lives for one scrape: the queues' series cache
                # drops it once a checkpoint no longer holds it
                body = f"# TYPE agent_seq gauge\nagent_seq {n} {ms}\nagent_churn{{n=\"{n}\"}} 1\n".encode()
                self.send_response(200)
                for name, value in (("Content-Type", "text/plain; version=0.0.4"), ("Content-Length", len(body))):
                    self.send_header(name, str(value))
                self.end_headers()
                self.wfile.write(body)

            log_message = lambda *a: None  # noqa: E731

        self.srv = socketserver.ThreadingTCPServer(("127.0.0.1", 0), H)
        self.addr = f"127.0.0.1:{self.srv.server_address[1]}"
        threading.Thread(target=self.srv.serve_forever, daemon=True).start()

    def close(self):
        self.srv.shutdown()
        self.srv.server_close()


def agent(config, extra=()):
    """A Kiln in agent mode with the default data path (data-agent/ under its
    working directory)."""
    k = Kiln(config=config)
    k.args = [a for a in k.args if not a.startswith("--storage.tsdb.path=")] + ["--agent"] + list(extra)
    k.data = os.path.join(k.workdir, "data-agent")
    return k


def received(recv, t_end):
    q = urllib.parse.urlencode({"query": "agent_seq[10m]", "time": f"{t_end:.3f}"})
    st, body = http_get(f"{recv.url}/api/v1/query?{q}")
    if st != 200:
        return []
    res = json.loads(body)["data"]["result"]
    return [(int(round(float(t) * 1000)), int(float(v))) for r in res for t, v in r["values"]]


class AgentTest(unittest.TestCase):
    def test_forwards_every_sample_and_truncates(self):
        recv = Receiver()
        recv.start()
        target = Target()
        cfg = f"""global:
  scrape_interval: 1s
  external_labels: {{agent: a1}}
scrape_configs:
  - job_name: t
    static_configs: [{{targets: ["{target.addr}"]}}]
remote_write:
  - url: {recv.url}/api/v1/write
    queue_config: {{batch_send_deadline: 1s}}
"""
        k = agent(cfg, ["--storage.agent.truncate-frequency=3s", "--storage.agent.retention.min-time=1s"])
        try:
            k.start()
            self.assertTrue(os.path.isdir(os.path.join(k.workdir, "data-agent", "wal")))
            self.assertIn("mode=agent", k.read_log())
            # queries answer as Prometheus' agent
            for path in ("/api/v1/query?query=up", "/api/v1/query_range?query=up&start=1&end=2&step=1",
                         "/api/v1/labels", "/api/v1/label/job/values", "/api/v1/series?match[]=up",
                         "/api/v1/rules", "/api/v1/alerts", "/api/v1/status/tsdb"):
                st, _, body = k.get(path)
                self.assertEqual((st, json.loads(body)), (422, {"status": "error", "errorType": "execution",
                                                                "error": "unavailable with Prometheus Agent"}), path)
            st, _, body = k.get("/federate?match[]=up")
            self.assertEqual((st, body), (500, b"unsupported operation with WAL-only storage\n"))
            st, _, _ = k.get("/api/v1/status/buildinfo")
            self.assertEqual(st, 200)
            st, _, body = k.get("/api/v1/targets")
            self.assertEqual(st, 200)
            # forwarding while the WAL is truncated: a checkpoint appears and the
            # first segments go
            wal = os.path.join(k.data, "wal")
            self.assertTrue(wait_for(lambda: glob.glob(os.path.join(wal, "checkpoint.*")), timeout=30),
                            k.read_log())
            self.assertTrue(wait_for(lambda: len(target.served) >= 12, timeout=30))
            # a second truncation after more forwarding
            first = sorted(glob.glob(os.path.join(wal, "checkpoint.*")))[-1]
            self.assertTrue(wait_for(lambda: sorted(glob.glob(os.path.join(wal, "checkpoint.*")))[-1] != first,
                                     timeout=30), k.read_log())
            self.assertNotIn("0" * 8, os.listdir(wal))  # segment 0 is gone
            gc = re.compile(r'msg="remote write: series cache garbage-collected" .* removed=([0-9]+)')
            self.assertTrue(wait_for(lambda: any(int(m) > 0 for m in gc.findall(k.read_log())), timeout=30),
                            k.read_log()[-3000:])
            # every sample served arrives, once (taken while kiln runs: a scrape
            # its shutdown abandons was served and never stored)
            served = list(target.served)
            t_end = time.time()
            ok = wait_for(lambda: set(received(recv, t_end)) >= set(served), timeout=30)
            got = received(recv, t_end)
            self.assertTrue(ok, f"missing {sorted(set(served) - set(got))[:10]} of {len(served)}")
            self.assertEqual(len(got), len(set(got)))
            self.assertGreaterEqual(len(served), 12)
            # with the external label
            st, body = http_get(f"{recv.url}/api/v1/series?match[]=agent_seq")
            (series,) = json.loads(body)["data"]
            self.assertEqual(series["agent"], "a1")
            self.assertEqual(k.stop(), 0)
        finally:
            if k.proc and k.proc.poll() is None:
                k.stop()
            k.cleanup()
            target.close()
            recv.stop()
            recv.cleanup()

    def run_kiln(self, args, config):
        k = Kiln(config=config)
        try:
            p = subprocess.run([KILN_BIN, f"--config.file={k.config_path}",
                                f"--web.listen-address={k.addr}"] + args,
                               cwd=k.tmp, capture_output=True, timeout=60)
            return p.returncode, p.stderr.decode() + p.stdout.decode()
        finally:
            k.cleanup()

    def test_refused_flags_and_sections(self):
        rc, out = self.run_kiln(["--agent", "--storage.tsdb.retention.time=1d", "--query.timeout=1m"], "")
        self.assertEqual(rc, 3)
        self.assertIn('The following flag(s) can not be used in agent mode: '
                      '["--storage.tsdb.retention.time" "--query.timeout"]', out)
        rc, out = self.run_kiln(["--storage.agent.path=x"], "")
        self.assertEqual(rc, 3)
        self.assertIn('The following flag(s) can only be used in agent mode: ["--storage.agent.path"]', out)
        for section, text in (("rule_files", "rule_files: [a.yml]\n"),
                              ("alerting", "alerting:\n  alertmanagers:\n    - static_configs: [{targets: [a:1]}]\n"),
                              ("remote_read", "remote_read:\n  - url: http://a/\n")):
            rc, out = self.run_kiln(["--agent"], text)
            self.assertNotEqual(rc, 0)
            self.assertIn(f"field {section} is not allowed in agent mode", out)


if __name__ == "__main__":
    unittest.main()
