#!/usr/bin/env python3
"""Dashboard query speed, kiln vs Debian's Prometheus (2.42), same data.

    python3 tests/bench/query_vs_prometheus.py [--series 20000] [--reps 5] [--cold]

1. Writes the data of tests/bench/bench_query.c (node_cpu_seconds_total-like
   counters, labels cpu/mode/instance/job, 240 samples at 15 s from
   t0 = 1700000000 s) as an OpenMetrics file, bit for bit the same values.
2. `promtool tsdb create-blocks-from openmetrics` turns it into blocks;
   Prometheus starts on them (retention 100y so nothing is dropped) and each
   panel query runs through /api/v1/query_range over the hour at a 15 s step
   (one warm-up, then --reps timed runs, median; with --cold each query
   once, no warm-up).
3. kiln: when bin/kiln answers /api/v1/query_range, the same data goes to it
   by remote write and it is timed the same way over HTTP.  Otherwise the
   in-process figure of build/opt/tests/bench/bench_query is used (and the
   report says so).
4. The answers are compared: same series, same timestamps, values within
   1e-9 relative (from the first step whose 5m window lies within the data:
   see COMPARE_FROM_MS).

Prints a Markdown table: ms per query for both and the ratio, the CPU
time each server spent on the query (user + system of all its threads,
from /proc: on a loaded machine the wall time is mostly waiting for a core,
and kiln's query threads run at nice +10 where Prometheus runs at 0), and
the geometric means.
"""
import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "integration"))
from benchlib import ROOT, KILN, free_port, wait_ready  # noqa: E402
import rwproto  # noqa: E402

BENCH = os.path.join(ROOT, "build/opt/tests/bench/bench_query")
T0_MS = 1700000000000
STEP_MS = 15000
SAMPLES = 240  # --hours x 240
QSTEP_MS = 15000  # the query's step, --step
MODES = ["idle", "user", "system", "iowait", "irq", "softirq", "steal", "nice"]
CPUS = 25

# Same queries, same order, as PANELS in bench_query.c.
PANELS = [
    'sum by (mode) (rate(node_cpu_seconds_total[5m]))',
    'topk(5, rate(node_cpu_seconds_total[5m]))',
    'quantile(0.9, rate(node_cpu_seconds_total[5m]))',
    'sum by (instance) (irate(node_cpu_seconds_total{mode!="idle"}[5m]))',
    '1 - avg by (instance) (rate(node_cpu_seconds_total{mode="idle"}[5m]))',
    'sum by (instance) (rate(node_cpu_seconds_total{mode=~"user|system", instance=~"host-00[0-4].*"}[5m]))',
]


