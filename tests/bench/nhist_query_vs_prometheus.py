#!/usr/bin/env python3
"""Native histogram query speed, kiln vs Debian's Prometheus (2.42), same data.

    python3 tests/bench/nhist_query_vs_prometheus.py [--series 200] [--hours 1] [--reps 3]

1. Makes --series integer native histograms (a request-latency-like metric
   `http_request_duration_seconds`, labels instance/job/handler), schema 3,
   40 populated buckets each (one span whose offset depends on the series),
   one sample every 15 s for --hours from t0 = 1700000000 s, counters that
   only grow (a counter reset in one series of 37 half-way).
2. Sends the same samples to both servers by remote write 1.0
   (`histograms` of prometheus.WriteRequest, integer counts as deltas):
   Prometheus 2.42 runs with --enable-feature=native-histograms and
   --web.enable-remote-write-receiver, kiln as it is (bin/kiln).
3. Times each query through /api/v1/query_range over the data at a 15 s
   step (one warm-up, then --reps timed runs, median), each server alone on
   the machine.  While kiln's remote write drops histograms (it answers the
   probe with nothing), kiln's side is build/opt/tests/bench/bench_query
   --native instead: the same samples through the appender, the same
   queries in process (no HTTP, no JSON), as query_vs_prometheus.py does
   without an HTTP query API.  Then it compares the answers (histogram_count within 1e-9 relative, from
   the first step whose 5m window lies within the data).

Prints a Markdown table: ms per query for both, the ratio, the load average.
"""
import argparse
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "integration"))
from benchlib import KILN, free_port, rw_post  # noqa: E402
import query_vs_prometheus as qvp  # noqa: E402  (start, stop, the timed query loop)
BENCH = qvp.BENCH
import rwproto  # noqa: E402

T0_MS = 1700000000000
STEP_MS = 15000
NAME = "http_request_duration_seconds"
SCHEMA = 3
NBUCKETS = 40

QUERIES = [
    f'histogram_quantile(0.99, sum by (le) (rate({NAME}[5m])))',
    f'histogram_quantile(0.99, sum by (job) (rate({NAME}[5m])))',
    f'histogram_quantile(0.9, rate({NAME}{{instance=~"host-00[0-4].*"}}[5m]))',
    f'histogram_count(sum(rate({NAME}[5m])))',
]
# Prometheus 2.42 interpolates a quantile linearly inside its bucket,
# Prometheus 3 (and kiln) exponentially: those answers are compared for
# their series and steps only, histogram_count's for the values too.
EXACT = {3}


