#!/usr/bin/env python3
"""Scraping cost, kiln vs Debian's Prometheus (2.42), same targets.

    python3 tests/bench/scrape_vs_prometheus.py [--targets 100] [--series 1000]
                                                [--interval 1] [--seconds 30]
    python3 tests/bench/scrape_vs_prometheus.py --many 10000 [--interval 15] [--seconds 60]

1. A test exporter (asyncio, in this process) listens on one port per target
   (or, with --many, serves every target on one port, told apart by ?id=N)
   and answers each scrape with `--series` counters in the text format; the
   values grow by scrape, so the chunks see real deltas.
2. Prometheus scrapes all targets for `--seconds`, then stops; then kiln does
   the same with the same configuration.  Each server's CPU time (utime +
   stime from /proc) over the steady part of its run is divided by the
   samples it appended (its own head samples counter) in that time.
3. Prints CPU microseconds per scraped sample for both and the ratio, and
   kiln's missed/late scrape counters and the slowest scrape_duration_seconds.
"""
import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchlib import KILN, free_port, wait_ready  # noqa: E402

PROMETHEUS = "/usr/bin/prometheus"
TICK = os.sysconf("SC_CLK_TCK")


class Exporter:
    """Serves `series` counters per target, from a thread running asyncio."""

    def __init__(self, nports, series):
        self.nports, self.series, self.ports = nports, series, []
        self.count = {}
        head = "# HELP bench_requests_total Requests.\n# TYPE bench_requests_total counter\n"
        self.lines = [f'bench_requests_total{{code="{200 + i % 5}",path="/p{i}"}} ' for i in range(series)]
        self.head = head
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        threading.Thread(target=self.run, daemon=True).start()
        self.ready.wait()

    def body(self, key):
        n = self.count.get(key, 0) + 1
        self.count[key] = n
        parts = [self.head]
        for i, line in enumerate(self.lines):
            parts.append(f"{line}{n * (i % 7 + 1)}\n")
        return "".join(parts).encode()

    async def handle(self, reader, writer):
        try:
            while True:
                req = await reader.readuntil(b"\r\n\r\n")
                path = req.split(b" ", 2)[1].decode()
                q = urllib.parse.urlparse(path).query
                key = (writer.get_extra_info("sockname")[1], q)
                b = self.body(key)
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\n"
                             b"Content-Length: %d\r\n\r\n" % len(b) + b)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    def run(self):
        asyncio.set_event_loop(self.loop)
        for _ in range(self.nports):
            srv = self.loop.run_until_complete(asyncio.start_server(self.handle, "127.0.0.1", 0, backlog=1024))
            self.ports.append(srv.sockets[0].getsockname()[1])
        self.ready.set()
        self.loop.run_forever()


def config(targets, interval, many_port=None):
    if many_port is None:
        tl = ", ".join(f'"127.0.0.1:{p}"' for p in targets)
        return f"""global:
  scrape_interval: {interval}s
  scrape_timeout: {min(interval, 10)}s
scrape_configs:
  - job_name: bench
    static_configs:
      - targets: [{tl}]
"""
    # one port, targets told apart by a URL parameter set per group
    groups = "\n".join(f'      - targets: ["127.0.0.1:{many_port}"]\n        labels: {{__param_id: "{i}", shard: "{i}"}}'
                       for i in range(targets))
    return f"""global:
  scrape_interval: {interval}s
  scrape_timeout: {min(interval, 10)}s
scrape_configs:
  - job_name: bench
    static_configs:
{groups}
"""


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def metric(port, name):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
        total = 0.0
        for line in r.read().decode().splitlines():
            if line.startswith(name + " ") or line.startswith(name + "{"):
                total += float(line.rsplit(" ", 1)[1])
        return total


def query(port, q):
    u = f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode({"query": q})
    with urllib.request.urlopen(u, timeout=60) as r:
        return json.loads(r.read())["data"]["result"]


