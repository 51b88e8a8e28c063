#!/usr/bin/env python3
"""Recording-rule evaluation, kiln vs Debian's Prometheus (2.42), same rules, same data.

    python3 tests/bench/rules_vs_prometheus.py [--jobs 100] [--rounds 6] [--warmup 2]
                                               [--only kiln|prometheus] [--perf FILE]
                                               [--no-precreate]

The data: --jobs services (default 100) of 1,000 series each, shaped like an
HTTP service's metrics (10 instances x 5 handlers): http_requests_total{code}
(200), http_request_duration_seconds_bucket (600: 12 buckets), _sum and _count
(100), http_requests_in_flight (50), and per instance http_max_in_flight,
process_cpu_seconds_total, process_resident_memory_bytes, process_open_fds,
process_max_fds (50).  100 jobs: 100,000 series.  Every value is a function
of the series and of the sample's index since the run's start (one sample
every 15 s), so both servers see the same data.

The rules: one group per job (100 groups), 100 recording rules a group
(10,000): for each of the 5 handlers, 18 rules (request rates by code and by
instance, error ratios over 1m and 5m, p50/p90/p95/p99 by histogram_quantile
over rate of the buckets, mean latency, apdex, in-flight, increase, irate),
and 10 for the job as a whole (rates, error ratio, p99 over 600 buckets,
in-flight over capacity, CPU, memory, fds).  Each rule sets its job (and
handler) label, as promtool's lint wants rules of the same name told apart.
evaluation_interval 15s.

One server at a time (kiln first, then Prometheus, each on a fresh data
directory), so the two never compete for the 2 cores:

1. start it without rules; send 26 samples of every series by remote write
   (the last 6.5 minutes: every [5m] window is full), then one sample of
   every series every 15 s, on the 15 s grid, until it stops; and
   PRECREATE_SAMPLES samples (value 0, on the grid before the live rounds)
   of each of the 18,100 series the rules will write (unless
   --no-precreate), so that those series' head memory, which is data, is in
   the baseline of both servers and the difference in step 4 is the rules'
   own (their state and their queries' working memory).  Six samples, not
   one: kiln sizes a series' first chunk for 120 samples when its sixth
   arrives (storage/head.c, FIRST_SIZING); with one sample beforehand that
   sizing (about 1.1 KB a series, 20 MB for the 18,100: ten huge pages of
   the head's slab) fell after the baseline and was counted as the rules'.
   With six samples of 0 the chunk is sized for samples that do not vary
   and grows with the rules' samples as they come, as Prometheus' chunks
   (Go slices) grow in both servers alike;
2. after two live rounds and 20 s more, note its resident memory
   (median of 4 readings, 5 s apart) and
   its CPU time over those 20 s: the cost of the data alone;
3. write rule_files into its configuration and reload it (SIGHUP);
4. let --warmup evaluation rounds pass, then over --rounds rounds read
   <prefix>_rule_group_last_duration_seconds of the 100 groups at each
   round and sum them; report the median of the sums, the resident memory
   (median of the readings), and the CPU time a round takes beyond the data's;
5. check that every group evaluated, no rule failed, and count the series
   the rules wrote (count({__name__=~"job.*:.+"})): both must agree.

On a shared machine, run it in a session of its own whose scheduling group
gets a higher priority (`setsid python3 tests/bench/rules_vs_prometheus.py &`,
then `echo -10 > /proc/<its pid>/autogroup`): with Linux's autogroups, nice
alone does not lift a process above other sessions' builds, and a starved
Prometheus falls behind its rounds.

Prints a Markdown table and the ratios.  docs/benchmarks.md records the
figures.  With --perf FILE, kiln's measured rounds run under `perf record
--call-graph dwarf` and FILE gets the report: the top functions, then the
call chains of those above 2%.
"""
import argparse
import itertools
import json
import math
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "integration"))
from benchlib import KILN, free_port, rss_of, start_until_ready  # noqa: E402
import rwproto  # noqa: E402

