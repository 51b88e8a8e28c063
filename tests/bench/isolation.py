#!/usr/bin/env python3
"""Remote-write latency with the query pool idle and with it saturated.

    python3 tests/bench/isolation.py [--writes 500] [--queries 10] [--kiln bin/kiln]

Starts kiln (--query.timeout=10m), then sends --writes one-sample remote
writes one after the other on a keep-alive connection (each a new sample of
one existing series) and records their latency: first with nothing else
running, then while --queries catastrophic queries evaluate (a subquery of
quantile_over_time over a 1 ms step: all CPU, about 30 s of one core each,
ended by their timeout parameter after --query-seconds).  Prints p50, p99
and the maximum of both runs and their ratio (issue 16's target: p99 within
2x of idle), and the same for GET /-/healthy.  docs/benchmarks.md records
the figures.  --kiln runs another build (e.g. main's before a change).
"""
import argparse
import http.client
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse

from benchlib import KILN, free_port, start_until_ready

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "integration"))
from rwproto import write_body  # noqa: E402

SLOW_QUERY = "count_over_time(quantile_over_time(0.5, vector(1)[5s:1ms])[10m:1ms])"
RW_HEADERS = {
    "Content-Encoding": "snappy",
    "Content-Type": "application/x-protobuf",
    "X-Prometheus-Remote-Write-Version": "0.1.0",
}


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(len(xs) * p))]


def measure(port, n, ts0, stop=None):
    """Latencies (s) of n one-sample writes and of n /-/healthy, interleaved;
    stops early when stop() says so (the queries ended)."""
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    w, h = [], []
    for i in range(n):
        if stop and stop():
            break
        body = write_body([([("__name__", "bench_isolation"), ("job", "bench")], [(float(i), ts0 + i)])])
        t0 = time.monotonic()
        c.request("POST", "/api/v1/write", body=body, headers=RW_HEADERS)
        r = c.getresponse()
        r.read()
        w.append(time.monotonic() - t0)
        if r.status != 204:
            raise RuntimeError(f"remote write answered {r.status}")
        t0 = time.monotonic()
        c.request("GET", "/-/healthy")
        r = c.getresponse()
        r.read()
        h.append(time.monotonic() - t0)
    c.close()
    return w, h


def slow_query(port, seconds, out):
    body = urllib.parse.urlencode({"query": SLOW_QUERY, "time": "1000", "timeout": f"{seconds}s"})
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=3600)
    try:
        c.request("POST", "/api/v1/query", body=body,
                  headers={"Content-Type": "application/x-www-form-urlencoded"})
        r = c.getresponse()
        r.read()
        out.append(r.status)
    finally:
        c.close()


def line(name, w, h):
    ms = lambda x: f"{x * 1000:8.2f}"  # noqa: E731
    print(f"{name:<22} {len(w):6d}  {ms(pct(w, 0.5))} {ms(pct(w, 0.99))} {ms(max(w))}   "
          f"{ms(pct(h, 0.5))} {ms(pct(h, 0.99))} {ms(max(h))}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--writes", type=int, default=500)
    ap.add_argument("--queries", type=int, default=10)
    ap.add_argument("--query-seconds", type=int, default=60)
    ap.add_argument("--kiln", default=KILN)
    a = ap.parse_args()
    base = tempfile.mkdtemp(prefix="kiln-isobench-")
    proc = None
    try:
        cfg = os.path.join(base, "cfg.yml")
        with open(cfg, "w") as f:
            f.write("global:\n  scrape_interval: 1h\n")
        port = free_port()
        proc, _ = start_until_ready([a.kiln, f"--config.file={cfg}", f"--storage.tsdb.path={base}/data",
                                     f"--web.listen-address=127.0.0.1:{port}", "--query.timeout=10m",
                                     "--query.max-samples=2000000000"], port)
        ts0 = int(time.time() * 1000) - 3600 * 1000
        measure(port, 20, ts0)  # warm up: the series exists, the connection path is hot
        idle_w, idle_h = measure(port, a.writes, ts0 + 100)
        statuses = []
        threads = [threading.Thread(target=slow_query, args=(port, a.query_seconds, statuses), daemon=True)
                   for _ in range(a.queries)]
        for t in threads:
            t.start()
        time.sleep(2)  # the queries reach the server and start evaluating
        busy_w, busy_h = measure(port, a.writes, ts0 + 100 + a.writes,
                                 stop=lambda: not all(t.is_alive() for t in threads))
        running = sum(t.is_alive() for t in threads)
        for t in threads:
            t.join()
        print(f"kiln: {a.kiln}; {a.queries} queries of {a.query_seconds} s "
              f"({running} still running after the loaded run; answers {sorted(set(statuses))})")
        print(f"{'':<22} {'writes':>6}  {'write p50':>8} {'p99':>8} {'max':>8}   "
              f"{'healthy p50':>8} {'p99':>8} {'max':>8}  (ms)")
        line("idle", idle_w, idle_h)
        line(f"{a.queries} queries running", busy_w, busy_h)
        print(f"write p99 ratio loaded/idle: {pct(busy_w, 0.99) / pct(idle_w, 0.99):.2f}x; "
              f"healthy p99 ratio: {pct(busy_h, 0.99) / pct(idle_h, 0.99):.2f}x")
        if len(busy_w) < a.writes:
            print(f"note: the queries ended after {len(busy_w)} of {a.writes} loaded writes")
    finally:
        if proc:
            proc.terminate()
            proc.wait(120)
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