def measure(name, cmd, port, appended_metric, seconds, warmup):
    log = open(os.path.join(ARGS.tmp, name + ".log"), "w")
    p = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_ready(port, p, timeout=120)
        time.sleep(warmup)
        c0, s0, t0 = cpu_seconds(p.pid), metric(port, appended_metric), time.time()
        time.sleep(seconds)
        c1, s1, t1 = cpu_seconds(p.pid), metric(port, appended_metric), time.time()
        extra = {}
        if name == "kiln":
            extra["missed"] = metric(port, "kiln_scrape_missed_total")
            extra["late"] = metric(port, "kiln_scrape_late_total")
        r = query(port, "max(scrape_duration_seconds)")
        extra["max_scrape_duration"] = float(r[0]["value"][1]) if r else None
        r = query(port, "count(up == 1)")
        extra["up"] = int(float(r[0]["value"][1])) if r else 0
        return {"cpu": c1 - c0, "samples": s1 - s0, "secs": t1 - t0, **extra}
    finally:
        p.terminate()
        p.wait(timeout=60)
        log.close()


def main():
    global ARGS
    ap = argparse.ArgumentParser()
    ap.add_argument("--targets", type=int, default=100)
    ap.add_argument("--series", type=int, default=1000)
    ap.add_argument("--interval", type=float, default=1)
    ap.add_argument("--seconds", type=float, default=30)
    ap.add_argument("--many", type=int, default=0, help="this many targets on one port (the 10k-target check)")
    ap.add_argument("--kiln-only", action="store_true")
    ARGS = ap.parse_args()
    ARGS.tmp = tempfile.mkdtemp(prefix="kiln-scrape-bench-")
    interval = int(ARGS.interval) if ARGS.interval == int(ARGS.interval) else ARGS.interval
    try:
        if ARGS.many:
            port = Exporter(1, ARGS.series).ports[0]
            cfg = config(ARGS.many, interval, many_port=port)
            ntargets = ARGS.many
        else:
            ports = Exporter(ARGS.targets, ARGS.series).ports
            cfg = config(ports, interval)
            ntargets = ARGS.targets
        path = os.path.join(ARGS.tmp, "scrape.yml")
        with open(path, "w") as f:
            f.write(cfg)
        warmup = 2 * float(interval) + 2
        res = {}
        if not ARGS.kiln_only and os.access(PROMETHEUS, os.X_OK):
            pp = free_port()
            res["prometheus"] = measure("prometheus", [
                PROMETHEUS, f"--config.file={path}", f"--storage.tsdb.path={ARGS.tmp}/prom-data",
                f"--web.listen-address=127.0.0.1:{pp}"], pp, "prometheus_tsdb_head_samples_appended_total",
                ARGS.seconds, warmup)
        kp = free_port()
        res["kiln"] = measure("kiln", [KILN, f"--config.file={path}", f"--storage.tsdb.path={ARGS.tmp}/kiln-data",
                                       f"--web.listen-address=127.0.0.1:{kp}"], kp,
                              "kiln_tsdb_head_samples_appended_total", ARGS.seconds, warmup)
        print(f"{ntargets} targets x {ARGS.series} series every {interval}s, {ARGS.seconds:.0f} s measured "
              f"after {warmup:.0f} s warm-up")
        print("| server | samples appended | CPU s | CPU us / sample | targets up | max scrape_duration_seconds |")
        print("|---|---|---|---|---|---|")
        for n, r in res.items():
            per = r["cpu"] / r["samples"] * 1e6 if r["samples"] else float("nan")
            print(f"| {n} | {r['samples']:.0f} | {r['cpu']:.2f} | {per:.3f} | {r['up']} | "
                  f"{r['max_scrape_duration']} |")
        k = res["kiln"]
        print(f"kiln missed scrapes: {k['missed']:.0f}, late scrapes: {k['late']:.0f}")
        if "prometheus" in res and res["prometheus"]["samples"] and k["samples"]:
            ratio = (k["cpu"] / k["samples"]) / (res["prometheus"]["cpu"] / res["prometheus"]["samples"])
            print(f"kiln / Prometheus CPU per sample: {ratio:.3f}")
    finally:
        shutil.rmtree(ARGS.tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