STEP_MS = 15000
BACKFILL = 26  # samples sent at the start: 6.25 minutes of history
PRECREATE_SAMPLES = 6  # of each series the rules write, before the baseline (see the docstring)
INSTANCES = 10
HANDLERS = ["/api/users", "/api/orders", "/api/search", "/api/cart", "/login"]
CODES = ["200", "400", "404", "500"]
LES = ["0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "10", "+Inf"]
TICK = os.sysconf("SC_CLK_TCK")


# ---- the data ---------------------------------------------------------------

def job_series(job):
    """[(labels, value function of the sample index k)] for one job: 1,000 series."""
    out = []
    for i in range(INSTANCES):
        inst = f"10.0.{job}.{i}:8080"
        base = [("instance", inst), ("job", job_name(job))]
        for h, hd in enumerate(HANDLERS):
            hl = base + [("handler", hd)]
            per_s = 5.0 + 3.0 * h + i  # requests a second of this handler on this instance
            share = {"200": 0.93, "400": 0.03, "404": 0.02, "500": 0.02 * (1 + (i + h) % 3)}
            for c in CODES:
                out.append(([("__name__", "http_requests_total")] + hl + [("code", c), ("method", "GET")],
                            lambda k, r=per_s * share[c]: counter(k, r)))
            scale = 0.02 * (h + 1) * (1 + i % 2)  # the handler's mean latency, s

            def total(k, r=per_s):
                return math.floor(counter(k, r))
            for le in LES:
                frac = 1.0 if le == "+Inf" else 1.0 - math.exp(-float(le) / scale)
                out.append(([("__name__", "http_request_duration_seconds_bucket")] + hl + [("le", le)],
                            lambda k, f=frac, t=total: math.floor(t(k) * f)))
            out.append(([("__name__", "http_request_duration_seconds_sum")] + hl,
                        lambda k, s=scale, t=total: t(k) * s))
            out.append(([("__name__", "http_request_duration_seconds_count")] + hl,
                        lambda k, t=total: float(t(k))))
            out.append(([("__name__", "http_requests_in_flight")] + hl,
                        lambda k, a=i + h: float((a + k) % 7 + h)))
        out.append(([("__name__", "http_max_in_flight")] + base, lambda k: 100.0))
        out.append(([("__name__", "process_cpu_seconds_total")] + base, lambda k, r=0.2 * (1 + i % 3): counter(k, r)))
        out.append(([("__name__", "process_resident_memory_bytes")] + base,
                    lambda k, b=1e8 + i * 1e6: b + (k % 40) * 4096.0))
        out.append(([("__name__", "process_open_fds")] + base, lambda k, b=50 + i: float(b + (k * 7 + i) % 20)))
        out.append(([("__name__", "process_max_fds")] + base, lambda k: 1024.0))
    for ls, _ in out:
        ls.sort()
    return out


def counter(k, per_s):
    """A counter growing at per_s a second, with a slow wave so rates vary."""
    return per_s * 15.0 * k * (1.0 + 0.1 * math.sin(k / 9.0))


def job_name(j):
    return f"svc-{j:03d}"


# ---- the rules --------------------------------------------------------------

def rules_yaml(jobs):
    out = ["groups:"]
    for j in range(jobs):
        jn = job_name(j)
        out.append(f"  - name: {jn}\n    rules:")
        for hd in HANDLERS:
            s = f'job="{jn}",handler="{hd}"'
            rq, bk = f"http_requests_total{{{s}}}", f"http_request_duration_seconds_bucket{{{s}}}"
            cnt, sm = f"http_request_duration_seconds_count{{{s}}}", f"http_request_duration_seconds_sum{{{s}}}"
            by = "sum by (job, handler)"
            rules = [
                ("job_handler:http_requests:rate5m", f"{by} (rate({rq}[5m]))"),
                ("job_handler_code:http_requests:rate5m", f"sum by (job, handler, code) (rate({rq}[5m]))"),
                ("job_handler_instance:http_requests:rate5m", f"sum by (job, handler, instance) (rate({rq}[5m]))"),
                ("job_handler:http_requests_errors:ratio_rate5m",
                 f'{by} (rate(http_requests_total{{{s},code=~"5.."}}[5m])) / {by} (rate({rq}[5m]))'),
                ("job_handler:http_requests_errors:ratio_rate1m",
                 f'{by} (rate(http_requests_total{{{s},code=~"5.."}}[1m])) / {by} (rate({rq}[1m]))'),
                ("job_handler:http_requests_success:rate5m",
                 f'{by} (rate(http_requests_total{{{s},code!~"5.."}}[5m]))'),
                ("job_handler:http_requests_4xx:increase5m",
                 f'{by} (increase(http_requests_total{{{s},code=~"4.."}}[5m]))'),
                ("job_handler:http_requests:irate5m", f"{by} (irate({rq}[5m]))"),
                ("job_handler:http_request_duration_seconds:p99_rate5m",
                 f"histogram_quantile(0.99, sum by (job, handler, le) (rate({bk}[5m])))"),
                ("job_handler:http_request_duration_seconds:p95_rate5m",
                 f"histogram_quantile(0.95, sum by (job, handler, le) (rate({bk}[5m])))"),
                ("job_handler:http_request_duration_seconds:p90_rate5m",
                 f"histogram_quantile(0.9, sum by (job, handler, le) (rate({bk}[5m])))"),
                ("job_handler:http_request_duration_seconds:p50_rate5m",
                 f"histogram_quantile(0.5, sum by (job, handler, le) (rate({bk}[5m])))"),
                ("job_handler:http_request_duration_seconds:p99_rate1m",
                 f"histogram_quantile(0.99, sum by (job, handler, le) (rate({bk}[1m])))"),
                ("job_handler:http_request_duration_seconds:mean_rate5m",
                 f"{by} (rate({sm}[5m])) / {by} (rate({cnt}[5m]))"),
                ("job_handler:http_request_duration_seconds_count:rate5m", f"{by} (rate({cnt}[5m]))"),
                ("job_handler:http_requests:apdex5m",
                 f'({by} (rate(http_request_duration_seconds_bucket{{{s},le="0.25"}}[5m])) + '
                 f'{by} (rate(http_request_duration_seconds_bucket{{{s},le="1"}}[5m]))) / 2 / '
                 f"{by} (rate({cnt}[5m]))"),
                ("job_handler:http_requests_in_flight:sum", f"{by} (http_requests_in_flight{{{s}}})"),
                ("job_handler:http_requests_in_flight:max_over_time5m",
                 f"max by (job, handler) (max_over_time(http_requests_in_flight{{{s}}}[5m]))"),
            ]
            out += [f"      - record: {r}\n        expr: '{e}'\n        labels: {{job: {jn}, handler: '{hd}'}}"
                    for r, e in rules]
        s = f'job="{jn}"'
        job_rules = [
            ("job:http_requests:rate5m", f"sum by (job) (rate(http_requests_total{{{s}}}[5m]))"),
            ("job_code:http_requests:rate5m", f"sum by (job, code) (rate(http_requests_total{{{s}}}[5m]))"),
            ("job:http_requests_errors:ratio_rate5m",
             f'sum by (job) (rate(http_requests_total{{{s},code=~"5.."}}[5m])) / '
             f"sum by (job) (rate(http_requests_total{{{s}}}[5m]))"),
            ("job:http_request_duration_seconds:p99_rate5m",
             f"histogram_quantile(0.99, sum by (job, le) (rate(http_request_duration_seconds_bucket{{{s}}}[5m])))"),
            ("job:http_request_duration_seconds_count:rate5m",
             f"sum by (job) (rate(http_request_duration_seconds_count{{{s}}}[5m]))"),
            ("job_instance:http_requests_in_flight:saturation",
             f"sum by (job, instance) (http_requests_in_flight{{{s}}}) / on (job, instance) "
             f"http_max_in_flight{{{s}}}"),
            ("job:process_cpu_seconds:avg_rate5m", f"avg by (job) (rate(process_cpu_seconds_total{{{s}}}[5m]))"),
            ("job:process_resident_memory_bytes:max", f"max by (job) (process_resident_memory_bytes{{{s}}})"),
            ("job_instance:process_fds:ratio", f"process_open_fds{{{s}}} / process_max_fds{{{s}}}"),
            ("job:http_requests_errors:sum_handler_ratio",
             f"sum by (job) (job_handler:http_requests_errors:ratio_rate5m{{{s}}})"),
        ]
        out += [f"      - record: {r}\n        expr: '{e}'\n        labels: {{job: {jn}}}" for r, e in job_rules]
    return "\n".join(out) + "\n"


def rule_output_series(jobs):
    """The label sets the rules of rules_yaml write, worked out from the data's
    shape: a record name's level (the part before the first colon) names the
    labels it keeps (the run checks that the rules wrote no others)."""
    names = sorted(set(re.findall(r"- record: (\S+)", rules_yaml(1))))
    out = []
    for j in range(jobs):
        insts = [f"10.0.{j}.{i}:8080" for i in range(INSTANCES)]
        for r in names:
            level = r.split(":", 1)[0]
            dims = [[("job", job_name(j))]]
            if level.startswith("job_handler"):
                dims.append([("handler", h) for h in HANDLERS])
            if level.endswith("_code"):
                dims.append([("code", c) for c in CODES])
            if level.endswith("_instance"):
                dims.append([("instance", i) for i in insts])
            out += [sorted([("__name__", r)] + list(ls)) for ls in itertools.product(*dims)]
    return out


# ---- feeding a server -------------------------------------------------------

class Feeder:
    """Remote-writes every series: BACKFILL samples at once, then one sample
    of each every 15 s on the grid, from a thread, until stop()."""

    def __init__(self, port, jobs):
        self.url = f"http://127.0.0.1:{port}/api/v1/write"
        self.series = [s for j in range(jobs) for s in job_series(j)]
        # the label part of each series' protobuf, encoded once
        self.lbytes = [b"".join(rwproto.field(1, rwproto.pb_label(n, v)) for n, v in ls) for ls, _ in self.series]
        now = int(time.time() * 1000) // STEP_MS * STEP_MS
        self.t0 = now - (BACKFILL - 1) * STEP_MS  # sample k is at t0 + k * 15 s
        self.stopping = threading.Event()
        self.error = None
        self.sent = 0

    def post(self, body):
        req = urllib.request.Request(self.url, data=rwproto.snappy(body), method="POST", headers={
            "Content-Type": "application/x-protobuf", "Content-Encoding": "snappy",
            "X-Prometheus-Remote-Write-Version": "0.1.0"})
        with urllib.request.urlopen(req, timeout=120) as r:
            if r.status // 100 != 2:
                raise RuntimeError(f"remote write: {r.status}")

    def send(self, k0, k1):
        """Samples k0..k1-1 of every series, 2,000 series a request."""
        for a in range(0, len(self.series), 2000):
            parts = []
            for i in range(a, min(len(self.series), a + 2000)):
                f = self.series[i][1]
                smp = b"".join(rwproto.field(2, rwproto.pb_sample(f(k), self.t0 + k * STEP_MS)) for k in range(k0, k1))
                parts.append(rwproto.field(1, self.lbytes[i] + smp))
            self.post(b"".join(parts))
        self.sent += len(self.series) * (k1 - k0)

    def backfill(self):
        self.send(0, BACKFILL)
        self.k = BACKFILL

    def precreate(self, jobs):
        """PRECREATE_SAMPLES samples (0) of each series the rules will write,
        at the last backfilled steps: the series are in the head, their first
        chunk sized, before the baseline is measured, so the rules' memory is
        theirs alone (their output's head memory is data, measured as such by
        storage_vs_prometheus.py)."""
        out = rule_output_series(jobs)
        smp = b"".join(rwproto.field(2, rwproto.pb_sample(0.0, self.t0 + k * STEP_MS))
                       for k in range(BACKFILL - PRECREATE_SAMPLES, BACKFILL))
        for a in range(0, len(out), 2000):
            self.post(b"".join(rwproto.field(1, b"".join(rwproto.field(1, rwproto.pb_label(n, v)) for n, v in ls) +
                                             smp)
                               for ls in out[a:a + 2000]))
        return len(out)

    def run(self):
        try:
            while not self.stopping.is_set():
                due = (self.t0 + self.k * STEP_MS) / 1000.0
                if self.stopping.wait(max(0.0, due - time.time())):
                    return
                self.send(self.k, self.k + 1)
                self.k += 1
        except Exception as e:  # reported by the measuring thread
            self.error = e

    def start(self):
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def stop(self):
        self.stopping.set()
        self.thread.join(120)


# ---- measuring --------------------------------------------------------------

def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def runqueue_wait(pid):
    """Seconds the process' threads have spent runnable but waiting for a CPU
    (the second field of each thread's schedstat)."""
    total = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                total += int(f.read().split()[1])
        except (OSError, IndexError, ValueError):
            pass
    return total / 1e9


def metrics(port):
    """{name: [(labels text, value)]} of /metrics."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=30) as r:
        text = r.read().decode()
    out = {}
    for line in text.splitlines():
        if not line or line[0] == "#":
            continue
        key, v = line.rsplit(" ", 1)
        name = key.split("{", 1)[0]
        out.setdefault(name, []).append((key[len(name):], float(v)))
    return out


def query(port, q):
    u = f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode({"query": q})
    with urllib.request.urlopen(u, timeout=120) as r:
        body = json.loads(r.read())
    if body.get("status") != "success":
        raise RuntimeError(f"{q}: {body}")
    return body["data"]["result"]


def sleep_until(t):
    time.sleep(max(0.0, t - time.time()))


def measure(name, cmd, port, base, prefix, a, rules_path):
    """Runs one server through steps 1-5 of the docstring; returns its figures."""
    print(f"# {name}: starting", file=sys.stderr)
    proc, _ = start_until_ready(cmd, port)
    feeder = Feeder(port, a.jobs)
    perf = None
    try:
        t = time.time()
        feeder.backfill()
        print(f"# {name}: {feeder.sent} samples sent in {time.time() - t:.1f}s", file=sys.stderr)
        if a.precreate:
            print(f"# {name}: {feeder.precreate(a.jobs)} series the rules write created", file=sys.stderr)
        feeder.start()
        # the baseline is taken in the steady state: after two live
        # rounds (their appends grow every series' chunk) and once the work the
        # backfill left (head appends, Go's GC) has settled
        while feeder.k <= BACKFILL + 1 and not feeder.error and time.time() - t < 120:
            time.sleep(0.5)
        time.sleep(20)
        rss0, c0, t0 = [], cpu_seconds(proc.pid), time.time()
        for _ in range(4):
            rss0.append(rss_of(proc.pid))
            time.sleep(5)
        base_cpu_per_s = (cpu_seconds(proc.pid) - c0) / (time.time() - t0)

        with open(os.path.join(base, "cfg.yml"), "a") as f:
            f.write(f"rule_files: [{rules_path}]\n")
        proc.send_signal(signal.SIGHUP)
        t_reload = time.time()
        groups = f"{prefix}_rule_group_last_duration_seconds"
        while True:
            m = metrics(port)
            if len(m.get(groups, [])) == a.jobs:
                break
            if time.time() - t_reload > 120:
                raise RuntimeError(f"{name}: the rules did not load: {len(m.get(groups, []))} groups")
            time.sleep(0.5)
        # every group has evaluated once within one interval of the load
        sleep_until(t_reload + STEP_MS / 1000 * (1 + a.warmup) + 1)

        if perf is None and a.perf and name == "kiln":
            perf = subprocess.Popen(["perf", "record", "-F", "997", "--call-graph", "dwarf,16384", "-o",
                                     os.path.join(base, "perf.data"), "-p", str(proc.pid)],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        sums, rss1, lasts = [], [], set()
        c1, w1, t1 = cpu_seconds(proc.pid), runqueue_wait(proc.pid), time.time()
        for r in range(a.rounds):
            sleep_until(t1 + (r + 1) * STEP_MS / 1000)
            m = metrics(port)
            durs = [v for _, v in m.get(groups, [])]
            sums.append(sum(durs))
            lasts.add(max(v for _, v in m.get(f"{prefix}_rule_group_last_evaluation_timestamp_seconds", [])))
            rss1.append(rss_of(proc.pid))
        cpu_round = (cpu_seconds(proc.pid) - c1) / (time.time() - t1) * STEP_MS / 1000
        wait_round = (runqueue_wait(proc.pid) - w1) / (time.time() - t1) * STEP_MS / 1000
        if perf is not None:
            perf.send_signal(signal.SIGINT)
            perf.wait(120)

        if feeder.error:
            raise RuntimeError(f"{name}: remote write failed: {feeder.error}")
        fails = sum(v for _, v in m.get(f"{prefix}_rule_evaluation_failures_total", []))
        missed = sum(v for _, v in m.get(f"{prefix}_rule_group_iterations_missed_total", []))
        nrules = sum(v for _, v in m.get(f"{prefix}_rule_group_rules", []))
        recorded = query(port, 'count({__name__=~"job.*:.+"})')
        if int(time.time() * 1000) // 7200000 != feeder.t0 // 7200000:
            print(f"# {name}: a 2 h chunk range boundary fell in the run: every series cut a chunk, and its "
                  "memory figures include the new chunks growing (not the rules')", file=sys.stderr)
        return {
            "eval_s": statistics.median(sums), "eval_all": sums,
            "rss_base": statistics.median(rss0), "rss_rules": statistics.median(rss1),
            "cpu_round": cpu_round - base_cpu_per_s * STEP_MS / 1000, "cpu_data": base_cpu_per_s * STEP_MS / 1000,
            "wait_round": wait_round, "failures": fails, "missed": missed, "rules": nrules,
            "recorded": int(float(recorded[0]["value"][1])) if recorded else 0, "rounds_seen": len(lasts),
        }
    finally:
        feeder.stopping.set()
        if perf is not None and perf.poll() is None:
            perf.send_signal(signal.SIGINT)
            perf.wait(120)
        proc.terminate()
        try:
            proc.wait(120)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def perf_report(base, out):
    with open(out, "w") as f:
        subprocess.run(["perf", "report", "-i", os.path.join(base, "perf.data"), "--no-children", "--stdio",
                        "--percent-limit", "0.5", "-g", "none"], stdout=f, stderr=subprocess.DEVNULL)
        subprocess.run(["perf", "report", "-i", os.path.join(base, "perf.data"), "--no-children", "--stdio",
                        "--percent-limit", "2", "-g", "caller,0.5,callee,function,percent", "--max-stack", "12"],
                       stdout=f, stderr=subprocess.DEVNULL)


def loadavg():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--jobs", type=int, default=100, help="groups of 100 rules, and x1,000 series")
    ap.add_argument("--rounds", type=int, default=6, help="evaluation rounds measured")
    ap.add_argument("--warmup", type=int, default=2, help="evaluation rounds before measuring")
    ap.add_argument("--only", choices=["kiln", "prometheus"])
    ap.add_argument("--perf", help="profile kiln's measured rounds with perf; the report goes here")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory")
    ap.add_argument("--no-precreate", dest="precreate", action="store_false",
                    help="leave the rules' output series out of the baseline (rule memory then includes "
                         "their head memory)")
    a = ap.parse_args()
    root = tempfile.mkdtemp(prefix="kiln-rulebench-")
    res = {}
    try:
        rules_path = os.path.join(root, "rules.yml")
        with open(rules_path, "w") as f:
            f.write(rules_yaml(a.jobs))
        print(f"# load average before: {loadavg()}", file=sys.stderr)
        for name in ("kiln", "prometheus"):
            if a.only and a.only != name:
                continue
            base = os.path.join(root, name)
            os.makedirs(base)
            with open(os.path.join(base, "cfg.yml"), "w") as f:
                f.write("global:\n  scrape_interval: 1h\n  evaluation_interval: 15s\n")
            port = free_port()
            common = [f"--config.file={base}/cfg.yml", f"--storage.tsdb.path={base}/data",
                      f"--web.listen-address=127.0.0.1:{port}"]
            if name == "kiln":
                res[name] = measure(name, [KILN] + common, port, base, "kiln", a, rules_path)
            else:
                res[name] = measure(name, ["prometheus"] + common + ["--web.enable-remote-write-receiver"],
                                    port, base, "prometheus", a, rules_path)
            print(f"# {name}: {res[name]}", file=sys.stderr)
            if a.perf and name == "kiln":
                perf_report(base, a.perf)
        print(f"# load average after: {loadavg()}", file=sys.stderr)
    finally:
        if a.keep:
            print(f"# kept {root}", file=sys.stderr)
        else:
            shutil.rmtree(root, ignore_errors=True)

    nrules, nseries = a.jobs * 100, a.jobs * 1000
    names = [n for n in ("kiln", "prometheus") if n in res]
    print(f"{nrules} recording rules in {a.jobs} groups over {nseries} series, every 15 s; "
          f"median of {a.rounds} rounds after {a.warmup}")
    print("| what is measured | " + " | ".join(names) + (" | ratio |" if len(names) == 2 else " |"))
    print("|---|" + "---|" * (len(names) + (1 if len(names) == 2 else 0)))

    def row(label, key, fmt, scale=1.0):
        vals = [res[n][key] * scale for n in names]
        cells = " | ".join(fmt.format(v) for v in vals)
        ratio = f" | {vals[0] / vals[1]:.3f} |" if len(vals) == 2 and vals[1] else (" | — |" if len(vals) == 2 else " |")
        print(f"| {label} | {cells}{ratio}")

    row("evaluation time of a round, sum over the groups' last_duration_seconds, ms", "eval_s", "{:.0f}", 1e3)
    row("CPU time of a round beyond the data's, ms", "cpu_round", "{:.0f}", 1e3)
    for n in names:
        res[n]["rss_delta"] = res[n]["rss_rules"] - res[n]["rss_base"]
    row("time its threads waited for a CPU in a round (runnable, not running), ms", "wait_round", "{:.0f}", 1e3)
    row("rule memory: resident with the rules minus without, MB" +
        (" (their output series in the head in both)" if a.precreate else ""), "rss_delta", "{:.1f}", 1e-6)
    row("resident memory without the rules, MB", "rss_base", "{:.0f}", 1e-6)
    row("resident memory with the rules, MB", "rss_rules", "{:.0f}", 1e-6)
    row("series written by the rules", "recorded", "{:.0f}")
    row("rule evaluation failures", "failures", "{:.0f}")
    row("missed group iterations", "missed", "{:.0f}")
    for n in names:
        print(f"# {n}: round sums (ms): " + ", ".join(f"{s * 1e3:.0f}" for s in res[n]["eval_all"]))
    ok = all(res[n]["failures"] == 0 and res[n]["rules"] == nrules for n in names)
    if a.precreate and any(res[n]["recorded"] != len(rule_output_series(a.jobs)) for n in names):
        print("the rules wrote series that were not created beforehand: the rule memory includes their head memory")
        ok = False
    if len(names) == 2 and res["kiln"]["recorded"] != res["prometheus"]["recorded"]:
        print("series written by the rules DIFFER")
        ok = False
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
