#!/usr/bin/env python3
"""Native histogram head memory, kiln and Prometheus 2.42 side by side on the same data.

    python3 tests/bench/nhist_memory_vs_prometheus.py [--series 10000] [--samples 480] [--buckets 40] [--runs 1]

1. bench_histogram gen writes --series integer native histograms (schema 3,
   --buckets populated buckets in one span, a request-latency-like shape,
   one sample every 15 s; 480 samples = 2 h) into a fresh data directory
   through kiln's appender: its WAL (histogram records in Prometheus'
   format) and chunks_head.
2. bin/kiln starts on one copy, Debian's prometheus
   (--enable-feature=native-histograms) on another, one after the other,
   each alone: both replay the same WAL into their heads.  Once ready and
   settled (5 s), each one's resident memory (VmRSS) is read, and the
   memory of an empty start of each (the baseline) is subtracted: the
   head's memory per series.

Prints one Markdown table; docs/benchmarks.md records the figures.
"""
import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

from benchlib import KILN, ROOT, free_port, rss_of, start_until_ready

BENCH = os.path.join(ROOT, "build/opt/tests/bench/bench_histogram")


def server_rss(kind, data, tmp):
    port = free_port()
    if kind == "kiln":
        cmd = [KILN, f"--storage.tsdb.path={data}", f"--web.listen-address=127.0.0.1:{port}"]
    else:
        cfg = os.path.join(tmp, "prometheus.yml")
        with open(cfg, "w") as f:
            f.write("global: {scrape_interval: 1h}\n")
        cmd = ["prometheus", f"--config.file={cfg}", f"--storage.tsdb.path={data}",
               f"--web.listen-address=127.0.0.1:{port}", "--enable-feature=native-histograms"]
    p, secs = start_until_ready(cmd, port)
    try:
        time.sleep(5)
        rss = (rss_of(p.pid), rss_of(p.pid, "RssAnon"))
    finally:
        p.terminate()
        p.wait(120)
    return secs, rss


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--series", type=int, default=10000)
    ap.add_argument("--samples", type=int, default=480)
    ap.add_argument("--buckets", type=int, default=40)
    ap.add_argument("--runs", type=int, default=1)
    a = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="nhist-mem-")
    try:
        src = os.path.join(tmp, "src")
        out = subprocess.run([BENCH, "gen", src, str(a.series), str(a.samples), str(a.buckets)],
                             capture_output=True, text=True, check=True)
        print(out.stdout.strip().splitlines()[0], file=sys.stderr)
        res = {"kiln": [], "prometheus": []}
        base = {}
        for kind in res:
            empty = os.path.join(tmp, f"empty-{kind}")
            base[kind] = server_rss(kind, empty, tmp)[1]
            shutil.rmtree(empty)

        def mem(kind, i):
            return statistics.median(r[i] for _, r in res[kind]) - base[kind][i]
        for _ in range(a.runs):
            for kind in res:
                d = os.path.join(tmp, kind)
                shutil.copytree(src, d)
                secs, rss = server_rss(kind, d, tmp)
                res[kind].append((secs, rss))
                shutil.rmtree(d)
        load = os.getloadavg()[0]
        print(f"| {a.series} series, schema 3, {a.buckets} buckets, {a.samples} samples at 15 s | kiln | Prometheus 2.42 | kiln / Prometheus |")
        print("|---|---|---|---|")
        ks = statistics.median(s for s, _ in res["kiln"])
        ps = statistics.median(s for s, _ in res["prometheus"])
        for i, what in ((0, "VmRSS"), (1, "RssAnon (heap: file pages of chunks_head left out)")):
            km, pm = mem("kiln", i), mem("prometheus", i)
            print(f"| head memory, {what}, minus an empty start's | {km / 2**20:.1f} MiB | {pm / 2**20:.1f} MiB | "
                  f"{km / pm:.3f} |")
            print(f"| per series | {km / a.series:.0f} B | {pm / a.series:.0f} B | |")
        print(f"| replay to ready | {ks:.1f} s | {ps:.1f} s | {ks / ps:.2f} |")
        print(f"| empty start VmRSS | {base['kiln'][0] / 2**20:.1f} MiB | {base['prometheus'][0] / 2**20:.1f} MiB | |")
        print(f"\nload average (1 min) at the end: {load:.2f}; runs: {a.runs}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
