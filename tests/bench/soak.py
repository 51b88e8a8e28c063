#!/usr/bin/env python3
"""Soak: kiln under every kind of work at once, at a bounded rate, for a long time.

    python3 tests/bench/soak.py [--duration 3600] [--series 2000] [--report out.json]

Starts bin/kiln (the shipped binary) on a fresh data dir with small blocks
(--storage.tsdb.min-block-duration=5m, so the head is compacted into blocks
and blocks merged many times an hour), lifecycle and admin APIs on, scraping
itself and Debian's prometheus-node-exporter every 5 s.  Then, all at once
until the duration is over:

  - remote write: `--series` series, one sample each per second, one request
    a second (timestamps = now), every acknowledgement checked;
  - queries: a dashboard's worth (instant and range, rate/sum/histogram) every
    2 s, each answer checked for status 200;
  - reloads: POST /-/reload every 60 s;
  - deletes: every 5 min, delete_series of one series in a hundred over the
    last 10 minutes, then clean_tombstones.

Every 10 s it records kiln's RSS and the latency of the work of those 10 s;
at the end it checks that every acknowledged sample of a series that was never
deleted is there (count_over_time over the whole run, per series), prints a
table per 5 minutes (RSS, remote-write p50/p99, query p50/p99) and writes the
whole record as JSON (--report).  Exit status 1 when an acknowledged sample is
missing, a request failed, or kiln died.
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
from benchlib import KILN, free_port, rss_of, start_until_ready  # noqa: E402
from rwproto import write_body  # noqa: E402

QUERIES = [
    "sum by (job) (rate(soak_requests_total[1m]))",
    "histogram_quantile(0.99, sum by (le) (rate(kiln_http_request_duration_seconds_bucket[1m])))",
    "topk(5, soak_requests_total)",
    "count(up)",
    "rate(node_cpu_seconds_total[1m])",
]


class Stats:
    def __init__(self):
        self.lock = threading.Lock()
        self.lat = {"write": [], "query": [], "reload": [], "delete": []}
        self.errors = []

    def add(self, kind, secs):
        with self.lock:
            self.lat[kind].append(secs)

    def error(self, what):
        with self.lock:
            self.errors.append(what)
        print("error:", what, file=sys.stderr)

    def take(self):
        with self.lock:
            out = self.lat
            self.lat = {k: [] for k in out}
            return out


def pct(v, p):
    if not v:
        return None
    v = sorted(v)
    return v[min(len(v) - 1, int(p * len(v)))]


def http(url, data=None, method=None, timeout=60):
    req = urllib.request.Request(url, data=data, method=method)
    if data is not None and method is None:
        req.add_header("Content-Type", "application/x-protobuf")
        req.add_header("Content-Encoding", "snappy")
        req.add_header("X-Prometheus-Remote-Write-Version", "0.1.0")
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return r.status, r.read()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--duration", type=int, default=3600)
    ap.add_argument("--series", type=int, default=2000)
    ap.add_argument("--report", default=None)
    a = ap.parse_args()

    base = tempfile.mkdtemp(prefix="kiln-soak-")
    ne_port, port = free_port(), free_port()
    ne = subprocess.Popen(["prometheus-node-exporter", f"--web.listen-address=127.0.0.1:{ne_port}"],
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    cfg = os.path.join(base, "kiln.yml")
    with open(cfg, "w") as f:
        f.write(f"""global:
  scrape_interval: 5s
scrape_configs:
  - job_name: kiln
    static_configs: [{{targets: ['127.0.0.1:{port}']}}]
  - job_name: node
    static_configs: [{{targets: ['127.0.0.1:{ne_port}']}}]
