#!/usr/bin/env python3
"""Remote write out, kiln vs Debian's Prometheus (2.42): the CPU each takes
to forward a sample it scraped to a remote-write receiver.

    python3 tests/bench/remotewrite_out_vs_prometheus.py [--targets 20] [--series 1000]
                                                         [--interval 1] [--seconds 20]

1. The test exporter of scrape_vs_prometheus.py serves --targets targets of
   --series counters each; both servers scrape them every --interval s.
2. The receiver is a sink in this process (asyncio): it reads each POST to
   /api/v1/write whole, counts requests and bytes, answers 204.  The same
   sink for both servers, so neither is slowed by the receiver.
3. One server at a time, on a fresh data directory each run: first without
   remote_write, then with it (queue_config defaults, as a user would have
   them).  After a warm-up, CPU time (utime + stime from /proc) over
   --seconds.  The CPU of forwarding is the difference between the two runs;
   divided by the samples the server reports sent (<prefix>_remote_storage_
   samples_total over the same seconds) it is the CPU per sample forwarded.
   The total CPU per sample (scrape, WAL, head and forwarding) is printed too.

Prints a Markdown table and the ratios; docs/benchmarks.md records them.
"""
import argparse
import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchlib import KILN, free_port, wait_ready  # noqa: E402
from scrape_vs_prometheus import PROMETHEUS, Exporter, config, cpu_seconds, metric  # noqa: E402


class Sink:
    """A remote-write receiver that accepts everything and keeps counts."""

    def __init__(self):
        self.requests = self.bytes = 0
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        threading.Thread(target=self.run, daemon=True).start()
        self.ready.wait()

    async def handle(self, reader, writer):
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                n = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        n = int(line.split(b":", 1)[1])
                await reader.readexactly(n)
                self.requests += 1
                self.bytes += n
                writer.write(b"HTTP/1.1 204 No Content\r\n\r\n")
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    def run(self):
        asyncio.set_event_loop(self.loop)
        srv = self.loop.run_until_complete(asyncio.start_server(self.handle, "127.0.0.1", 0, backlog=1024))
        self.port = srv.sockets[0].getsockname()[1]
        self.ready.set()
        self.loop.run_forever()


def run(name, cmd, port, sent_metric, seconds, warmup, tmp):
    log = open(os.path.join(tmp, name + ".log"), "w")
    p = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_ready(port, p, timeout=120)
        time.sleep(warmup)
        c0, s0 = cpu_seconds(p.pid), metric(port, sent_metric) if sent_metric else 0
        time.sleep(seconds)
        c1, s1 = cpu_seconds(p.pid), metric(port, sent_metric) if sent_metric else 0
        return {"cpu": c1 - c0, "sent": s1 - s0}
    finally:
        p.terminate()
        p.wait(timeout=60)
        log.close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--targets", type=int, default=20)
    ap.add_argument("--series", type=int, default=1000)
    ap.add_argument("--interval", type=int, default=1)
    ap.add_argument("--seconds", type=float, default=20)
    ap.add_argument("--warmup", type=float, default=6)
    args = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="kiln-rwout-bench-")
    try:
        ports = Exporter(args.targets, args.series).ports
        sink = Sink()
        base = config(ports, args.interval)
        with_rw = base + f"remote_write:\n  - url: http://127.0.0.1:{sink.port}/api/v1/write\n"
        servers = {
            "prometheus": (PROMETHEUS, "prometheus_remote_storage_samples_total"),
            "kiln": (KILN, "kiln_remote_storage_samples_total"),
        }
        res = {}
        for name, (binary, sent) in servers.items():
            for mode, cfg in (("base", base), ("rw", with_rw)):
                path = os.path.join(tmp, f"{name}-{mode}.yml")
                with open(path, "w") as f:
                    f.write(cfg)
                port = free_port()
                cmd = [binary, f"--config.file={path}", f"--storage.tsdb.path={tmp}/{name}-{mode}-data",
                       f"--web.listen-address=127.0.0.1:{port}"]
                r0 = sink.requests
                res[name, mode] = run(f"{name}-{mode}", cmd, port, sent if mode == "rw" else None, args.seconds,
                                      args.warmup, tmp)
                res[name, mode]["requests"] = sink.requests - r0
        rate = args.targets * args.series / args.interval
        print(f"{args.targets} targets x {args.series} series every {args.interval}s ({rate:.0f} samples/s), "
              f"{args.seconds:.0f} s measured after {args.warmup:.0f} s")
        print("| server | CPU s without remote_write | CPU s with | samples sent | requests | "
              "CPU us / sample forwarded | CPU us / sample, all |")
        print("|---|---|---|---|---|---|---|")
        per = {}
        for name in servers:
            b, w = res[name, "base"], res[name, "rw"]
            per[name] = (w["cpu"] - b["cpu"]) / w["sent"] * 1e6 if w["sent"] else float("nan")
            total = w["cpu"] / w["sent"] * 1e6 if w["sent"] else float("nan")
            print(f"| {name} | {b['cpu']:.2f} | {w['cpu']:.2f} | {w['sent']:.0f} | {w['requests']} | "
                  f"{per[name]:.3f} | {total:.3f} |")
        if per["prometheus"] > 0:
            print(f"kiln / Prometheus, CPU per sample forwarded: {per['kiln'] / per['prometheus']:.2f}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
