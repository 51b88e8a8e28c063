#!/usr/bin/env python3
"""Remote-write ingestion, kiln and Prometheus side by side on this machine.

    python3 tests/bench/remotewrite_vs_prometheus.py [--duration 10] [--series 100000]
        [--histograms N]

Starts bin/kiln and Debian's prometheus (--web.enable-remote-write-receiver),
each on a fresh data dir, one after the other; drives each with
build/opt/tests/bench/bench_remotewrite (4 connections, 2000 samples a request,
100k series) for the same time; prints samples/s and resident memory after
the run, and the ratios.  --histograms N sends native histograms of N
buckets instead of float samples (Prometheus then runs with
--enable-feature=native-histograms, which 2.42 needs to store them).
docs/benchmarks.md records the figures.
"""
import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

from benchlib import KILN, ROOT, free_port, rss_of, wait_ready

LOAD = os.path.join(ROOT, "build/opt/tests/bench/bench_remotewrite")


def run(cmd, port, args):
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_ready(port)
        out = subprocess.run([LOAD, f"--url=http://127.0.0.1:{port}/api/v1/write",
                              f"--connections={args.connections}", f"--series={args.series}",
                              f"--batch={args.batch}", f"--duration={args.duration}",
                              f"--histograms={args.histograms}"],
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT).stdout.decode()
        time.sleep(1)
        rss = rss_of(p.pid)
    finally:
        p.terminate()
        p.wait(60)
    m = re.findall(r"([\d.]+) samples/s", out)
    if not m:
        raise RuntimeError("no figure in load generator output:\n" + out)
    return float(m[-1]), rss, out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--duration", type=int, default=10)
    ap.add_argument("--series", type=int, default=100000)
    ap.add_argument("--batch", type=int, default=2000)
    ap.add_argument("--connections", type=int, default=4)
    ap.add_argument("--histograms", type=int, default=0)
    a = ap.parse_args()
    base = tempfile.mkdtemp(prefix="kiln-rwbench-")
    try:
        cfg = os.path.join(base, "cfg.yml")
        with open(cfg, "w") as f:
            f.write("global:\n  scrape_interval: 1h\n")
        port = free_port()
        k_rate, k_rss, _ = run([KILN, f"--config.file={cfg}", f"--storage.tsdb.path={base}/k",
                                f"--web.listen-address=127.0.0.1:{port}"], port, a)
        port = free_port()
        p_rate, p_rss, _ = run(["prometheus", f"--config.file={cfg}", f"--storage.tsdb.path={base}/p",
                                f"--web.listen-address=127.0.0.1:{port}", "--web.enable-remote-write-receiver"]
                               + (["--enable-feature=native-histograms"] if a.histograms else []),
                               port, a)
        what = f"native histograms of {a.histograms} buckets" if a.histograms else "samples"
        print(f"| remote write ({a.series} series, {a.batch} {what} a request, {a.connections} connections, "
              f"{a.duration}s, load {os.getloadavg()[0]:.1f}) | kiln | Prometheus | ratio |")
        print("|---|---|---|---|")
        print(f"| samples/s | {k_rate:.0f} | {p_rate:.0f} | {k_rate / p_rate:.2f} |")
        print(f"| resident memory after the run, MB | {k_rss / 1e6:.0f} | {p_rss / 1e6:.0f} | {k_rss / p_rss:.2f} |")
    finally:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
