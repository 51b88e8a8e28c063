#!/usr/bin/env python3
"""A dashboard refreshing while data arrives, kiln vs Debian's Prometheus (2.42).

    python3 tests/bench/dashboard_refresh_vs_prometheus.py [--series 20000] [--hours 6]
        [--minutes 10] [--interval 30] [--step 30]

1. Both servers start empty; --hours (plus 10 minutes) of node_cpu_seconds_total
   -like counters (labels cpu/mode/instance/job, a sample every 15 s ending
   now) go to both by remote write, time-major, the same bodies.
2. --minutes * 60 / --interval times, every --interval seconds (or at once
   when the last refresh took longer): every series gets its samples up
   to now by remote write (both servers), then the dashboard refreshes: its
   12 range panels over the last --hours at --step, the window aligned to
   the step as Grafana aligns it, asked of kiln and of Prometheus one query
   at a time.  The CPU time each server spends answering a query is read
   from /proc (the sum of its threads' run time in schedstat, nanoseconds)
   around each request, so ingestion is not counted.
3. At the end, with nothing arriving: every panel asked of kiln through its
   cache, of kiln with nocache=1 and of Prometheus; kiln's two answers must
   be byte-equal, and kiln's must equal Prometheus' (same series and
   timestamps, values within 1e-9 relative).

Samples lie half-way between the steps (t = 7.5 s mod 15 s) so that no
sample sits on a window's edge, where 2.42's closed windows and kiln's
left-open ones (Prometheus 3.x) differ.

Prints the total query CPU of each server over the refreshes, the ratio,
per-refresh figures, the cache's counters and the load average.
"""
import argparse
import json
import math
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "integration"))
from benchlib import KILN, free_port, rw_post, wait_ready  # noqa: E402
import rwproto  # noqa: E402

MODES = ["idle", "user", "system", "iowait", "irq", "softirq", "steal", "nice"]
CPUS = 25
SAMPLE_MS = 15000
PHASE_MS = 7500

PANELS = [
    'sum by (mode) (rate(node_cpu_seconds_total[5m]))',
    'topk(5, sum by (instance) (rate(node_cpu_seconds_total[5m])))',
    'quantile(0.9, sum by (instance) (rate(node_cpu_seconds_total[5m])))',
    'sum by (instance) (irate(node_cpu_seconds_total{mode!="idle"}[5m]))',
    '1 - avg by (instance) (rate(node_cpu_seconds_total{mode="idle"}[5m]))',
    'sum by (instance) (rate(node_cpu_seconds_total{mode=~"user|system", instance=~"host-00[0-4].*"}[5m]))',
    'count by (mode) (node_cpu_seconds_total)',
    'avg by (cpu) (rate(node_cpu_seconds_total{mode="user"}[5m]))',
    'max by (instance) (increase(node_cpu_seconds_total[10m]))',
    'sum(rate(node_cpu_seconds_total[1m]))',
    'stddev by (mode) (rate(node_cpu_seconds_total[5m]))',
    'sum by (job) (rate(node_cpu_seconds_total{mode="system"}[5m])) / sum by (job) (rate(node_cpu_seconds_total[5m]))',
]