""")
    kiln, _ = start_until_ready([KILN, f"--config.file={cfg}", f"--storage.tsdb.path={base}/data",
                                 f"--web.listen-address=127.0.0.1:{port}", "--web.enable-lifecycle",
                                 "--web.enable-admin-api", "--storage.tsdb.min-block-duration=5m",
                                 "--storage.tsdb.max-block-duration=30m"], port)
    url = f"http://127.0.0.1:{port}"
    st = Stats()
    stop = threading.Event()
    start = time.time()
    acked = [0] * a.series      # acknowledged samples per series
    deleted = set()             # series touched by a deletion

    def writer():
        while not stop.is_set():
            t0 = time.time()
            ts = int(t0 * 1000)
            series = [([("__name__", "soak_requests_total"), ("i", str(i)), ("job", f"j{i % 10}")],
                       [(float(ts // 1000), ts)]) for i in range(a.series)]
            try:
                code, _ = http(url + "/api/v1/write", write_body(series))
                if code == 204:
                    for i in range(a.series):
                        acked[i] += 1
                else:
                    st.error(f"remote write answered {code}")
            except Exception as e:  # noqa: BLE001
                st.error(f"remote write: {e}")
            st.add("write", time.time() - t0)
            stop.wait(max(0, 1 - (time.time() - t0)))

    def querier():
        while not stop.is_set():
            for q in QUERIES:
                t0 = time.time()
                now = time.time()
                try:
                    path = "/api/v1/query_range?" + urllib.parse.urlencode(
                        {"query": q, "start": now - 600, "end": now, "step": 15})
                    http(url + path)
                except Exception as e:  # noqa: BLE001
                    st.error(f"query {q}: {e}")
                st.add("query", time.time() - t0)
            stop.wait(2)

    def operator():
        n = 0
        while not stop.wait(60):
            n += 1
            t0 = time.time()
            try:
                http(url + "/-/reload", data=b"", method="POST")
            except Exception as e:  # noqa: BLE001
                st.error(f"reload: {e}")
            st.add("reload", time.time() - t0)
            if n % 5 == 0:
                t0 = time.time()
                victims = [i for i in range(n % 100, a.series, 100)]
                sel = 'soak_requests_total{i=~"%s"}' % "|".join(str(i) for i in victims)
                try:
                    http(url + "/api/v1/admin/tsdb/delete_series?" + urllib.parse.urlencode(
                        {"match[]": sel, "start": time.time() - 600, "end": time.time()}), data=b"",
                         method="POST")
                    http(url + "/api/v1/admin/tsdb/clean_tombstones", data=b"", method="POST")
                    deleted.update(victims)
                except Exception as e:  # noqa: BLE001
                    st.error(f"delete: {e}")
                st.add("delete", time.time() - t0)

    threads = [threading.Thread(target=f, daemon=True) for f in (writer, querier, operator)]
    for t in threads:
        t.start()
    record = []
    try:
        while time.time() - start < a.duration:
            time.sleep(10)
            if kiln.poll() is not None:
                st.error(f"kiln exited with {kiln.returncode}")
                break
            lat = st.take()
            record.append({"t": round(time.time() - start), "rss": rss_of(kiln.pid),
                           **{k: v for k, v in lat.items()}})
    finally:
        stop.set()
        for t in threads:
            t.join(120)

    # every acknowledged sample of a series never deleted must be there
    missing = 0
    if kiln.poll() is None:
        span = int(time.time() - start) + 60
        q = f"count_over_time(soak_requests_total[{span}s])"
        _, body = http(url + "/api/v1/query?" + urllib.parse.urlencode({"query": q}))
        got = {int(r["metric"]["i"]): int(float(r["value"][1]))
               for r in json.loads(body)["data"]["result"]}
        for i in range(a.series):
            if i not in deleted and got.get(i, 0) < acked[i]:
                missing += acked[i] - got.get(i, 0)
        kiln.terminate()
        kiln.wait(120)
    ne.terminate()
    ne.wait(30)

    print(f"{'minutes':>7} {'RSS MB':>8} {'write p50':>10} {'write p99':>10} {'query p50':>10} {'query p99':>10}")
    for i in range(0, len(record), 30):
        w = record[i:i + 30]
        wl = [x for r in w for x in r["write"]]
        ql = [x for r in w for x in r["query"]]
        fmt = lambda v: f"{v * 1000:8.1f}ms" if v is not None else "         -"  # noqa: E731
        print(f"{w[-1]['t'] / 60:7.1f} {max(r['rss'] for r in w) / 1e6:8.1f} {fmt(pct(wl, .5))} "
              f"{fmt(pct(wl, .99))} {fmt(pct(ql, .5))} {fmt(pct(ql, .99))}")
    allw = [x for r in record for x in r["write"]]
    print(f"acknowledged samples: {sum(acked)}, missing: {missing}, errors: {len(st.errors)}, "
          f"write p99 overall: {pct(allw, .99) and pct(allw, .99) * 1000:.1f} ms, "
          f"RSS first/last/max MB: {record[0]['rss'] / 1e6:.1f}/{record[-1]['rss'] / 1e6:.1f}/"
          f"{max(r['rss'] for r in record) / 1e6:.1f}" if record else "no record")
    if a.report:
        with open(a.report, "w") as f:
            json.dump({"record": [{"t": r["t"], "rss": r["rss"],
                                   "write_p99": pct(r["write"], .99), "query_p99": pct(r["query"], .99)}
                                  for r in record],
                       "acked": sum(acked), "missing": missing, "errors": st.errors[:100]}, f, indent=1)
    shutil.rmtree(base, ignore_errors=True)
    return 1 if missing or st.errors else 0


if __name__ == "__main__":
    sys.exit(main())
