#!/usr/bin/env python3
"""Head + WAL benchmark, kiln and Prometheus side by side on the same data.

    python3 tests/bench/storage_vs_prometheus.py [--series 100000] [--samples 480] [--runs 1]

1. bench_storage gen writes <series> node-exporter-like series x <samples>
   samples at a 15 s interval into a fresh data dir through kiln's appender
   (head + WAL, one thread): append throughput.
2. bench_storage replay opens a copy of it: kiln's WAL replay time and
   resident memory per series.
3. Debian's prometheus starts on another copy of the same directory (kiln
   writes Prometheus' WAL format): its replay time (from its start to the
   log line both servers write when ready, then /-/ready checked) and its
   resident memory once ready, per series.
4. bin/kiln starts on a third copy: replay time through the real daemon.
3 and 4 run again without chunks_head (the whole WAL replayed).  With
--runs N the servers start N times each, in turn, each time on fresh copies,
and the table shows medians (start-up times on a shared machine vary by a
fifth from one run to the next).

Prints one table; docs/benchmarks.md records the figures.
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

BENCH = os.path.join(ROOT, "build/opt/tests/bench/bench_storage")


def parse(out):
    vals = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 2:
            try:
                vals[parts[0]] = float(parts[1])
            except ValueError:
                pass
    return vals


def run_server(cmd, port):
    p, secs = start_until_ready(cmd, port)
    try:
        time.sleep(2)
        rss = rss_of(p.pid)
    finally:
        p.terminate()
        p.wait(60)
    return secs, rss


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--series", type=int, default=100000)
    ap.add_argument("--samples", type=int, default=480)
    ap.add_argument("--runs", type=int, default=1)
    a = ap.parse_args()
    base = tempfile.mkdtemp(prefix="kiln-bench-")
    try:
        src = os.path.join(base, "src")
        out = subprocess.run([BENCH, "gen", src, str(a.series), str(a.samples)], check=True,
                             stdout=subprocess.PIPE).stdout.decode()
        print(out.strip().splitlines()[0])
        gen = parse(out)
        shutil.copytree(src, os.path.join(base, "k1"))
        out = subprocess.run([BENCH, "replay", os.path.join(base, "k1")], check=True,
                             stdout=subprocess.PIPE).stdout.decode()
        print(out.strip().splitlines()[0])
        rep = parse(out)

        cfg = os.path.join(base, "prom.yml")
        with open(cfg, "w") as f:
            f.write("global:\n  scrape_interval: 1h\n")

        def start(kind, wal_only):
            d = os.path.join(base, "run")
            shutil.rmtree(d, ignore_errors=True)
            shutil.copytree(src, d)
            if wal_only:
                shutil.rmtree(os.path.join(d, "chunks_head"), ignore_errors=True)
            port = free_port()
            if kind == "p":
                cmd = ["prometheus", f"--config.file={cfg}", f"--storage.tsdb.path={d}",
                       f"--web.listen-address=127.0.0.1:{port}", "--storage.tsdb.retention.time=100y"]
            else:
                cmd = [KILN, f"--config.file={cfg}", f"--storage.tsdb.path={d}",
                       f"--web.listen-address=127.0.0.1:{port}"]
            return run_server(cmd, port)

        res = {k: [] for k in ("p", "k", "pw", "kw")}
        for _ in range(a.runs):
            for k in ("p", "k", "pw", "kw"):
                res[k].append(start(k[0], k.endswith("w")))
        med = {k: (statistics.median(x[0] for x in v), statistics.median(x[1] for x in v)) for k, v in res.items()}
        (p_secs, p_rss), (k_secs, k_rss) = med["p"], med["k"]
        (pw_secs, pw_rss), (kw_secs, kw_rss) = med["pw"], med["kw"]
        if a.runs > 1:
            for k, v in res.items():
                print(k, "start to ready, s:", " ".join(f"{x[0]:.2f}" for x in v))
        n = a.series
        print()
        runs = f", medians of {a.runs} runs" if a.runs > 1 else ""
        print(f"| figure ({n} series x {a.samples} samples{runs}) | kiln | Prometheus | ratio |")
        print("|---|---|---|---|")
        print(f"| append, head + WAL, samples/s (one thread) | {gen['gen_samples_per_sec']:.0f} | - | - |")
        print(f"| start to ready, WAL only (no chunks_head), s | {kw_secs:.2f} | {pw_secs:.2f} | "
              f"{kw_secs / pw_secs:.3f} |")
        print(f"| start to ready, WAL + chunks_head, s | {k_secs:.2f} | {p_secs:.2f} | {k_secs / p_secs:.3f} |")
        print(f"| WAL replay in process, s | {rep['replay_seconds']:.2f} | - | - |")
        print(f"| resident memory after start, WAL + chunks_head, bytes/series | {k_rss / n:.0f} | "
              f"{p_rss / n:.0f} | {k_rss / p_rss:.3f} |")
        print(f"| resident memory after start, WAL only, bytes/series | {kw_rss / n:.0f} | "
              f"{pw_rss / n:.0f} | {kw_rss / pw_rss:.3f} |")
    finally:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
