#!/usr/bin/env python3
"""Metadata lookups (the ones Grafana makes), kiln vs Debian's Prometheus (2.42).

    python3 tests/bench/lookups_vs_prometheus.py [--series 1000000] [--reps 7]

1. Builds remote-write requests for --series node-exporter-like series
   (1000 series an instance: 95 metric names; labels job (4 values),
   instance, cpu (8), mode, device (disks 8, network interfaces 12),
   mountpoint/fstype, ...), each with 3 samples 15 s apart ending now.
   The bodies are built once and sent as they are to both servers.
2. Starts bin/kiln, sends the requests (2 connections, 2000 series a
   request), times every lookup over HTTP (one warm-up, then --reps runs,
   median, a new connection each as Grafana's proxy would), stops it.
   Then the same with `prometheus --web.enable-remote-write-receiver`:
   each process runs alone.
3. Compares the answers (the JSON `data`) and prints a Markdown table of
   kiln ms, Prometheus ms and their ratio.  Exit status 1 when an answer
   differs.

Lookups "with start/end" ask for the last hour, as Grafana does.  The last
rows are the selectors of issue 22 (regex matchers over many series), as
instant queries and lookups.
"""
import argparse
import http.client
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "integration"))
from benchlib import KILN, free_port, wait_ready  # noqa: E402
import rwproto  # noqa: E402

PER_INSTANCE = 1000
CPUS = [str(c) for c in range(8)]
MODES = ["idle", "iowait", "irq", "nice", "softirq", "steal", "system", "user"]
DISKS = ["dm-0", "dm-1", "nvme0n1", "nvme1n1", "sda", "sdb", "sdc", "sdd"]
NICS = ["bond0", "docker0", "eno1", "eno2", "eth0", "eth1", "lo", "veth1a2b", "veth3c4d", "virbr0", "wlan0", "br0"]
MOUNTS = [("/dev/sda1", "ext4", "/"), ("/dev/sda2", "ext4", "/home"), ("/dev/nvme0n1p1", "xfs", "/var"),
          ("tmpfs", "tmpfs", "/run"), ("tmpfs", "tmpfs", "/dev/shm"), ("/dev/sdb1", "vfat", "/boot/efi")]
UNITS = ["cron.service", "docker.service", "kubelet.service", "node_exporter.service", "sshd.service",
         "systemd-journald.service", "containerd.service"]
STATES = ["activating", "active", "deactivating", "failed", "inactive", "maintenance"]


def instance_families():
    """[(metric name, [extra label pairs])...]: the 1000 series of one instance."""
    out = []
    out += [("node_cpu_seconds_total", [("cpu", c), ("mode", m)]) for c in CPUS for m in MODES]
    out += [("node_cpu_guest_seconds_total", [("cpu", c), ("mode", m)]) for c in CPUS for m in ("nice", "user")]
    for n in ("node_cpu_scaling_frequency_hertz", "node_cpu_scaling_frequency_max_hertz",
              "node_cpu_scaling_frequency_min_hertz", "node_cpu_core_throttles_total"):
        out += [(n, [("cpu", c)]) for c in CPUS]
    for n in ("reads_completed", "reads_merged", "read_bytes", "read_time_seconds", "writes_completed",
              "writes_merged", "written_bytes", "write_time_seconds", "io_now", "io_time_seconds",
              "io_time_weighted_seconds", "discards_completed", "discards_merged", "discarded_sectors",
              "discard_time_seconds", "flush_requests"):
        out += [("node_disk_%s_total" % n, [("device", d)]) for d in DISKS]
    for d in ("receive", "transmit"):
        for n in ("bytes", "packets", "errs", "drop", "fifo", "compressed", "multicast", "frame", "carrier",
                  "colls", "nohandler", "missed"):
            out += [("node_network_%s_%s_total" % (d, n), [("device", x)]) for x in NICS]
    for n in ("avail_bytes", "free_bytes", "size_bytes", "files", "files_free", "readonly", "device_error"):
        out += [("node_filesystem_" + n, [("device", dv), ("fstype", fs), ("mountpoint", mp)])
                for dv, fs, mp in MOUNTS]
    out += [("node_interrupts_total", [("cpu", c), ("devices", "dev%d" % k), ("type", str(100 + k))])
            for c in CPUS for k in range(40)]
    for n in ("processed", "dropped", "times_squeezed", "received_rps"):
        out += [("node_softnet_%s_total" % n, [("cpu", c)]) for c in CPUS]
    for n in ("MemTotal", "MemFree", "MemAvailable", "Buffers", "Cached", "SwapCached", "Active", "Inactive",
              "Active_anon", "Inactive_anon", "Active_file", "Inactive_file", "Unevictable", "Mlocked",
              "SwapTotal", "SwapFree", "Dirty", "Writeback", "AnonPages", "Mapped", "Shmem", "KReclaimable",
              "Slab", "SReclaimable", "SUnreclaim", "KernelStack", "PageTables", "CommitLimit", "Committed_AS",
              "VmallocTotal", "VmallocUsed", "HugePages_Total", "HugePages_Free"):
        out.append(("node_memory_%s_bytes" % n, []))
    out += [("node_load1", []), ("node_load5", []), ("node_load15", [])]
    out += [("node_systemd_unit_state", [("name", u), ("state", s), ("type", "simple")])
            for u in UNITS for s in STATES]
    assert len(out) == PER_INSTANCE, len(out)
    return out


