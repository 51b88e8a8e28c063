"""Shared pieces of the side-by-side benchmark drivers in tests/bench/."""
import os
import socket
import subprocess
import threading
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
KILN = os.path.join(ROOT, "bin/kiln")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def rss_of(pid, field="VmRSS"):
    """Resident memory of a process, bytes (field="VmHWM": its peak)."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    return 0


def wait_ready(port, proc=None, timeout=1800):
    """Seconds until http://127.0.0.1:port/-/ready answers 200."""
    t0 = time.time()
    while time.time() - t0 < timeout:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError("server exited before it was ready")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/-/ready", timeout=2) as r:
                if r.status == 200:
                    return time.time() - t0
        except Exception:
            pass
        time.sleep(0.05)
    raise RuntimeError("not ready in time")


READY_LINE = b"Server is ready to receive web requests"


def start_until_ready(cmd, port, timeout=1800):
    """Starts a server (kiln or Prometheus: both log READY_LINE) and returns
    (process, seconds from start to that log line).  Reading the log costs the
    server nothing, where polling /-/ready would compete with it for the CPU;
    one request then checks that /-/ready agrees."""
    t0 = time.time()
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    secs = None
    for line in p.stderr:
        if READY_LINE in line:
            secs = time.time() - t0
            break
    if secs is None:
        p.wait(60)
        raise RuntimeError("server exited before it was ready")
    # keep draining the log so the server never blocks on it
    threading.Thread(target=lambda: [None for _ in p.stderr], daemon=True).start()
    wait_ready(port, p, timeout)
    return p, secs


def rw_post(url, body):
    """POSTs a remote-write 1.0 request (body already snappy-compressed); raises unless 2xx."""
    req = urllib.request.Request(url, data=body, method="POST", headers={
        "Content-Type": "application/x-protobuf", "Content-Encoding": "snappy",
        "X-Prometheus-Remote-Write-Version": "0.1.0"})
    with urllib.request.urlopen(req, timeout=120) as r:
        if r.status // 100 != 2:
            raise RuntimeError(f"remote write: {r.status}")
