#!/usr/bin/env python3
"""TLS handshake + authenticated request, kiln vs Debian's Prometheus (2.42).

    python3 tests/bench/tls_vs_prometheus.py [--conns 2000] [--threads 4] [--key rsa|ec]

1. Makes a CA and a server certificate (RSA 2048 or ECDSA P-256) with the
   openssl CLI, a bcrypt hash (cost 10, the usual) and one web configuration
   file: TLS with that certificate, one basic-auth user.
2. Starts bin/kiln with --web.config.file, warms it up (the first request
   pays bcrypt; both servers cache the verdict), then opens --conns new TLS
   connections from --threads client threads, each a full handshake (no
   session resumption) and one authenticated GET, and closes it.  Server CPU
   (user + system, from /proc) and wall time are measured around the run.
   Then the same with `prometheus --web.config.file`: each runs alone.
3. Prints a Markdown table: connections/s and server CPU ms per connection,
   for GET /-/healthy and GET /api/v1/query?query=1.  The target is a CPU
   cost per connection within 1.5x of Prometheus'.
"""
import argparse
import base64
import os
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import warnings

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchlib import KILN, READY_LINE, free_port  # noqa: E402

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import crypt

PASSWORD = "bench password"
PATHS = ["/-/healthy", "/api/v1/query?query=1"]


def openssl(d, *args):
    subprocess.run(["openssl", *args], cwd=d, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def make_pki(d, key):
    newkey = ["-newkey", "rsa:2048"] if key == "rsa" else ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"]
    openssl(d, "req", "-x509", *newkey, "-nodes", "-keyout", "ca.key", "-out", "ca.crt", "-days", "2",
            "-subj", "/CN=bench CA")
    openssl(d, "req", *newkey, "-nodes", "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=localhost")
    with open(os.path.join(d, "ext.cnf"), "w") as f:
        f.write("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    openssl(d, "x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
            "-out", "server.crt", "-days", "2", "-extfile", "ext.cnf")
    h = crypt.crypt(PASSWORD, crypt.mksalt(crypt.METHOD_BLOWFISH, rounds=1024))
    with open(os.path.join(d, "web.yml"), "w") as f:
        f.write(f"tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n"
                f"basic_auth_users:\n  bench: {h}\n")
    with open(os.path.join(d, "empty.yml"), "w") as f:
        f.write("global:\n  scrape_interval: 1h\n")


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Client:
    def __init__(self, port, cafile):
        self.port = port
        self.ctx = ssl.create_default_context(cafile=cafile)
        auth = base64.b64encode(f"bench:{PASSWORD}".encode()).decode()
        self.req = ("GET {path} HTTP/1.1\r\nHost: localhost\r\nAuthorization: Basic " + auth +
                    "\r\nConnection: close\r\n\r\n")

    def one(self, path):
        with socket.create_connection(("127.0.0.1", self.port), timeout=30) as s:
            with self.ctx.wrap_socket(s, server_hostname="localhost") as t:
                t.sendall(self.req.format(path=path).encode())
                data = b""
                while True:
                    try:
                        b = t.recv(65536)
                    except (ssl.SSLEOFError, ConnectionResetError):
                        break
                    if not b:
                        break
                    data += b
        if not data.startswith(b"HTTP/1.1 200"):
            raise RuntimeError(f"{path}: {data[:200]!r}")

    def run(self, path, n, threads):
        errors = []

        def work(k):
            try:
                for _ in range(k):
                    self.one(path)
            except Exception as e:  # noqa: BLE001 - reported below
                errors.append(e)

        per = [n // threads + (1 if i < n % threads else 0) for i in range(threads)]
        ts = [threading.Thread(target=work, args=(k,)) for k in per]
        t0 = time.time()
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        if errors:
            raise errors[0]
        return time.time() - t0


def start(cmd, port, d):
    p = subprocess.Popen(cmd, cwd=d, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    for line in p.stderr:
        if READY_LINE in line:
            break
    else:
        raise RuntimeError(f"{cmd[0]} exited before it was ready")
    threading.Thread(target=lambda: [None for _ in p.stderr], daemon=True).start()
    return p


def measure(name, cmd, port, d, args):
    p = start(cmd, port, d)
    try:
        c = Client(port, os.path.join(d, "ca.crt"))
        out = {}
        for path in PATHS:
            c.run(path, 50, 1)  # warm-up: bcrypt once, caches, code paths
            cpu0 = cpu_seconds(p.pid)
            wall = c.run(path, args.conns, args.threads)
            cpu = cpu_seconds(p.pid) - cpu0
            out[path] = (args.conns / wall, cpu * 1000 / args.conns)
            print(f"{name} {path}: {args.conns / wall:.0f} conns/s, {cpu * 1000 / args.conns:.3f} ms CPU/conn",
                  file=sys.stderr)
        return out
    finally:
        p.terminate()
        p.wait(30)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--conns", type=int, default=2000)
    ap.add_argument("--threads", type=int, default=4)
    ap.add_argument("--key", choices=["rsa", "ec"], default="rsa")
    args = ap.parse_args()
    d = tempfile.mkdtemp(prefix="kiln-bench-tls-")
    try:
        make_pki(d, args.key)
        web = os.path.join(d, "web.yml")
        port = free_port()
        k = measure("kiln", [KILN, f"--web.listen-address=127.0.0.1:{port}", f"--web.config.file={web}",
                             f"--config.file={os.path.join(d, 'empty.yml')}",
                             f"--storage.tsdb.path={os.path.join(d, 'kiln-data')}"], port, d, args)
        port = free_port()
        p = measure("prometheus", ["prometheus", f"--web.listen-address=127.0.0.1:{port}",
                                   f"--web.config.file={web}", f"--config.file={os.path.join(d, 'empty.yml')}",
                                   f"--storage.tsdb.path={os.path.join(d, 'prom-data')}"], port, d, args)
    finally:
        shutil.rmtree(d, ignore_errors=True)
    key = "RSA 2048" if args.key == "rsa" else "ECDSA P-256"
    print(f"\n{args.conns} new TLS connections ({key}), {args.threads} client threads, one authenticated GET "
          "each\n")
    print("| what is measured | kiln | Prometheus | ratio |")
    print("|---|---|---|---|")
    for path in PATHS:
        (kr, kc), (pr, pc) = k[path], p[path]
        print(f"| `{path}`: connections/s | {kr:,.0f} | {pr:,.0f} | {kr / pr:.2f} |")
        print(f"| `{path}`: server CPU per connection, ms | {kc:.3f} | {pc:.3f} | {kc / pc:.2f} |")


if __name__ == "__main__":
    main()
