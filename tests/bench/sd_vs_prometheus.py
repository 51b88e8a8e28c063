#!/usr/bin/env python3
"""Service discovery at scale, kiln and Prometheus 2.42 side by side in one run.

Both servers get the same configuration and the same peers (Debian's Prometheus
2.42 is built without Kubernetes discovery, so it runs the HTTP SD job only):
  - an HTTP SD endpoint serving --http-targets targets (one group each, with
    an `id` label), 10% of them replaced every minute (spread over the
    minute at every refresh);
  - a scripted Kubernetes API server (tests/integration/kubeapi.py) with
    --pods pods, listed and watched (role pod), 10% of them deleted and
    replaced by new ones every minute (spread over 6-second steps);
  - every target is one small asyncio exporter (one series), told apart by
    the `id` / `pod` label that relabeling keeps.
After both have every target, the script measures for --seconds: each
process's CPU, kiln's discovery thread CPU (kiln-sd) and the time its loop
thread spent syncing targets (kiln_sd_sync_seconds_total), kiln's missed
scrapes (kiln_scrape_missed_total), and the scrapes both did.

    python3 tests/bench/sd_vs_prometheus.py [--http-targets 10000] [--pods 5000] [--seconds 180]
"""
import argparse
import asyncio
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
from benchlib import KILN, free_port, start_until_ready  # noqa: E402
from kubeapi import KubeAPI, pod  # noqa: E402
from sdserver import Server  # noqa: E402

PROMETHEUS = "/usr/bin/prometheus"
CLK = os.sysconf("SC_CLK_TCK")


def exporter(port):
    """A minimal HTTP/1.1 /metrics endpoint on asyncio (keep-alive), in a thread."""
    body = b"sd_bench_up 1\n"
    resp = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: %d\r\n\r\n%s" % (
        len(body), body)

    async def handle(reader, writer):
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                if not head:
                    break
                writer.write(resp)
                await writer.drain()
        except Exception:
            pass
        writer.close()

    def run():
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        srv = loop.run_until_complete(asyncio.start_server(handle, "127.0.0.1", port, backlog=4096))
        loop.run_forever()
    threading.Thread(target=run, daemon=True).start()


def cpu_of(pid, tid=None):
    path = f"/proc/{pid}/task/{tid}/stat" if tid else f"/proc/{pid}/stat"
    with open(path) as f:
        parts = f.read().rsplit(")", 1)[1].split()
    return (int(parts[11]) + int(parts[12])) / CLK


def thread_named(pid, name):
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/comm") as f:
                if f.read().strip() == name:
                    return tid
        except OSError:
            pass
    return None


def metrics(port):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=30) as r:
        out = {}
        for line in r.read().decode().splitlines():
            if line and not line.startswith("#"):
                k, v = line.rsplit(" ", 1)
                out[k] = float(v)
        return out