def build_bodies(nseries, batch):
    """Remote-write bodies for nseries series, batch series a body."""
    fams = instance_families()
    now_ms = int(time.time() * 1000)
    samples = b"".join(rwproto.field(2, rwproto.pb_sample(float(k), now_ms - (2 - k) * 15000)) for k in range(3))
    cache = {}

    def lab(n, v):
        b = cache.get((n, v))
        if b is None:
            b = cache[(n, v)] = rwproto.field(1, rwproto.pb_label(n, v))
        return b

    bodies, cur = [], []
    for i in range(nseries):
        inst, k = divmod(i, PER_INSTANCE)
        name, extra = fams[k]
        ls = sorted([("__name__", name), ("instance", "host-%04d:9100" % inst),
                     ("job", ("node-eu", "node-us", "node-ap", "node-sa")[inst % 4])] + extra)
        cur.append(rwproto.field(1, b"".join(lab(n, v) for n, v in ls) + samples))
        if len(cur) == batch:
            bodies.append(rwproto.snappy(b"".join(cur)))
            cur = []
    if cur:
        bodies.append(rwproto.snappy(b"".join(cur)))
    return bodies, now_ms


def send_all(port, bodies, conns=2):
    errors = []

    def worker(part):
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
        for b in part:
            c.request("POST", "/api/v1/write", body=b, headers={
                "Content-Type": "application/x-protobuf", "Content-Encoding": "snappy",
                "X-Prometheus-Remote-Write-Version": "0.1.0"})
            r = c.getresponse()
            body = r.read()
            if r.status // 100 != 2:
                errors.append(f"{r.status}: {body[:200]!r}")
                return
        c.close()

    ths = [threading.Thread(target=worker, args=(bodies[i::conns],)) for i in range(conns)]
    for t in ths:
        t.start()
    for t in ths:
        t.join()
    if errors:
        raise RuntimeError("remote write failed: " + errors[0])


def lookups(now_ms):
    """[(label, path)]: Grafana's lookups, without and with the last hour."""
    rng = "start=%.3f&end=%.3f" % ((now_ms - 3600000) / 1000, (now_ms + 60000) / 1000)
    q = urllib.parse.quote
    base = [
        ("labels", "/api/v1/labels"),
        ("label/__name__/values", "/api/v1/label/__name__/values"),
        ("label/instance/values", "/api/v1/label/instance/values"),
        ("label/instance/values?match[]=node_load1 (1000 series)",
         "/api/v1/label/instance/values?match[]=" + q("node_load1")),
        ("label/device/values?match[]=one metric of one instance",
         "/api/v1/label/device/values?match[]=" + q('node_network_receive_bytes_total{instance="host-0042:9100"}')),
        ("series?match[]=node_filesystem_avail_bytes (6000 series)",
         "/api/v1/series?match[]=" + q("node_filesystem_avail_bytes")),
        ("series?match[]=one metric of one instance (64 series)",
         "/api/v1/series?match[]=" + q('node_cpu_seconds_total{instance="host-0042:9100"}')),
        ("labels?match[]=node_network_receive_bytes_total (12000 series)",
         "/api/v1/labels?match[]=" + q("node_network_receive_bytes_total")),
        # heavier than a dashboard's: many series behind one lookup
        ("label/instance/values?match[]=node_cpu_seconds_total (64000 series)",
         "/api/v1/label/instance/values?match[]=" + q("node_cpu_seconds_total")),
        ('labels?match[]={job="node-eu"} (250000 series)', "/api/v1/labels?match[]=" + q('{job="node-eu"}')),
        ("series?match[]=node_cpu_seconds_total (64000 series, 7 MB of JSON)",
         "/api/v1/series?match[]=" + q("node_cpu_seconds_total")),
    ]
    out = []
    for name, path in base:
        out.append((name, path))
        out.append((name + ", last 1h", path + ("&" if "?" in path else "?") + rng))
    # issue 22's selectors at scale (instance and job values of this data set
    # in place of the host-1/j7/pod): regex matchers that the literal
    # prefix answers, over many series; instant queries at the samples' time
    at = "&time=%.3f" % (now_ms / 1000)
    for name, path in [
        ('query count({__name__=~"node_.*", instance=~"host-01.*"}) (100000 series)',
         "/api/v1/query?query=" + q('count({__name__=~"node_.*", instance=~"host-01.*"})') + at),
        ('query count({job="node-eu", device=~"eth.*"}) (12000 series)',
         "/api/v1/query?query=" + q('count({job="node-eu", device=~"eth.*"})') + at),
        ('query count({__name__=~"node_disk_.*|node_cpu_.*", cpu=~"1|3|5"}) (42000 series)',
         "/api/v1/query?query=" + q('count({__name__=~"node_disk_.*|node_cpu_.*", cpu=~"1|3|5"})') + at),
        ('label/device/values?match[]={__name__=~"node_network_.*", instance=~"host-00.*"}',
         "/api/v1/label/device/values?match[]=" + q('{__name__=~"node_network_.*", instance=~"host-00.*"}')),
        ('series?match[]={__name__=~"node_load.*", instance=~"host-0.*"} (3000 series)',
         "/api/v1/series?match[]=" + q('{__name__=~"node_load.*", instance=~"host-0.*"}')),
    ]:
        out.append((name, path))
    return out


