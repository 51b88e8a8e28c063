#!/usr/bin/env python3
"""Memory held for one large /api/v1/query_range answer.

    python3 tests/bench/big_response.py [--series 20000] [--samples 240] [--kiln bin/kiln]

Starts kiln on a fresh directory, remote-writes <series> x <samples> samples
(15 s apart, ending now), then asks for all of them as a matrix
(query_range, step 15 s), once plain and once with Accept-Encoding: gzip, and
reports the answer's size and how much the process' peak resident memory
(VmHWM) rose for it. With the body written from the buffer it was built in
(no copy into the output, gzip in place of the plain text), the rise stays
near one answer's size plus the evaluated matrix, not two answers.
"""
import argparse
import http.client
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.parse

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
from benchlib import KILN, free_port, rss_of, wait_ready  # noqa: E402
from rwproto import write_body  # noqa: E402


def hwm(pid):
    return rss_of(pid, "VmHWM")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--series", type=int, default=20000)
    ap.add_argument("--samples", type=int, default=240)
    ap.add_argument("--kiln", default=KILN)
    a = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="kiln-bigresp-")
    port = free_port()
    with open(os.path.join(tmp, "kiln.yml"), "w") as f:
        f.write("global:\n  scrape_interval: 1h\n")
    p = subprocess.Popen([a.kiln, f"--config.file={tmp}/kiln.yml", f"--storage.tsdb.path={tmp}/data",
                          f"--web.listen-address=127.0.0.1:{port}", "--log.level=error"])
    try:
        wait_ready(port, p)
        end = int(time.time()) * 1000
        start = end - (a.samples - 1) * 15000
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
        for s0 in range(0, a.series, 500):
            body = write_body([([("__name__", "big"), ("i", str(i)), ("job", "bench")],
                                [(float(i + k), start + k * 15000) for k in range(a.samples)])
                               for i in range(s0, min(a.series, s0 + 500))])
            c.request("POST", "/api/v1/write", body=body)
            r = c.getresponse()
            r.read()
            assert r.status == 204, r.status
        q = urllib.parse.urlencode({"query": "big", "start": start / 1000, "end": end / 1000, "step": "15"})
        print(f"| answer | bytes | peak RSS before, MB | peak RSS after, MB | rise / answer size |")
        print(f"|---|---|---|---|---|")
        for enc in ("identity", "gzip"):
            before = hwm(p.pid)
            c.request("GET", "/api/v1/query_range?" + q, headers={"Accept-Encoding": enc})
            r = c.getresponse()
            data = r.read()
            assert r.status == 200, data[:200]
            after = hwm(p.pid)
            print(f"| {enc} | {len(data)} | {before / 1e6:.1f} | {after / 1e6:.1f} | "
                  f"{(after - before) / max(1, len(data)):.2f} |")
        c.close()
    finally:
        p.terminate()
        p.wait(30)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
