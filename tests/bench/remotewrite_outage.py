#!/usr/bin/env python3
"""Remote write through a receiver outage, kiln and Debian's Prometheus (2.42)
side by side in one run: nothing is lost, and memory does not grow with the
backlog beyond the queues' capacity.

    python3 tests/bench/remotewrite_outage.py [--targets 5] [--series 1000]
                                              [--warmup 60] [--outage 600] [--after 120]

1. The exporter of scrape_vs_prometheus.py serves --targets x --series
   counters; kiln and Prometheus both scrape it every second and forward
   (queue_config defaults) to one receiver, Prometheus 2.42 with
   --web.enable-remote-write-receiver, each with an external label
   sender=kiln / sender=prometheus.
2. After --warmup s the receiver is stopped for --outage s (the backlog
   stays in each sender's WAL), then started again on the same data.
3. Every 5 s the senders' resident memory is read from /proc; the table
   gives it before the outage, its peak during it, and after the catch-up.
4. Once each sender's newest acknowledged sample is newer than the
   receiver's restart (the catch-up time in the table), the count of samples of each sender
   in the receiver is compared with the count the sender itself holds, over
   the whole run (sum of count_over_time).

Prints a Markdown table; docs/benchmarks.md records it.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchlib import KILN, free_port, rss_of, wait_ready  # noqa: E402
from scrape_vs_prometheus import PROMETHEUS, Exporter, config, metric  # noqa: E402


def query(port, q, t):
    u = f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode({"query": q, "time": f"{t:.3f}"})
    with urllib.request.urlopen(u, timeout=120) as r:
        res = json.loads(r.read())["data"]["result"]
    return float(res[0]["value"][1]) if res else 0.0


class Receiver:
    def __init__(self, tmp):
        self.port = free_port()
        self.dir = os.path.join(tmp, "receiver")
        os.makedirs(self.dir)
        with open(os.path.join(self.dir, "p.yml"), "w") as f:
            f.write("global: {}\n")
        self.p = None

    def start(self):
        self.p = subprocess.Popen([PROMETHEUS, f"--config.file={self.dir}/p.yml",
                                   f"--storage.tsdb.path={self.dir}/data",
                                   f"--web.listen-address=127.0.0.1:{self.port}", "--web.enable-remote-write-receiver"],
                                  stdout=subprocess.DEVNULL, stderr=open(os.path.join(self.dir, "log"), "a"))
        wait_ready(self.port, self.p, timeout=300)

    def stop(self):
        self.p.terminate()
        self.p.wait(timeout=120)


def main():
    ap = argparse.ArgumentParser(description="remote write through a receiver outage")
    for name, kind, default in (("--outage", float, 600), ("--warmup", float, 60), ("--after", float, 120),
                                ("--targets", int, 5), ("--series", int, 1000)):
        ap.add_argument(name, type=kind, default=default)
    args = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="kiln-rw-outage-")
    procs = {}
    recv = None
    try:
        ports = Exporter(args.targets, args.series).ports
        recv = Receiver(tmp)
        recv.start()
        senders = {"kiln": (KILN, "kiln"), "prometheus": (PROMETHEUS, "prometheus")}
        sport = {}
        for name, (binary, prefix) in senders.items():
            cfg = config(ports, 1).replace("global:\n", f"global:\n  external_labels: {{sender: {name}}}\n", 1)
            cfg += f"remote_write:\n  - url: http://127.0.0.1:{recv.port}/api/v1/write\n"
            path = os.path.join(tmp, f"{name}.yml")
            with open(path, "w") as f:
                f.write(cfg)
            sport[name] = free_port()
            procs[name] = subprocess.Popen([binary, f"--config.file={path}", f"--storage.tsdb.path={tmp}/{name}-data",
                                            f"--web.listen-address=127.0.0.1:{sport[name]}"],
                                           stdout=subprocess.DEVNULL, stderr=open(os.path.join(tmp, name + ".log"), "w"))
            wait_ready(sport[name], procs[name], timeout=300)
        t_start = time.time()
        rss = {n: {"before": 0, "peak": 0, "after": 0} for n in senders}

        def sample(phase):
            for n, p in procs.items():
                v = rss_of(p.pid)
                if phase == "peak":
                    rss[n]["peak"] = max(rss[n]["peak"], v)
                else:
                    rss[n][phase] = v

        time.sleep(args.warmup)
        sample("before")
        load0 = os.getloadavg()[0]
        recv.stop()
        t_down = time.time()
        while time.time() - t_down < args.outage:
            time.sleep(5)
            sample("peak")
        pending_peak = {n: metric(sport[n], f"{senders[n][1]}_remote_storage_samples_pending") for n in senders}
        recv.start()
        t_up = time.time()
        caught = {}
        while time.time() - t_up < args.after and len(caught) < len(senders):
            time.sleep(2)
            sample("peak")
            for n, (_, prefix) in senders.items():
                if n in caught:
                    continue
                sent = metric(sport[n], f"{prefix}_remote_storage_queue_highest_sent_timestamp_seconds")
                if sent and sent > t_up + 2:  # a sample scraped after the restart was accepted
                    caught[n] = time.time() - t_up
        time.sleep(5)
        sample("after")
        t_end = time.time() - 30  # what both have surely sent
        window = f"{int(t_end - t_start) + 60}s"
        counts = {}
        for n in senders:
            mine = query(sport[n], f"sum(count_over_time(bench_requests_total[{window}]))", t_end)
            theirs = query(recv.port, f'sum(count_over_time(bench_requests_total{{sender="{n}"}}[{window}]))', t_end)
            counts[n] = (mine, theirs)
        mib = 1 << 20
        print(f"{args.targets} targets x {args.series} series every 1 s ({args.targets * args.series} samples/s); "
              f"receiver down {args.outage:.0f} s after {args.warmup:.0f} s; load average {load0:.1f} at the outage")
        print("| sender | RSS before (MiB) | peak during the outage and catch-up | after | pending at the end of "
              "the outage | catch-up (s) | samples it holds | samples the receiver holds | lost |")
        print("|---|---|---|---|---|---|---|---|---|")
        for n in senders:
            r, (mine, theirs) = rss[n], counts[n]
            print(f"| {n} | {r['before'] / mib:.0f} | {r['peak'] / mib:.0f} | {r['after'] / mib:.0f} | "
                  f"{pending_peak[n]:.0f} | {caught.get(n, float('nan')):.0f} | {mine:.0f} | {theirs:.0f} | "
                  f"{mine - theirs:.0f} |")
        k, p = rss["kiln"], rss["prometheus"]
        print(f"RSS growth during the outage, kiln / Prometheus: {(k['peak'] - k['before']) / mib:.1f} MiB / "
              f"{(p['peak'] - p['before']) / mib:.1f} MiB")
    finally:
        if recv and recv.p and recv.p.poll() is None:
            recv.stop()
        for p in procs.values():
            p.terminate()
            p.wait(timeout=120)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