def get(port, path):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    try:
        c.request("GET", path)
        r = c.getresponse()
        body = r.read()
    finally:
        c.close()
    if r.status != 200:
        raise RuntimeError(f"{path}: {r.status} {body[:300]!r}")
    return body


def measure(port, paths, reps):
    """{path: (median ms, data)}"""
    out = {}
    for _, path in paths:
        get(port, path)  # warm-up
        times = []
        for _ in range(reps):
            t = time.perf_counter()
            body = get(port, path)
            times.append((time.perf_counter() - t) * 1e3)
        times.sort()
        out[path] = (times[len(times) // 2], json.loads(body)["data"])
    return out


def normalize(data):
    if isinstance(data, dict):  # a query's: its result, without its order
        return [data.get("resultType"), normalize(data.get("result"))]
    if data and isinstance(data[0], dict):
        return sorted(json.dumps(d, sort_keys=True) for d in data)
    return data


def run(cmd, port, log, bodies, paths, reps):
    p = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_ready(port, p)
        t = time.time()
        send_all(port, bodies)
        load_s = time.time() - t
        time.sleep(2)
        return measure(port, paths, reps), load_s
    finally:
        p.terminate()
        try:
            p.wait(timeout=120)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--series", type=int, default=1000000)
    ap.add_argument("--reps", type=int, default=7)
    ap.add_argument("--batch", type=int, default=2000)
    ap.add_argument("--only", choices=["kiln", "prometheus"], help="run one server only")
    ap.add_argument("--keep", action="store_true", help="keep the temp dir")
    ap.add_argument("--kiln", default=KILN, help="the kiln binary (default bin/kiln)")
    a = ap.parse_args()
    if a.series % PER_INSTANCE:
        ap.error(f"--series must be a multiple of {PER_INSTANCE}")
    base = tempfile.mkdtemp(prefix="kiln-lookups-")
    try:
        cfg = os.path.join(base, "cfg.yml")
        with open(cfg, "w") as f:
            f.write("global:\n  scrape_interval: 1h\n")
        t = time.time()
        bodies, now_ms = build_bodies(a.series, a.batch)
        print(f"# {len(bodies)} requests built in {time.time() - t:.1f}s", file=sys.stderr)
        paths = lookups(now_ms)
        res = {}
        if a.only != "prometheus":
            port = free_port()
            with open(os.path.join(base, "kiln.log"), "w") as log:
                res["kiln"], s = run([a.kiln, f"--config.file={cfg}", f"--storage.tsdb.path={base}/k",
                                      f"--web.listen-address=127.0.0.1:{port}"], port, log, bodies, paths, a.reps)
            print(f"# kiln loaded in {s:.1f}s", file=sys.stderr)
        if a.only != "kiln":
            port = free_port()
            with open(os.path.join(base, "prometheus.log"), "w") as log:
                res["prom"], s = run(["prometheus", f"--config.file={cfg}", f"--storage.tsdb.path={base}/p",
                                      f"--web.listen-address=127.0.0.1:{port}", "--web.enable-remote-write-receiver"],
                                     port, log, bodies, paths, a.reps)
            print(f"# Prometheus loaded in {s:.1f}s", file=sys.stderr)
        k, p = res.get("kiln", {}), res.get("prom", {})
        print(f"{a.series} series (node-exporter-like, {a.series // PER_INSTANCE} instances), 3 samples each; "
              f"median of {a.reps} over HTTP")
        print("| lookup | kiln ms | Prometheus 2.42 ms | kiln / Prometheus | answer |")
        print("|---|---|---|---|---|")
        differ = 0
        for name, path in paths:
            km = "%.1f" % k[path][0] if path in k else "-"
            pm = "%.1f" % p[path][0] if path in p else "-"
            ratio = "%.3f" % (k[path][0] / p[path][0]) if path in k and path in p else "-"
            if path in k and path in p:
                n = len(k[path][1]) if isinstance(k[path][1], list) else len(k[path][1]["result"])
                same = normalize(k[path][1]) == normalize(p[path][1])
                ans = f"same ({n} items)" if same else f"DIFFERS ({n} items)"
                differ += not same
            else:
                ans = "-"
            print(f"| `{name}` | {km} | {pm} | {ratio} | {ans} |")
        return 1 if differ else 0
    finally:
        if a.keep:
            print(f"# kept {base}", file=sys.stderr)
        else:
            shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