def gen_labels(j):
    return [("__name__", NAME), ("handler", "/api/%d" % (j % 10)), ("instance", "host-%04d:8080" % (j // 10)),
            ("job", "api-%d" % (j % 4))]


def gen_series(j, samples):
    """Series j as [(t_ms, offset, [40 absolute bucket counts])]: bucket b
    grows by (j*7 + k*13 + b*5) % 11 each step; series j % 37 == 0 starts
    over half-way (a counter reset)."""
    off = -20 + (j % 9)
    counts = [0] * NBUCKETS
    out = []
    for k in range(samples):
        if j % 37 == 0 and k == samples // 2:
            counts = [0] * NBUCKETS
        else:
            counts = [c + (j * 7 + k * 13 + b * 5) % 11 for b, c in enumerate(counts)]
        out.append((T0_MS + k * STEP_MS, off, list(counts)))
    return out


def zigzag(n):
    return (n << 1) ^ (n >> 63)


def pb_histogram(t, off, counts):
    """prometheus.Histogram with integer counts (deltas), one positive span."""
    def bound(i):
        return 2 ** ((i) / 2 ** SCHEMA)
    total = sum(counts)
    # a sum consistent with the buckets: each observation at its bucket's upper bound
    s = sum(c * bound(off + i) for i, c in enumerate(counts))
    span = rwproto.varint(1 << 3) + rwproto.varint(zigzag(off) & 0xFFFFFFFF) + rwproto.varint(2 << 3) + \
        rwproto.varint(len(counts))
    deltas, prev = b"", 0
    for c in counts:
        deltas += rwproto.varint(zigzag(c - prev))
        prev = c
    body = rwproto.varint(1 << 3) + rwproto.varint(total)           # count_int
    body += b"\x19" + struct.pack("<d", s)                          # sum (3, fixed64)
    body += rwproto.varint(4 << 3) + rwproto.varint(zigzag(SCHEMA))  # schema (sint32)
    body += b"\x29" + struct.pack("<d", 2.0 ** -128)                # zero_threshold (5)
    body += rwproto.varint(6 << 3) + rwproto.varint(0)              # zero_count_int
    body += rwproto.field(11, span)                                 # positive_spans
    body += rwproto.field(12, deltas)                               # positive_deltas (packed)
    body += rwproto.varint(15 << 3) + rwproto.varint(t)             # timestamp
    return body


def remote_write(port, nseries, samples):
    """Time-major batches: an hour of 100 series a request."""
    url = f"http://127.0.0.1:{port}/api/v1/write"
    per = 240
    series = [gen_series(j, samples) for j in range(nseries)]
    for w in range(0, samples, per):
        for j0 in range(0, nseries, 100):
            ts = []
            for j in range(j0, min(nseries, j0 + 100)):
                lab = b"".join(rwproto.field(1, rwproto.pb_label(n, v)) for n, v in gen_labels(j))
                hs = b"".join(rwproto.field(4, pb_histogram(*p)) for p in series[j][w:w + per])
                ts.append(lab + hs)
            rw_post(url, rwproto.snappy(rwproto.pb_request(ts)))


def answers(port, samples, reps):
    """query_vs_prometheus' timed loop over QUERIES: ({query: {labels: points}}, {query: median ms})."""
    qvp.SAMPLES, qvp.PANELS, qvp.QSTEP_MS = samples, QUERIES, STEP_MS
    qvp.ARGS = argparse.Namespace(reps=reps)
    return qvp.http_answers(port)


def same(a, b, samples):
    """None when the answers agree (query_vs_prometheus' check, from t0+5m,
    values compared for the EXACT queries only), else what differs.  The
    5 minutes after the counter resets are left out too: a window starting
    at a reset extrapolates to the counts' zero point in Prometheus 3 (and
    kiln), not in 2.42."""
    reset = T0_MS + (samples // 2) * STEP_MS
    for i in range(len(QUERIES)):
        if not any(a.get(i, {}).values()):
            return f"query {i}: no answer"
        for r in (a, b):
            r[i] = {k: [(t, v if i in EXACT else 0.0) for t, v in pts if not reset <= t <= reset + 300000]
                    for k, pts in r.get(i, {}).items()}
    return qvp.same(a, b)


def kiln_takes_histograms(kiln, cfg, base):
    """Starts kiln briefly, remote-writes one histogram series and asks for it back."""
    port = free_port()
    p = qvp.start([kiln, f"--config.file={cfg}", f"--storage.tsdb.path={base}/probe",
                   f"--web.listen-address=127.0.0.1:{port}"], port, subprocess.DEVNULL)
    try:
        remote_write(port, 1, 1)
        return bool(qvp.query_range(port, f"histogram_count({NAME})"))
    except Exception:
        return False
    finally:
        qvp.stop(p)
        shutil.rmtree(f"{base}/probe", ignore_errors=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--series", type=int, default=200)
    ap.add_argument("--hours", type=int, default=1)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--kiln", default=KILN)
    args = ap.parse_args()
    samples = 240 * args.hours
    base = tempfile.mkdtemp(prefix="kiln-nhbench-")
    procs = []
    try:
        cfg = os.path.join(base, "prometheus.yml")
        with open(cfg, "w") as f:
            f.write("global:\n  scrape_interval: 15s\n")
        res, ms, load = {}, {}, {}

        def over_http(name, binary, flags):
            port = free_port()
            procs.append(qvp.start([binary, f"--config.file={cfg}", f"--storage.tsdb.path={base}/{name}",
                                    f"--web.listen-address=127.0.0.1:{port}", "--query.timeout=10m"] + flags,
                                   port, open(os.path.join(base, name + ".log"), "w")))
            t = time.time()
            remote_write(port, args.series, samples)
            print(f"# {name} loaded in {time.time() - t:.1f}s", file=sys.stderr)
            load[name] = os.getloadavg()[0]
            res[name], ms[name] = answers(port, samples, args.reps)
            qvp.stop(procs.pop())

        over_http("Prometheus", "prometheus", ["--enable-feature=native-histograms",
                                               "--web.enable-remote-write-receiver",
                                               "--storage.tsdb.retention.time=100y"])
        if kiln_takes_histograms(args.kiln, cfg, base):
            how = "kiln over HTTP, data by remote write"
            over_http("kiln", args.kiln, [])
        elif args.hours != 1:
            raise SystemExit("kiln's remote write does not take histograms yet; the in-process bench has 1h only")
        else:
            how = ("kiln in process (build/opt/tests/bench/bench_query --native: the same samples through the "
                   "appender, no HTTP, no JSON), because bin/kiln's remote write does not take histograms yet")
            dump = os.path.join(base, "kiln.dump")
            load["kiln"] = os.getloadavg()[0]
            out = subprocess.run([BENCH, "--native", str(args.series), str(args.reps), dump], check=True,
                                 capture_output=True, text=True).stdout
            ms["kiln"] = {QUERIES.index(line.split("series", 1)[1].strip()): float(line.split()[0])
                          for line in out.splitlines() if " ms " in line and "series" in line}
            res["kiln"] = qvp.read_dump(dump)
        p_res, p_ms, k_res, k_ms = res["Prometheus"], ms["Prometheus"], res["kiln"], ms["kiln"]
        load_p, load_k = load["Prometheus"], load["kiln"]

        diff = same(p_res, k_res, samples)
        print(f"{args.series} native histograms (schema {SCHEMA}, {NBUCKETS} buckets) x {samples} samples at 15s; "
              f"Prometheus over HTTP, data by remote write; {how}; range queries over {args.hours}h at a 15s step; "
              f"median of {args.reps}; "
              f"load average {load_p:.1f} (Prometheus) / {load_k:.1f} (kiln)")
        print("| query | Prometheus 2.42 ms | kiln ms | kiln / Prometheus |")
        print("|---|---|---|---|")
        for i, q in enumerate(QUERIES):
            print(f"| `{q}` | {p_ms[i]:.1f} | {k_ms[i]:.1f} | {k_ms[i] / p_ms[i]:.3f} |")
        print("answers: " + ("same series and steps (from t0+5m on), histogram_count within 1e-9 relative (but the 5m after the resets)"
                             if diff is None
                             else "DIFFER: " + diff))
        return 0 if diff is None else 1
    finally:
        for p in procs:
            qvp.stop(p)
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
