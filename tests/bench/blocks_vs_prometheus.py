#!/usr/bin/env python3
"""Block size and compaction cost, kiln vs Prometheus 2.42's tools, same data.

    python3 tests/bench/blocks_vs_prometheus.py [--series 10000] [--hours 8] [--step 30]

1. The same samples (counters growing by a varying amount, `--series` series
   x `--hours` at `--step` seconds, block-aligned start in the past) are
   written as OpenMetrics and turned into blocks by `promtool tsdb
   create-blocks-from openmetrics` (2 h blocks, Prometheus' own writer), and
   sent to kiln by remote write, which compacts its head into 2 h blocks.
2. For the 2 h ranges both have as blocks: bytes on disk (index + chunks)
   per sample, from the files and meta.json.
3. kiln's compaction time (kiln_tsdb_compaction_duration_seconds_total, one
   thread) per million samples compacted, and the latency of small probe
   remote writes (every 10 ms, from a second thread) that overlap a
   compaction (intervals from kiln's log) vs those that do not.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from datetime import datetime

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "integration"))
from benchlib import KILN, free_port, wait_ready  # noqa: E402
from rwproto import write_body  # noqa: E402

H = 3600 * 1000


def value(i, k):
    # a counter with a varying increase, like real ones
    return float(k * (i % 13 + 1) + (k * 7 + i) % 5)


def blocks(d):
    out = {}
    for x in os.listdir(d):
        meta = os.path.join(d, x, "meta.json")
        if len(x) == 26 and os.path.exists(meta):
            with open(meta) as f:
                m = json.load(f)
            size = os.path.getsize(os.path.join(d, x, "index"))
            cd = os.path.join(d, x, "chunks")
            size += sum(os.path.getsize(os.path.join(cd, c)) for c in os.listdir(cd))
            out[m["minTime"]] = (m["stats"]["numSamples"], size, m["stats"]["numSeries"])
    return out


def metric(port, name):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
        for line in r.read().decode().splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
    return 0.0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--series", type=int, default=10000)
    ap.add_argument("--hours", type=int, default=8)
    ap.add_argument("--step", type=int, default=30)
    ap.add_argument("--probe", action="store_true",
                    help="also send small probe writes every 10 ms and report their latency around compactions")
    a = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="kiln-blocks-bench-")
    t0 = 1700000000000 // (2 * H) * (2 * H)
    n = a.hours * 3600 // a.step
    try:
        om = os.path.join(tmp, "data.om")
        with open(om, "w") as f:
            f.write("# TYPE bench counter\n")
            for i in range(a.series):
                lab = f'bench_total{{i="{i}",job="bench",instance="host-{i // 100}:9100"}}'
                f.write("".join(f"{lab} {value(i, k)} {(t0 + k * a.step * 1000) // 1000}\n" for k in range(n)))
            f.write("# EOF\n")
        pdir = os.path.join(tmp, "prom")
        os.makedirs(pdir)
        t = time.time()
        subprocess.run(["promtool", "tsdb", "create-blocks-from", "openmetrics", om, pdir], check=True,
                       stdout=subprocess.DEVNULL)
        print(f"# promtool wrote its blocks in {time.time() - t:.1f} s")

        port = free_port()
        kdir = os.path.join(tmp, "kiln")
        cfg = os.path.join(tmp, "kiln.yml")
        with open(cfg, "w") as f:
            f.write("global:\n  scrape_interval: 1h\n")
        log = open(os.path.join(tmp, "kiln.log"), "w")
        p = subprocess.Popen([KILN, f"--config.file={cfg}", f"--storage.tsdb.path={kdir}",
                              f"--web.listen-address=127.0.0.1:{port}", "--storage.tsdb.retention.time=100y",
                              # 2 h blocks only, so each one has a Prometheus block of the same range
                              "--storage.tsdb.max-block-duration=2h"],
                             stdout=log, stderr=subprocess.STDOUT)
        probes = []  # (start, end) wall times of the latency probe's requests
        stop = threading.Event()

        front = [t0]  # the newest time the main writer has sent

        def probe():
            """Small remote writes every 10 ms at the main writer's time front."""
            k, last = 0, t0
            while not stop.is_set():
                last = max(last + 1, front[0])
                body = write_body([([("__name__", "probe"), ("i", str(i))], [(float(k), last)]) for i in range(100)])
                req = urllib.request.Request(f"http://127.0.0.1:{port}/api/v1/write", data=body, headers={
                    "Content-Encoding": "snappy", "Content-Type": "application/x-protobuf",
                    "X-Prometheus-Remote-Write-Version": "0.1.0"})
                ts = time.time()
                with urllib.request.urlopen(req, timeout=60) as r:
                    assert r.status == 204
                probes.append((ts, time.time()))
                k += 1
                time.sleep(0.01)
        try:
            wait_ready(port, p)
            th = threading.Thread(target=probe, daemon=True)
            if a.probe:
                th.start()
            per = 60  # samples per series and request
            chunk = 500  # series per request
            for k0 in range(0, n, per):
                for s0 in range(0, a.series, chunk):
                    body = write_body([([("__name__", "bench_total"), ("i", str(i)), ("instance", f"host-{i // 100}:9100"),
                                         ("job", "bench")],
                                        [(value(i, k), t0 + k * a.step * 1000) for k in range(k0, min(n, k0 + per))])
                                       for i in range(s0, min(a.series, s0 + chunk))])
                    req = urllib.request.Request(f"http://127.0.0.1:{port}/api/v1/write", data=body, headers={
                        "Content-Encoding": "snappy", "Content-Type": "application/x-protobuf",
                        "X-Prometheus-Remote-Write-Version": "0.1.0"})
                    with urllib.request.urlopen(req, timeout=120) as r:
                        assert r.status == 204
                front[0] = t0 + (min(n, k0 + per) - 1) * a.step * 1000
            deadline = time.time() + 120
            while time.time() < deadline and metric(port, "kiln_tsdb_compactions_total") < a.hours // 2 - 1:
                time.sleep(0.5)
            comp_s = metric(port, "kiln_tsdb_compaction_duration_seconds_total")
            stop.set()
            if a.probe:
                th.join()
        finally:
            p.terminate()
            p.wait(60)
            log.close()
        pb, kb = blocks(pdir), blocks(kdir)
        common = sorted(set(pb) & set(kb))
        print(f"{a.series} series x {a.hours} h at {a.step} s; 2 h ranges both have as blocks: {len(common)}")
        print("| range start | samples | Prometheus bytes | kiln bytes | Prometheus B/sample | kiln B/sample |")
        print("|---|---|---|---|---|---|")
        ps = ks = pn = kn = 0
        for m in common:
            (pns, psz, _), (kns, ksz, _) = pb[m], kb[m]
            print(f"| {m} | {kns} | {psz} | {ksz} | {psz / pns:.3f} | {ksz / kns:.3f} |")
            ps, ks, pn, kn = ps + psz, ks + ksz, pn + pns, kn + kns
        if common:
            print(f"| all | {kn} | {ps} | {ks} | {ps / pn:.3f} | {ks / kn:.3f} |  (ratio {ks / kn / (ps / pn):.3f})")
        compacted = sum(kb[m][0] for m in kb)
        if compacted:
            print(f"kiln compaction: {comp_s:.2f} s for {compacted} samples = "
                  f"{comp_s / compacted * 1e6:.3f} s per million samples")

        # compaction intervals from kiln's log: "ts=... msg=\"Compacted ...\" ... duration=0.123s"
        busy = []
        with open(os.path.join(tmp, "kiln.log")) as f:
            for line in f:
                if "Compacted the head" in line or "Merged blocks" in line:
                    ts = datetime.strptime(line.split()[0][3:], "%Y-%m-%dT%H:%M:%S.%fZ")
                    end = (ts - datetime(1970, 1, 1)).total_seconds()
                    dur = float(line.rsplit("duration=", 1)[1].rstrip("s\n"))
                    busy.append((end - dur, end))
        during = [e - st for st, e in probes if any(st < be and e > bs for bs, be in busy)]
        outside = [e - st for st, e in probes if not any(st < be and e > bs for bs, be in busy)]

        def p99(v):
            v = sorted(v)
            return v[min(len(v) - 1, int(len(v) * 0.99))] * 1000 if v else float("nan")
        if a.probe:
            print(f"probe remote writes (100 samples, every 10 ms): p99 {p99(outside):.1f} ms outside compactions "
                f"({len(outside)} requests), {p99(during):.1f} ms overlapping one ({len(during)} requests)")
    finally:
        if os.environ.get("KEEP"):
            print("kept", tmp)
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