def gen_labels(j):
    per_inst = len(MODES) * CPUS
    return [("__name__", "node_cpu_seconds_total"), ("cpu", str((j % per_inst) // len(MODES))),
            ("instance", "host-%04d:9100" % (j // per_inst)), ("job", "node"), ("mode", MODES[j % len(MODES)])]


def gen_series(j):
    """The samples of series j as [(value, t_ms)], as gen_value in bench_query.c."""
    v, out = 0.0, []
    for k in range(SAMPLES):
        if j % 37 == 0 and k == SAMPLES // 2:
            v = 0.0
        else:
            v = v + (float((j * 7 + k * 13) % 100) / 100.0 + float(j % 997) / 10000.0)
        out.append((v, T0_MS + k * STEP_MS))
    return out


def write_openmetrics(path, nseries):
    with open(path, "w") as f:
        f.write("# TYPE node_cpu_seconds_total unknown\n")
        for j in range(nseries):
            ls = ",".join('%s="%s"' % (n, v) for n, v in gen_labels(j)[1:])
            prefix = "node_cpu_seconds_total{%s} " % ls
            f.write("".join("%s%r %d\n" % (prefix, v, t // 1000) for v, t in gen_series(j)))
        f.write("# EOF\n")


def remote_write(port, nseries):
    """Time-major: an hour of every series at a time (the head refuses samples
    more than an hour older than its newest), 500 series a request."""
    url = f"http://127.0.0.1:{port}/api/v1/write"
    series = [gen_series(j) for j in range(nseries)]
    labels = [gen_labels(j) for j in range(nseries)]
    for w in range(0, SAMPLES, 240):
        for j0 in range(0, nseries, 500):
            batch = [(labels[j], series[j][w:w + 240]) for j in range(j0, min(nseries, j0 + 500))]
            req = urllib.request.Request(url, data=rwproto.write_body(batch), method="POST", headers={
                "Content-Type": "application/x-protobuf", "Content-Encoding": "snappy",
                "X-Prometheus-Remote-Write-Version": "0.1.0"})
            with urllib.request.urlopen(req, timeout=60) as r:
                if r.status // 100 != 2:
                    raise RuntimeError(f"remote write: {r.status}")


def query_range(port, q):
    # steps half-way between samples, as bench_query.c (2.42's windows are closed)
    start = T0_MS + STEP_MS // 2
    # nocache=1: kiln's results cache would answer the timed repeats (Prometheus ignores it)
    params = urllib.parse.urlencode({"query": q, "start": start / 1000,
                                     "end": (start + (SAMPLES - 1) * STEP_MS) / 1000, "step": QSTEP_MS / 1000,
                                     "nocache": 1})
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/query_range?{params}", timeout=600) as r:
        body = json.loads(r.read())
    if body.get("status") != "success":
        raise RuntimeError(f"{q}: {body}")
    return body["data"]["result"]


def cpu_ms(pid):
    """The CPU time (user + system, every thread) process pid has used, ms."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) * 1000.0 / os.sysconf("SC_CLK_TCK")


def http_answers(port, pid):
    """{query index: {labels key: [(t_ms, value)]}}, {query index: median ms}
    and {query index: median CPU ms of the server}."""
    res, ms, cpu = {}, {}, {}
    for i, q in enumerate(PANELS):
        if not ARGS.cold:
            query_range(port, q)  # warm-up
        times, cpus = [], []
        for _ in range(ARGS.reps):
            c = cpu_ms(pid)
            t = time.perf_counter()
            r = query_range(port, q)
            times.append((time.perf_counter() - t) * 1e3)
            cpus.append(cpu_ms(pid) - c)
        times.sort()
        cpus.sort()
        ms[i] = times[len(times) // 2]
        cpu[i] = cpus[len(cpus) // 2]
        res[i] = {",".join(f"{k}={v}" for k, v in sorted(s["metric"].items())):
                  [(round(float(t) * 1000), float(v)) for t, v in s["values"]] for s in r}
    return res, ms, cpu


def read_dump(path):
    res, cur, key = {}, None, None
    with open(path) as f:
        for line in f:
            line = line.rstrip("\n")
            if line.startswith("Q "):
                cur = res.setdefault(int(line.split()[1]), {})
            elif line.startswith("S "):
                key = line[2:]
                cur[key] = []
            else:
                t, v = line.split()
                cur[key].append((int(t), float(v)))
    return res


# Points whose 5m window reaches before the first sample are not compared:
# there Prometheus 2.42 extrapolates a counter's start to zero before
# applying the 1.1 x average-interval threshold, Prometheus 3.x (and kiln)
# after it, so their rates legitimately differ in the first five minutes.
COMPARE_FROM_MS = T0_MS + 300000


def same(a, b):
    """None when the answers agree, else what differs."""
    for i in range(len(PANELS)):
        x, y = ({k: [p for p in pts if p[0] >= COMPARE_FROM_MS] for k, pts in r.get(i, {}).items()}
                for r in (a, b))
        x, y = ({k: pts for k, pts in r.items() if pts} for r in (x, y))
        if set(x) != set(y):
            return f"query {i}: series differ ({len(x)} vs {len(y)}): {sorted(set(x) ^ set(y))[:3]}"
        for k in x:
            if [t for t, _ in x[k]] != [t for t, _ in y[k]]:
                return f"query {i} {k}: timestamps differ"
            for (t, u), (_, w) in zip(x[k], y[k]):
                if not (u == w or (math.isnan(u) and math.isnan(w)) or
                        abs(u - w) <= 1e-9 * max(abs(u), abs(w))):
                    return f"query {i} {k} at {t}: {u!r} vs {w!r}"
    return None


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


def kiln_has_query_range():
    """Starts kiln briefly and asks /api/v1/query_range for `1`."""
    base = tempfile.mkdtemp(prefix="kiln-qprobe-")
    port = free_port()
    cfg = os.path.join(base, "kiln.yml")
    with open(cfg, "w") as f:
        f.write("global:\n  scrape_interval: 15s\n")
    p = None
    try:
        p = start([KILN, f"--config.file={cfg}", f"--storage.tsdb.path={base}/data",
                   f"--web.listen-address=127.0.0.1:{port}"], port, subprocess.DEVNULL)
        query_range(port, "1")
        return True
    except Exception:
        return False
    finally:
        if p:
            stop(p)
        shutil.rmtree(base, ignore_errors=True)


def wait_compacted(port, timeout=600):
    """Until the head spans no more than 3 h (the rest is in blocks) and no
    compaction or merge has run for 6 s (kiln checks every 5 s)."""
    deadline = time.time() + timeout
    last, since = None, time.time()
    while time.time() < deadline:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
            m = {line.split()[0]: float(line.split()[1]) for line in r.read().decode().splitlines()
                 if line.startswith("kiln_tsdb_")}
        n = m.get("kiln_tsdb_compactions_total")
        if n != last:
            last, since = n, time.time()
        span = m.get("kiln_tsdb_head_max_time", 0) - m.get("kiln_tsdb_head_min_time", 0)
        if span <= 3 * 3600 * 1000 and time.time() - since >= 6:
            print(f"# kiln: {m.get('kiln_tsdb_blocks_loaded', 0):.0f} blocks after {n:.0f} compactions",
                  file=sys.stderr)
            return
        time.sleep(0.5)
    raise RuntimeError("kiln did not compact its head in time")


def main():
    global ARGS
    ap = argparse.ArgumentParser()
    ap.add_argument("--series", type=int, default=20000)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--keep", action="store_true", help="keep the temp dir")
    ap.add_argument("--hours", type=int, default=1, help="hours of data (kiln compacts all but ~2 h into blocks)")
    ap.add_argument("--step", type=int, default=15, help="query step, seconds")
    ap.add_argument("--cold", action="store_true",
                    help="each query once, without a warm-up (as a dashboard's first load; implies --reps 1)")
    ARGS = ap.parse_args()
    if ARGS.cold:
        ARGS.reps = 1
    global SAMPLES, QSTEP_MS
    SAMPLES = 240 * ARGS.hours
    QSTEP_MS = ARGS.step * 1000
    base = tempfile.mkdtemp(prefix="kiln-qbench-")
    procs = []
    try:
        cfg = os.path.join(base, "prometheus.yml")
        with open(cfg, "w") as f:
            f.write("global:\n  scrape_interval: 15s\n")
        om = os.path.join(base, "data.om")
        t = time.time()
        write_openmetrics(om, ARGS.series)
        print(f"# OpenMetrics file written in {time.time() - t:.1f}s", file=sys.stderr)
        pdata = os.path.join(base, "p")
        subprocess.run(["promtool", "tsdb", "create-blocks-from", "openmetrics", om, pdata],
                       check=True, stdout=subprocess.DEVNULL)
        os.unlink(om)

        port = free_port()
        plog = open(os.path.join(base, "prometheus.log"), "w")
        p = start(["prometheus", f"--config.file={cfg}", f"--storage.tsdb.path={pdata}",
                   f"--web.listen-address=127.0.0.1:{port}", "--storage.tsdb.retention.time=100y"], port, plog)
        procs.append(p)
        p_res, p_ms, p_cpu = http_answers(port, p.pid)
        stop(procs.pop())

        how = ""
        if os.path.exists(KILN) and kiln_has_query_range():
            how = "kiln over HTTP (/api/v1/query_range), data by remote write"
            port = free_port()
            klog = open(os.path.join(base, "kiln.log"), "w")
            k = start([KILN, f"--config.file={cfg}", f"--storage.tsdb.path={base}/k",
                       f"--web.listen-address=127.0.0.1:{port}"], port, klog)
            procs.append(k)
            remote_write(port, ARGS.series)
            if ARGS.hours > 3:
                wait_compacted(port)
            k_res, k_ms, k_cpu = http_answers(port, k.pid)
            stop(procs.pop())
        else:
            how = ("kiln in process (build/opt/tests/bench/bench_query: no HTTP, no JSON), "
                   "because bin/kiln does not serve /api/v1/query_range yet")
            dump = os.path.join(base, "kiln.dump")
            out = subprocess.run([BENCH, str(ARGS.series), str(ARGS.reps), dump], check=True,
                                 capture_output=True, text=True).stdout
            k_ms = {}
            for line in out.splitlines():
                parts = line.split()
                if len(parts) > 3 and parts[1] == "ms":
                    q = line.split("series", 1)[1].strip()
                    k_ms[PANELS.index(q)] = float(parts[0])
            k_res = read_dump(dump)
            k_cpu = None

        diff = same(p_res, k_res)
        print(f"{ARGS.series} series x {SAMPLES} samples at 15s; range queries over {ARGS.hours}h at {ARGS.step}s step; "
              + ("each run once, cold" if ARGS.cold else f"median of {ARGS.reps}") + f"; {how}")
        cpu = k_cpu is not None
        print("| query | Prometheus 2.42 ms | kiln ms | kiln / Prometheus |" +
              (" Prometheus CPU ms | kiln CPU ms | kiln / Prometheus, CPU |" if cpu else ""))
        print("|---|---|---|---|" + ("---|---|---|" if cpu else ""))
        lp = lk = lpc = lkc = 0.0
        for i, q in enumerate(PANELS):
            print(f"| `{q}` | {p_ms[i]:.1f} | {k_ms[i]:.1f} | {k_ms[i] / p_ms[i]:.3f} |" +
                  (f" {p_cpu[i]:.0f} | {k_cpu[i]:.0f} | {k_cpu[i] / max(p_cpu[i], 1):.3f} |" if cpu else ""))
            lp += math.log(p_ms[i])
            lk += math.log(k_ms[i])
            if cpu:
                lpc += math.log(max(p_cpu[i], 1))
                lkc += math.log(max(k_cpu[i], 1))
        gp, gk = math.exp(lp / len(PANELS)), math.exp(lk / len(PANELS))
        gpc, gkc = math.exp(lpc / len(PANELS)), math.exp(lkc / len(PANELS))
        print(f"| geometric mean | {gp:.1f} | {gk:.1f} | {gk / gp:.3f} |" +
              (f" {gpc:.0f} | {gkc:.0f} | {gkc / gpc:.3f} |" if cpu else ""))
        print("answers: " + ("same (values within 1e-9 relative; steps from t0+5m on)" if diff is None else "DIFFER: " + diff))
        return 0 if diff is None else 1
    finally:
        for p in procs:
            stop(p)
        if ARGS.keep:
            print(f"# kept {base}", file=sys.stderr)
        else:
            shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
