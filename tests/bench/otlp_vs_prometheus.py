#!/usr/bin/env python3
"""OTLP ingestion: kiln's OTLP receiver against kiln's own remote write 1.0
with the same series (the issue's target), and Prometheus 2.42 checked for an
OTLP receiver.

    python3 tests/bench/otlp_vs_prometheus.py [--duration 10] [--series 100000]

Runs bin/kiln (--web.enable-otlp-receiver) twice on fresh data dirs: once
driven by build/opt/tests/bench/bench_remotewrite --otlp (uncompressed
protobuf ExportMetricsServiceRequests of 2,000 gauge points, 4 connections,
100k series) at /api/v1/otlp/v1/metrics, once by the same tool in remote
write mode (snappy WriteRequests of 2,000 samples) at /api/v1/write.  Prints
samples/s, the samples kiln stored per second of its own CPU time (user +
system, from /proc: on a shared, loaded machine the fairer figure, since
the wall-clock rate depends on what else runs) and resident memory after
each run, and the ratios.  Then starts
Debian's prometheus (2.42) with --enable-feature=otlp-write-receiver and
POSTs an empty OTLP request: 2.42 has no OTLP receiver (the feature came in
2.47), so it answers 404 and there is no Prometheus figure to put beside
kiln's.  docs/benchmarks.md records the figures.
"""
import argparse
import os
import re
import shutil
import subprocess
import tempfile
import time
import urllib.error
import urllib.request

from benchlib import KILN, ROOT, free_port, rss_of, wait_ready

LOAD = os.path.join(ROOT, "build/opt/tests/bench/bench_remotewrite")


def run_kiln(base, name, path, extra, a):
    port = free_port()
    p = subprocess.Popen([KILN, f"--config.file={base}/cfg.yml", f"--storage.tsdb.path={base}/{name}",
                          f"--web.listen-address=127.0.0.1:{port}", "--web.enable-otlp-receiver"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_ready(port)
        cpu0 = cpu_of(p.pid)
        out = subprocess.run([LOAD, f"--url=http://127.0.0.1:{port}{path}", f"--connections={a.connections}",
                              f"--series={a.series}", f"--batch={a.batch}", f"--duration={a.duration}"] + extra,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT).stdout.decode()
        cpu = cpu_of(p.pid) - cpu0
        time.sleep(1)
        rss = rss_of(p.pid)
    finally:
        p.terminate()
        p.wait(60)
    m = re.findall(r"([\d.]+) samples/s", out)
    if not m or " 0 4xx, 0 5xx, 0 other" not in out:
        raise RuntimeError("load generator failed:\n" + out)
    accepted = int(re.findall(r"accepted (\d+)", out)[-1])
    return float(m[-1]), accepted / cpu, rss


def cpu_of(pid):
    """CPU seconds (user + system) a process has used."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def prometheus_otlp_status(base):
    """The status Prometheus 2.42 answers an OTLP request with."""
    port = free_port()
    p = subprocess.Popen(["/usr/bin/prometheus", f"--config.file={base}/cfg.yml",
                          f"--storage.tsdb.path={base}/prom", f"--web.listen-address=127.0.0.1:{port}",
                          "--enable-feature=otlp-write-receiver"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_ready(port)
        req = urllib.request.Request(f"http://127.0.0.1:{port}/api/v1/otlp/v1/metrics", data=b"",
                                     headers={"Content-Type": "application/x-protobuf"})
        try:
            return urllib.request.urlopen(req, timeout=10).status
        except urllib.error.HTTPError as e:
            return e.code
    finally:
        p.terminate()
        p.wait(60)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--duration", type=int, default=10)
    ap.add_argument("--series", type=int, default=100000)
    ap.add_argument("--batch", type=int, default=2000)
    ap.add_argument("--connections", type=int, default=4)
    a = ap.parse_args()
    base = tempfile.mkdtemp(prefix="kiln-otlpbench-")
    try:
        with open(os.path.join(base, "cfg.yml"), "w") as f:
            f.write("global:\n  scrape_interval: 1h\n")
        o_rate, o_cpu, o_rss = run_kiln(base, "otlp", "/api/v1/otlp/v1/metrics", ["--otlp"], a)
        r_rate, r_cpu, r_rss = run_kiln(base, "rw", "/api/v1/write", [], a)
        st = prometheus_otlp_status(base)
        print(f"load average: {os.getloadavg()[0]:.1f}")
        print(f"kiln OTLP:          {o_rate:12.0f} samples/s, {o_cpu:12.0f} samples per CPU second, "
              f"{o_rss / 1e6:6.0f} MB resident after")
        print(f"kiln remote write:  {r_rate:12.0f} samples/s, {r_cpu:12.0f} samples per CPU second, "
              f"{r_rss / 1e6:6.0f} MB resident after")
        print(f"OTLP / remote write: {o_rate / r_rate:.2f} (samples/s), {o_cpu / r_cpu:.2f} (per CPU second)")
        print(f"prometheus 2.42 --enable-feature=otlp-write-receiver: POST /api/v1/otlp/v1/metrics -> {st}")
    finally:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
