#!/usr/bin/env python3
"""Out-of-order ingestion by remote write 1.0, kiln and Prometheus 2.42 side
by side, both with storage.tsdb.out_of_order_time_window: 10m.

    python3 tests/bench/ooo_vs_prometheus.py [--series 5000] [--passes 600]
        [--late 20] [--late-max 300] [--connections 4] [--batch 2000]

The load: `--passes` rounds of one sample for each of `--series` series, a
second apart and all in the past (the newest a minute ago); `--late` percent
of the samples are held back and sent 1 to `--late-max` rounds later (up to
5 minutes late by default), so they arrive older than their series' newest
sample.  Series i goes on connection i % connections, requests of `--batch`
samples; the requests are built once and the same bytes go to both servers,
kiln (bin/kiln) first, then Prometheus, each on a fresh data directory.

Printed: samples/s (all requests of all connections, start to last answer),
resident memory after the load, the samples each holds afterwards (none may
be missing) and whether the answers to a few queries are equal.
docs/benchmarks.md records the figures.
"""
import argparse
import http.client
import json
import multiprocessing
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request

from benchlib import KILN, free_port, rss_of, wait_ready

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
from rwproto import write_body  # noqa: E402

CONFIG = "global:\n  scrape_interval: 1h\nstorage:\n  tsdb:\n    out_of_order_time_window: 10m\n"
STEP = 1000


def build(a, t0):
    """The request bodies of each connection, in sending order; the samples in all."""
    rnd = random.Random(42)
    conns = [[] for _ in range(a.connections)]
    pending = [[] for _ in range(a.connections)]  # (series, t, v) waiting for a request
    due = {}  # round -> [(series, t, v)] sent late then
    total = 0

    def flush(c, force):
        while len(pending[c]) >= a.batch or (force and pending[c]):
            part, pending[c] = pending[c][:a.batch], pending[c][a.batch:]
            by = {}
            for s, t, v in part:
                by.setdefault(s, []).append((v, t))
            conns[c].append(write_body([([("__name__", "m"), ("i", str(s)), ("job", "ooo")], smp)
                                        for s, smp in by.items()]))

    for r in range(a.passes):
        t = t0 + r * STEP
        for s in range(a.series):
            v = float((s * 7 + r) % 1000)
            if r > 0 and rnd.randrange(100) < a.late:
                due.setdefault(r + rnd.randint(1, a.late_max), []).append((s, t, v))
            else:
                pending[s % a.connections].append((s, t, v))
            total += 1
        for s, lt, v in due.pop(r, []):
            pending[s % a.connections].append((s, lt, v))
        for c in range(a.connections):
            flush(c, False)
    for r in sorted(due):
        for s, lt, v in due[r]:
            pending[s % a.connections].append((s, lt, v))
    for c in range(a.connections):
        flush(c, True)
    return conns, total


RW_HEADERS = {"Content-Type": "application/x-protobuf", "Content-Encoding": "snappy",
              "X-Prometheus-Remote-Write-Version": "0.1.0"}


def sender(port, bodies, q):
    """One connection's requests, in order; puts (refused, the first refusal's body) on q."""
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
    refused = []
    for b in bodies:
        c.request("POST", "/api/v1/write", b, RW_HEADERS)
        r = c.getresponse()
        answer = r.read()
        if r.status >= 300:
            refused.append(answer[:200])
    c.close()
    q.put((len(refused), refused[0] if refused else b""))


def query(port, path, params):
    url = f"http://127.0.0.1:{port}{path}?" + urllib.parse.urlencode(params)
    with urllib.request.urlopen(url, timeout=300) as r:
        return json.loads(r.read())["data"]["result"]