def labels_pb(j):
    per_inst = len(MODES) * CPUS
    ls = [("__name__", "node_cpu_seconds_total"), ("cpu", str((j % per_inst) // len(MODES))),
          ("instance", "host-%04d:9100" % (j // per_inst)), ("job", "node"), ("mode", MODES[j % len(MODES)])]
    return b"".join(rwproto.field(1, rwproto.pb_label(n, v)) for n, v in ls)


def value(j, t):
    """A counter: grows by 1-1.6 a sample, with a small wobble that never makes it go down."""
    k = t // SAMPLE_MS
    return k * (1.0 + (j % 7) / 10.0) + ((j + k) % 5) * 0.01


def body_for(labels, j0, j1, t_from, t_to):
    """A remote-write body: series j0..j1 with their samples in [t_from, t_to]
    (a Sample is 0x09 <double> 0x10 <varint t>, its field 2 header before it)."""
    ts = list(range(t_from, t_to + 1, SAMPLE_MS))
    suffix = [b"\x10" + rwproto.varint(t) for t in ts]
    pack = struct.Struct("<d").pack
    parts = []
    for j in range(j0, j1):
        s = labels[j] + b"".join([b"\x12" + bytes([9 + len(sf)]) + b"\x09" + pack(value(j, t)) + sf
                                  for t, sf in zip(ts, suffix)])
        parts.append(rwproto.field(1, s))
    return rwproto.snappy(b"".join(parts))


def first_sample_at_or_after(t):
    return t + (PHASE_MS - t) % SAMPLE_MS


def send(ports, labels, t_from, t_to, per_request):
    """Every series' samples in [t_from, t_to] to every port, time-major (at most
    half an hour a request: the head takes samples an hour below its newest)."""
    n = len(labels)
    w = 30 * 60000
    for a in range(t_from, t_to + 1, w):
        b = min(t_to, a + w - 1)
        for j0 in range(0, n, per_request):
            body = body_for(labels, j0, min(n, j0 + per_request), a, b)
            for p in ports:
                rw_post(f"http://127.0.0.1:{p}/api/v1/write", body)


def cpu_ns(pid):
    """The run time of every thread of pid so far (schedstat, ns)."""
    total = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                total += int(f.read().split()[0])
        except OSError:
            pass  # a thread that ended meanwhile
    return total


def settle(pids, timeout=600):
    """Until every pid used under a tenth of a core over 3 s (compactions after
    the history's load are done), at most timeout seconds."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        before = [cpu_ns(p) for p in pids]
        time.sleep(3)
        if all(cpu_ns(p) - b < 0.3e9 for p, b in zip(pids, before)):
            return
    print("# servers still busy after the history's load", file=sys.stderr)


def query(port, q, start, end, step, extra=""):
    params = urllib.parse.urlencode({"query": q, "start": start / 1000, "end": end / 1000, "step": step})
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/query_range?{params}{extra}",
                                    timeout=900) as r:
            return r.read()
    except urllib.error.HTTPError as e:
        raise RuntimeError(f"port {port}: {q}: {e.code} {e.read()[:300]!r}")


def timed_query(server, q, start, end, step):
    """(answer bytes, CPU ns the server spent)."""
    before = cpu_ns(server["pid"])
    body = query(server["port"], q, start, end, step)
    return body, max(0, cpu_ns(server["pid"]) - before)


def parsed(body):
    d = json.loads(body)
    if d.get("status") != "success":
        raise RuntimeError(d)
    return {json.dumps(s["metric"], sort_keys=True): [(round(float(t) * 1000), float(v)) for t, v in s["values"]]
            for s in d["data"]["result"]}


def same(a, b):
    """None when two answers agree (labels, timestamps, values within 1e-9), else what differs."""
    x, y = parsed(a), parsed(b)
    if set(x) != set(y):
        return f"series differ ({len(x)} vs {len(y)})"
    for k in x:
        if [t for t, _ in x[k]] != [t for t, _ in y[k]]:
            return f"{k}: timestamps differ"
        for (t, u), (_, w) in zip(x[k], y[k]):
            if not (u == w or (math.isnan(u) and math.isnan(w)) or abs(u - w) <= 1e-9 * max(abs(u), abs(w))):
                return f"{k} at {t}: {u!r} vs {w!r}"
    return None


def metric(port, name):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=30) as r:
        for line in r.read().decode().splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
    return 0.0


def start(cmd, port, log):
    p = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
    wait_ready(port, p)
    return p


def stop(p):
    p.terminate()
    try:
        p.wait(timeout=60)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--series", type=int, default=20000)
    ap.add_argument("--hours", type=float, default=6)
    ap.add_argument("--minutes", type=float, default=10, help="how long the dashboard refreshes")
    ap.add_argument("--interval", type=int, default=30, help="seconds between refreshes")
    ap.add_argument("--step", type=int, default=30, help="the panels' step, seconds")
    ap.add_argument("--keep", action="store_true", help="keep the temp dir")
    args = ap.parse_args()
    base = tempfile.mkdtemp(prefix="kiln-dashbench-")
    procs = []
    try:
        cfg = os.path.join(base, "prometheus.yml")
        with open(cfg, "w") as f:
            f.write("global:\n  scrape_interval: 15s\n")
        pport, kport = free_port(), free_port()
        procs.append(start(["prometheus", f"--config.file={cfg}", f"--storage.tsdb.path={base}/p",
                            f"--web.listen-address=127.0.0.1:{pport}", "--web.enable-remote-write-receiver",
                            "--storage.tsdb.retention.time=100y", "--query.timeout=10m"], pport,
                           open(os.path.join(base, "prometheus.log"), "w")))
        procs.append(start([KILN, f"--config.file={cfg}", f"--storage.tsdb.path={base}/k",
                            f"--web.listen-address=127.0.0.1:{kport}", "--query.timeout=10m"], kport,
                           open(os.path.join(base, "kiln.log"), "w")))
        servers = [{"name": "prometheus", "port": pport, "pid": procs[0].pid},
                   {"name": "kiln", "port": kport, "pid": procs[1].pid}]
        labels = [labels_pb(j) for j in range(args.series)]
        per_request = 500  # series a request: 120 samples each, about 1 MB
        now = int(time.time() * 1000)
        first = first_sample_at_or_after(now - int((args.hours * 60 + 10) * 60000))
        last = first + (now - first) // SAMPLE_MS * SAMPLE_MS
        t = time.time()
        send([pport, kport], labels, first, last, per_request)
        print(f"# history: {args.series} series from {first} to {last} written to both in {time.time() - t:.0f}s",
              file=sys.stderr)
        settle([procs[0].pid, procs[1].pid])
        load0 = os.getloadavg()
        step_ms = args.step * 1000
        span_ms = int(args.hours * 3600 * 1000)
        cpu = {"prometheus": 0, "kiln": 0}
        rows = []
        # a refresh every --interval s, or as soon as the last one is done when
        # it took longer (the loaded machine): the count is what --minutes gives
        nrefresh = max(1, int(args.minutes * 60 / args.interval))
        refreshes = 0
        while refreshes < nrefresh:
            tick = time.time()
            now = int(tick * 1000)
            upto = first_sample_at_or_after(now - SAMPLE_MS + 1)
            if upto > last:
                send([pport, kport], labels, last + SAMPLE_MS, upto, per_request)
                last = upto
            end = now // step_ms * step_ms
            this = {"prometheus": 0, "kiln": 0}
            for q in PANELS:
                for s in servers:
                    _, ns = timed_query(s, q, end - span_ms, end, args.step)
                    this[s["name"]] += ns
            for k in cpu:
                cpu[k] += this[k]
            refreshes += 1
            rows.append((refreshes, this["prometheus"] / 1e6, this["kiln"] / 1e6))
            print(f"# refresh {refreshes}: prometheus {this['prometheus'] / 1e6:.0f} ms CPU, "
                  f"kiln {this['kiln'] / 1e6:.0f} ms CPU", file=sys.stderr)
            if refreshes < nrefresh:
                time.sleep(max(0.0, args.interval - (time.time() - tick)))
        load1 = os.getloadavg()
        # the answers, with nothing arriving
        end = int(time.time() * 1000) // step_ms * step_ms
        diffs = []
        for q in PANELS:
            cached = query(kport, q, end - span_ms, end, args.step)
            fresh = query(kport, q, end - span_ms, end, args.step, "&nocache=1")
            prom = query(pport, q, end - span_ms, end, args.step)
            if cached != fresh:
                diffs.append(f"{q}: kiln's cached answer differs from nocache=1")
            d = same(prom, cached)
            if d:
                diffs.append(f"{q}: kiln vs Prometheus: {d}")
        counters = {n: metric(kport, f"kiln_query_cache_{n}") for n in
                    ("hits_total", "misses_total", "steps_reused_total", "steps_evaluated_total",
                     "invalidations_total", "bytes")}
        print(f"{args.series} series, a sample every 15 s; {len(PANELS)} range panels over {args.hours:g} h at "
              f"{args.step} s step, refreshed every {args.interval} s for {args.minutes:g} min "
              f"({refreshes} refreshes) while remote write brings each 15 s of samples")
        print("| | Prometheus 2.42 | kiln | kiln / Prometheus |")
        print("|---|---|---|---|")
        print(f"| query CPU, all refreshes (s) | {cpu['prometheus'] / 1e9:.2f} | {cpu['kiln'] / 1e9:.2f} | "
              f"{cpu['kiln'] / max(1, cpu['prometheus']):.4f} |")
        r1 = rows[0]
        print(f"| first refresh (cold), CPU ms | {r1[1]:.0f} | {r1[2]:.0f} | {r1[2] / max(1e-9, r1[1]):.3f} |")
        if len(rows) > 1:
            p_rest = sum(r[1] for r in rows[1:]) / (len(rows) - 1)
            k_rest = sum(r[2] for r in rows[1:]) / (len(rows) - 1)
            print(f"| later refreshes, mean CPU ms | {p_rest:.0f} | {k_rest:.0f} | {k_rest / max(1e-9, p_rest):.4f} |")
        print(f"kiln's cache: " + ", ".join(f"{k} {v:.0f}" for k, v in counters.items()))
        print(f"load average: {load0[0]:.2f} {load0[1]:.2f} {load0[2]:.2f} at the first refresh, "
              f"{load1[0]:.2f} {load1[1]:.2f} {load1[2]:.2f} at the last")
        print("answers: " + ("same (kiln cached = kiln nocache=1 byte for byte; kiln = Prometheus within 1e-9)"
                             if not diffs else "DIFFER: " + "; ".join(diffs)))
        return 0 if not diffs else 1
    finally:
        for p in procs:
            stop(p)
        if args.keep:
            print(f"# kept {base}", file=sys.stderr)
        else:
            shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