def active(port):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/targets?state=active", timeout=120) as r:
        return len(json.load(r)["data"]["activeTargets"])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--http-targets", type=int, default=10000)
    ap.add_argument("--pods", type=int, default=5000)
    ap.add_argument("--seconds", type=int, default=180)
    ap.add_argument("--interval", default="60s")
    args = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="kiln-sd-bench-")
    eport = free_port()
    exporter(eport)
    target = f"127.0.0.1:{eport}"

    # HTTP SD: one group a target; churn moves ids forward at every refresh
    sd = Server()
    state = {"next": args.http_targets, "ids": list(range(args.http_targets))}
    lock = threading.Lock()

    def groups(req, h):
        with lock:
            ids = list(state["ids"])
        body = json.dumps([{"targets": [target], "labels": {"id": str(i)}} for i in ids])
        return 200, {"Content-Type": "application/json"}, body
    sd.route("/targets", groups)

    api = KubeAPI()
    token = os.path.join(tmp, "token")
    with open(token, "w") as f:
        f.write(api.token)
    names = [f"pod-{i}" for i in range(args.pods)]
    for n in names:
        api.put("pods", pod("bench", n, "127.0.0.1", [eport], {"app": "bench"}))
    pod_next = [args.pods]

    stop = threading.Event()

    def churn():
        # 10% a minute: every 6 s, 1% of each population
        while not stop.wait(6):
            k = max(1, args.http_targets // 100)
            with lock:
                for _ in range(k):
                    state["ids"].pop(random.randrange(len(state["ids"])))
                    state["ids"].append(state["next"])
                    state["next"] += 1
            for _ in range(max(1, args.pods // 100)):
                victim = names.pop(random.randrange(len(names)))
                api.delete("pods", "bench", victim)
                n = f"pod-{pod_next[0]}"
                pod_next[0] += 1
                names.append(n)
                api.put("pods", pod("bench", n, "127.0.0.1", [eport], {"app": "bench"}))

    cfg = f"""
global: {{scrape_interval: {args.interval}, scrape_timeout: 10s}}
scrape_configs:
  - job_name: http
    http_sd_configs: [{{url: "http://127.0.0.1:{sd.port}/targets", refresh_interval: 6s}}]
  - job_name: pods
    kubernetes_sd_configs:
      - {{role: pod, api_server: "{api.url}", bearer_token_file: {token}, namespaces: {{names: [bench]}}}}
    relabel_configs:
      - {{source_labels: [__meta_kubernetes_pod_container_port_number], regex: ".+", action: keep}}
      - {{source_labels: [__meta_kubernetes_pod_name], target_label: pod}}
"""
    # Debian's Prometheus 2.42 is built without Kubernetes discovery: it gets the HTTP SD job only
    prom_cfg = cfg[:cfg.index("  - job_name: pods")]
    servers = {}
    try:
        for name in ("kiln", "prometheus"):
            d = os.path.join(tmp, name)
            os.makedirs(d)
            with open(os.path.join(d, "cfg.yml"), "w") as f:
                f.write(cfg if name == "kiln" else prom_cfg)
            port = free_port()
            cmd = [KILN if name == "kiln" else PROMETHEUS, f"--config.file={d}/cfg.yml",
                   f"--storage.tsdb.path={d}/data", f"--web.listen-address=127.0.0.1:{port}"]
            proc, secs = start_until_ready(cmd, port)
            servers[name] = (proc, port)
        want = args.http_targets + args.pods
        t0 = time.time()
        for name, (proc, port) in servers.items():
            while active(port) < (want if name == "kiln" else args.http_targets):
                if time.time() - t0 > 600:
                    raise RuntimeError(f"{name} did not discover {want} targets")
                time.sleep(2)
        print(f"kiln discovered {want} targets, Prometheus {args.http_targets}, in {time.time() - t0:.1f} s")
        threading.Thread(target=churn, daemon=True).start()
        time.sleep(15)  # the churn under way
        kp, kport = servers["kiln"]
        pp, pport = servers["prometheus"]
        sd_tid = thread_named(kp.pid, "kiln-sd")
        m0k, m0p = metrics(kport), metrics(pport)
        c0 = (cpu_of(kp.pid), cpu_of(kp.pid, sd_tid), cpu_of(pp.pid))
        w0 = time.time()
        load0 = os.getloadavg()
        time.sleep(args.seconds)
        wall = time.time() - w0
        c1 = (cpu_of(kp.pid), cpu_of(kp.pid, sd_tid), cpu_of(pp.pid))
        m1k, m1p = metrics(kport), metrics(pport)
        load1 = os.getloadavg()
        d = lambda m1, m0, k: m1.get(k, 0) - m0.get(k, 0)  # noqa: E731
        sync = d(m1k, m0k, "kiln_sd_sync_seconds_total")
        sd_cpu = c1[1] - c0[1]
        res = {
            "targets": want, "seconds": round(wall, 1), "load_avg_1m": [round(load0[0], 2), round(load1[0], 2)],
            "kiln_cpu_core": round((c1[0] - c0[0]) / wall, 4),
            "prometheus_cpu_core": round((c1[2] - c0[2]) / wall, 4),
            "kiln_sd_thread_cpu_core": round(sd_cpu / wall, 4),
            "kiln_sd_sync_core": round(sync / wall, 4),
            "kiln_sd_total_core": round((sd_cpu + sync) / wall, 4),
            "kiln_scrapes": d(m1k, m0k, "kiln_scrapes_total"),
            "kiln_missed": d(m1k, m0k, "kiln_scrape_missed_total"),
            "kiln_late": d(m1k, m0k, "kiln_scrape_late_total"),
            "kiln_sd_updates": d(m1k, m0k, "kiln_sd_updates_total"),
            "prometheus_sd_http_cpu_note": "Prometheus runs the HTTP SD job only (no Kubernetes SD in Debian's build)",
            "kiln_active_end": active(kport), "prometheus_active_end": active(pport),
            "prometheus_scrapes": sum(v - m0p.get(k, 0) for k, v in m1p.items()
                                      if k.startswith("prometheus_target_interval_length_seconds_count")),
        }
        res["cpu_ratio_kiln_to_prometheus"] = round(res["kiln_cpu_core"] / max(res["prometheus_cpu_core"], 1e-9), 3)
        print(json.dumps(res, indent=1))
    finally:
        stop.set()
        for proc, _ in servers.values():
            proc.terminate()
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
        api.stop()
        sd.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