def run(cmd, port, conns, a, t0):
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_ready(port)
        q = multiprocessing.Queue()
        procs = [multiprocessing.Process(target=sender, args=(port, b, q)) for b in conns]
        start = time.time()
        for x in procs:
            x.start()
        res = [q.get() for _ in procs]
        secs = time.time() - start
        for x in procs:
            x.join()
        time.sleep(1)
        rss = rss_of(p.pid)
        # times half a second off the samples': Prometheus 2.42's ranges include their start, 3's do not
        end = (t0 + a.passes * STEP) / 1000 + 0.5
        held = query(port, "/api/v1/query", {"query": "sum(count_over_time(m[1h]))", "time": end})
        ans = [query(port, "/api/v1/query_range", {"query": q, "start": t0 / 1000 + 0.5, "end": end, "step": 15})
               for q in ("sum(m)", "max_over_time(m{i=~\"1.?\"}[1m])", "count_over_time(m{i=\"7\"}[30s])")]
        raw = query(port, "/api/v1/query", {"query": "m{i=~\"3.?\"}[1h]", "time": end})
        raw.sort(key=lambda r: r["metric"]["i"])
    finally:
        p.terminate()
        p.wait(120)
    return secs, rss, int(float(held[0]["value"][1])) if held else 0, ans + [raw], res


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--series", type=int, default=5000)
    ap.add_argument("--passes", type=int, default=600)
    ap.add_argument("--late", type=int, default=20)
    ap.add_argument("--late-max", type=int, default=300)
    ap.add_argument("--connections", type=int, default=4)
    ap.add_argument("--batch", type=int, default=2000)
    a = ap.parse_args()
    now = int(time.time() * 1000)
    t0 = (now - 60_000 - a.passes * STEP) // STEP * STEP
    t_build = time.time()
    conns, total = build(a, t0)
    print(f"built {sum(len(c) for c in conns)} requests, {total} samples in {time.time() - t_build:.0f}s",
          file=sys.stderr)
    base = tempfile.mkdtemp(prefix="kiln-ooobench-")
    try:
        cfg = os.path.join(base, "cfg.yml")
        with open(cfg, "w") as f:
            f.write(CONFIG)
        port = free_port()
        load0 = os.getloadavg()[0]
        k = run([KILN, f"--config.file={cfg}", f"--storage.tsdb.path={base}/k",
                 f"--web.listen-address=127.0.0.1:{port}"], port, conns, a, t0)
        port = free_port()
        pr = run(["prometheus", f"--config.file={cfg}", f"--storage.tsdb.path={base}/p",
                  f"--web.listen-address=127.0.0.1:{port}", "--web.enable-remote-write-receiver"],
                 port, conns, a, t0)
        load1 = os.getloadavg()[0]
        print(f"| out-of-order remote write ({a.series} series, {a.passes} samples each, {a.late}% up to "
              f"{a.late_max}s late, window 10m, {a.batch} samples a request, {a.connections} connections; "
              f"load {load0:.1f} / {load1:.1f}) | kiln | Prometheus 2.42 | ratio |")
        print("|---|---|---|---|")
        print(f"| samples/s | {total / k[0]:.0f} | {total / pr[0]:.0f} | {pr[0] / k[0]:.2f} |")
        print(f"| resident memory after the load, MB | {k[1] / 1e6:.0f} | {pr[1] / 1e6:.0f} | {k[1] / pr[1]:.2f} |")
        print(f"| samples held (of {total}) | {k[2]} | {pr[2]} | |")
        print(f"| failed requests | {sum(x[0] for x in k[4])} | {sum(x[0] for x in pr[4])} | |")
        print(f"| query answers equal | {'yes' if k[3] == pr[3] else 'NO'} | | |")
        for i, (x, y) in enumerate(zip(k[3], pr[3])):
            if x != y:
                print(f"answer {i} differs: kiln {json.dumps(x)[:1500]}\nprometheus {json.dumps(y)[:1500]}",
                      file=sys.stderr)
        for name, r in (("kiln", k), ("prometheus", pr)):
            for bad, first in r[4]:
                if bad:
                    print(f"{name}: {bad} requests failed: {first!r}", file=sys.stderr)
        return 0 if k[2] == total and pr[2] == total and k[3] == pr[3] else 1
    finally:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
