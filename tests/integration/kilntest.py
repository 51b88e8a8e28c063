"""Shared harness for kiln's integration tests: start the real binary on a
free port with a temporary data directory, talk HTTP to it, stop it.

Every test class gets its own kiln; cleanup runs even when a test fails.
"""
import gzip
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import unittest
import urllib.error
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PROMETHEUS = "/usr/bin/prometheus"
NODE_EXPORTER = "/usr/bin/prometheus-node-exporter"
KILN_BIN = os.environ.get("KILN_BIN", os.path.join(ROOT, "build", "asan", "kiln"))


def require(*tools):
    """Fails the calling test when a tool it compares kiln with is missing.
    `make deps` installs them all, so a missing one is a broken setup, not a
    reason to skip.  A tool is a name looked up in $PATH or an absolute path."""
    missing = [t for t in tools if not (os.access(t, os.X_OK) if os.path.isabs(t) else shutil.which(t))]
    if missing:
        raise AssertionError(f"not installed: {', '.join(missing)} (`make deps` installs them)")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Kiln:
    """A running kiln process."""

    def __init__(self, args=(), config=None, workdir=None, data_dir=None):
        self.tmp = tempfile.mkdtemp(prefix="kiln-test-")
        self.workdir = workdir or self.tmp
        self.data = data_dir or os.path.join(self.tmp, "data")
        self.port = free_port()
        self.addr = f"127.0.0.1:{self.port}"
        self.config_path = os.path.join(self.tmp, "kiln.yml")
        if config is not None:
            with open(self.config_path, "w") as f:
                f.write(config)
        self.args = [KILN_BIN, f"--web.listen-address={self.addr}", f"--storage.tsdb.path={self.data}",
                     f"--config.file={self.config_path}"] + list(args)
        self.log_path = os.path.join(self.tmp, "kiln.log")
        self.proc = None

    def start(self, wait_ready=True, timeout=20):
        self.log = open(self.log_path, "ab")
        env = dict(os.environ)
        env.setdefault("ASAN_OPTIONS", "detect_leaks=1")
        # a config named by --config.file must exist; without one, kiln's embedded default serves
        args = [a for a in self.args if a != f"--config.file={self.config_path}" or os.path.exists(self.config_path)]
        self.proc = subprocess.Popen(args, stdout=self.log, stderr=subprocess.STDOUT, cwd=self.workdir, env=env)
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"kiln exited with {self.proc.returncode}:\n{self.read_log()}")
            try:
                st, _, _ = self.get("/-/ready" if wait_ready else "/-/healthy")
                if st == 200:
                    return self
            except OSError:
                pass
            time.sleep(0.05)
        raise RuntimeError("kiln did not become ready:\n" + self.read_log())

    def read_log(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def request(self, method, path, body=None, headers=None, timeout=30):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            c.request(method, path, body=body, headers=headers or {})
            r = c.getresponse()
            data = r.read()
            if r.getheader("Content-Encoding") == "gzip":
                data = gzip.decompress(data)
            return r.status, {k.lower(): v for k, v in r.getheaders()}, data
        finally:
            c.close()

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def post(self, path, body=b"", **kw):
        return self.request("POST", path, body=body, **kw)

    def get_json(self, path):
        st, _, body = self.get(path)
        return st, json.loads(body)

    def metrics(self):
        """Parses /metrics into {series text: value}."""
        st, _, body = self.get("/metrics")
        assert st == 200, st
        out = {}
        for line in body.decode().splitlines():
            if not line or line.startswith("#"):
                continue
            k, v = line.rsplit(" ", 1)
            out[k] = float(v)
        return out

    def send_signal(self, sig):
        self.proc.send_signal(sig)

    def stop(self, sig=signal.SIGTERM, timeout=10):
        """Stops kiln; returns its exit code (None if it had to be killed)."""
        if not self.proc or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            return None

    def finish(self):
        """Stops kiln, removes its files, and fails (with the log's tail) unless it
        exited with 0 on SIGTERM: the end of a test class that owns a kiln."""
        code = self.stop()
        log = self.read_log()
        self.cleanup()
        if code != 0:
            raise AssertionError(f"kiln exited with {code} on SIGTERM:\n{log[-4000:]}")

    def cleanup(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        if getattr(self, "log", None):
            self.log.close()
        shutil.rmtree(self.tmp, ignore_errors=True)


class KilnTestCase(unittest.TestCase):
    """A test class with one kiln started for all its tests (setUpClass)."""
    kiln_args = ()
    kiln_config = None

    @classmethod
    def make_kiln(cls):
        return Kiln(args=cls.kiln_args, config=cls.kiln_config)

    @classmethod
    def setUpClass(cls):
        cls.kiln = cls.make_kiln()
        try:
            cls.kiln.start()
        except Exception:
            cls.kiln.cleanup()
            raise

    @classmethod
    def tearDownClass(cls):
        cls.kiln.finish()


def raw_exchange(port, data, timeout=5, read_until_close=True):
    """Sends raw bytes, returns everything read until close or timeout."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        s.sendall(data)
        chunks = []
        while True:
            try:
                b = s.recv(65536)
            except socket.timeout:
                break
            if not b:
                break
            chunks.append(b)
            if not read_until_close:
                break
        return b"".join(chunks)
    finally:
        s.close()


def wait_for(pred, timeout=30, step=0.05):
    deadline = time.time() + timeout
    while time.time() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(step)
    return None


class Process:
    def __init__(self, args, log_path):
        self.log = open(log_path, "ab")
        self.log_path = log_path
        self.proc = subprocess.Popen(args, stdout=self.log, stderr=subprocess.STDOUT)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()

    def read_log(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")


def http_get(url, timeout=10):
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()
    except OSError:
        return None, b""


class Prometheus:
    """Debian's prometheus on a free port with its own data dir, as a peer:
        with Prometheus(config_yaml, args=[...]) as p: ... p.url ...
    The config is written to a temporary dir, removed on exit."""

    def __init__(self, config, args=()):
        require("prometheus")
        self.dir = tempfile.mkdtemp(prefix="kiln-test-prom-")
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        with open(os.path.join(self.dir, "prometheus.yml"), "w") as f:
            f.write(config)
        self.args = ["prometheus", f"--config.file={self.dir}/prometheus.yml",
                     f"--storage.tsdb.path={self.dir}/data", f"--web.listen-address=127.0.0.1:{self.port}"] + list(args)

    def __enter__(self):
        self.proc = Process(self.args, os.path.join(self.dir, "prometheus.log"))
        if not wait_for(lambda: http_get(self.url + "/-/ready", timeout=2)[0] == 200, timeout=30):
            self.__exit__()
            raise RuntimeError("prometheus did not become ready")
        return self

    def __exit__(self, *exc):
        self.proc.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def query(self, path):
        """GET url+path, the JSON answer's data."""
        st, body = http_get(self.url + path)
        if st != 200:
            raise OSError(f"prometheus answered {st}: {body[:200]!r}")
        return json.loads(body)["data"]
