"""Histogram series for the interchange tests: the same samples go to
Prometheus 2.42 and to kiln (remote write), and each side's directory is
read by the other.  `python3 histfixture.py OUT` also runs Prometheus once
and writes the chunks it cut (chunks_head) as hex lines for the unit tests'
fixtures: "name enc header hex"."""
import os
import signal
import struct
import subprocess
import sys
import tempfile
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from histproto import make_hist, write_body_hist  # noqa: E402

STEP = 15000
N = 300


def series_samples(t0, gauge=True):
    """[(name, [(h, t)])]: the cases the chunk rules turn on.  Prometheus 2.42
    cannot write a block holding the gauge (its block writer takes a gauge's
    falling counts for an unexpected counter reset): gauge=False leaves it out."""
    out = []
    # steady growth: chunks cut by count, not-reset headers
    out.append(("h_steady", [(make_hist(i), t0 + i * STEP) for i in range(N)]))
    # a counter reset at 50, a stale marker at 200 and data again after it
    rs = []
    for i in range(N):
        h = make_hist(i, seed=1, reset_at=50)
        if i == 200:
            h = dict(h, sum=struct.unpack("<d", struct.pack("<Q", 0x7ff0000000000002))[0])
        rs.append((h, t0 + i * STEP))
    out.append(("h_reset", rs))
    # buckets appear at 30 (recode) and the schema changes at 90 (a new chunk)
    lay = []
    for i in range(N):
        nb, schema, off = (8, 3, -3) if i < 30 else (10, 3, -4) if i < 90 else (10, 2, -4)
        lay.append((make_hist(i, nbuckets=nb, schema=schema, seed=2, offset=off), t0 + i * STEP))
    out.append(("h_layout", lay))
    # float histograms
    out.append(("h_float", [(make_hist(i, is_int=False, seed=3), t0 + i * STEP) for i in range(N)]))
    # a gauge histogram: counts up and down, buckets that come and go
    g = []
    for i in range(N):
        h = make_hist(i % 37, nbuckets=6 + (i // 20) % 3 * 2, seed=4, offset=-3 + (i // 25) % 2, is_int=(i // 150) % 2 == 0)
        g.append((dict(h, hint=3), t0 + i * STEP))
    if gauge:
        out.append(("h_gauge", g))
    return out


def send(url, series, lo, hi):
    body = write_body_hist([([("__name__", name), ("job", "fixture")], [s for s in smp[lo:hi]])
                            for name, smp in series])
    req = urllib.request.Request(url, data=body, method="POST", headers={
        "Content-Type": "application/x-protobuf", "Content-Encoding": "snappy",
        "X-Prometheus-Remote-Write-Version": "0.1.0"})
    with urllib.request.urlopen(req, timeout=30) as r:
        r.read()


def send_all(url, series, batch=10):
    """In time order, a few timestamps a request, so every sample is in the head's window."""
    for lo in range(0, N, batch):
        send(url, series, lo, lo + batch)


def start_t0():
    """A chunk-range boundary (2 h) so chunk cuts are predictable, with all samples in the past."""
    now = int(time.time() * 1000)
    rng = 2 * 3600 * 1000
    return (now - 2 * rng) // rng * rng


def parse_head_chunks(path):
    """Prometheus' chunks_head file: [(series_ref, mint, maxt, enc, data)]."""
    b = open(path, "rb").read()
    out, off = [], 8
    while off + 25 < len(b):
        ref, mint, maxt = struct.unpack(">QqQ", b[off:off + 24])
        if ref == 0 and mint == 0 and maxt == 0:
            break
        enc = b[off + 24]
        i, n, s = off + 25, 0, 0
        while True:
            n |= (b[i] & 0x7F) << s
            s += 7
            i += 1
            if b[i - 1] < 0x80:
                break
        out.append((ref, mint, maxt, enc, b[i:i + n]))
        off = i + n + 4
    return out


def run_prometheus(port, data):
    return subprocess.Popen(["/usr/bin/prometheus", "--enable-feature=native-histograms",
                             "--web.enable-remote-write-receiver", f"--web.listen-address=127.0.0.1:{port}",
                             f"--storage.tsdb.path={data}", "--config.file=/dev/null"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def main(out_path):
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    tmp = tempfile.mkdtemp(prefix="histfixture-")
    cfg = os.path.join(tmp, "p.yml")
    open(cfg, "w").write("global: {}\n")
    p = subprocess.Popen(["/usr/bin/prometheus", "--enable-feature=native-histograms",
                          "--web.enable-remote-write-receiver", f"--web.listen-address=127.0.0.1:{port}",
                          f"--storage.tsdb.path={tmp}/data", f"--config.file={cfg}"],
                         stdout=open(os.path.join(tmp, "log"), "w"), stderr=subprocess.STDOUT)
    try:
        for _ in range(200):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/-/ready", timeout=1).read()
                break
            except OSError:
                time.sleep(0.1)
        series = series_samples(start_t0())
        send_all(f"http://127.0.0.1:{port}/api/v1/write", series)
    finally:
        p.send_signal(signal.SIGTERM)
        p.wait(30)
    names = {i + 1: name for i, (name, _) in enumerate(series)}
    chunks = parse_head_chunks(os.path.join(tmp, "data", "chunks_head", "000001"))
    with open(out_path, "w") as f:
        for ref, mint, maxt, enc, data in chunks:
            f.write(f"{names.get(ref, ref)} {enc} {mint - series[0][1][0][1]} {maxt - series[0][1][0][1]} "
                    f"{data.hex()}\n")
    print(tmp)


if __name__ == "__main__":
    main(sys.argv[1])
