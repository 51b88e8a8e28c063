"""TLS and basic authentication on kiln's HTTP server (--web.config.file),
with real peers: curl over TLS against a CA made here with the openssl CLI,
mutual TLS, Debian's Prometheus 2.42 scraping kiln through TLS and basic
auth, certificate reload, and promtool's `check web-config` on the same
files kiln loads.
"""
import json
import os
import shutil
import ssl
import subprocess
import tempfile
import time
import unittest
import urllib.parse
import warnings

from kilntest import Kiln, KilnTestCase, Process, free_port, http_get, raw_exchange, require, wait_for

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import crypt

PROMETHEUS = "/usr/bin/prometheus"
PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"
PKI = None  # the module's certificates: setUpModule


def openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def make_cert(d, name, ca, sans, cn=None):
    """name.key and name.crt in d, signed by ca (ca.key/ca.crt in d)."""
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.csr",
            "-subj", f"/CN={cn or name}", cwd=d)
    with open(os.path.join(d, f"{name}.ext"), "w") as f:
        f.write(f"subjectAltName={sans}\n")
    openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.crt", "-CAkey", f"{ca}.key", "-CAcreateserial",
            "-out", f"{name}.crt", "-days", "2", "-extfile", f"{name}.ext", cwd=d)


def make_ca(d, name):
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.crt",
            "-days", "2", "-subj", f"/CN={name}", cwd=d)


def setUpModule():
    global PKI
    require("openssl", "curl", PROMETHEUS, PROMTOOL)
    PKI = tempfile.mkdtemp(prefix="kiln-pki-")
    make_ca(PKI, "ca")
    make_ca(PKI, "otherca")
    make_cert(PKI, "server", "ca", "DNS:localhost,IP:127.0.0.1")
    make_cert(PKI, "server2", "ca", "DNS:localhost,IP:127.0.0.1", cn="server two")
    make_cert(PKI, "client", "ca", "DNS:client.example")
    make_cert(PKI, "intruder", "ca", "DNS:intruder.example,IP:10.1.2.3")
    make_cert(PKI, "named", "ca", "DNS:kiln.test")
    make_cert(PKI, "stranger", "otherca", "DNS:client.example")


def tearDownModule():
    if PKI:
        shutil.rmtree(PKI, ignore_errors=True)


def pki(name):
    return os.path.join(PKI, name)


PASSWORD = "s3cret pass"


def bcrypt(password, rounds=1024):
    return crypt.crypt(password, crypt.mksalt(crypt.METHOD_BLOWFISH, rounds=rounds))


class TlsKiln(Kiln):
    """A kiln serving HTTPS with a web configuration; requests go through
    Python's ssl with the test CA and, when users are set, alice's password."""

    def __init__(self, web_yaml, user=("alice", PASSWORD), client_cert=None, **kw):
        kw.setdefault("config", "")
        super().__init__(**kw)
        self.web_path = os.path.join(self.tmp, "web.yml")
        with open(self.web_path, "w") as f:
            f.write(web_yaml)
        self.args.append(f"--web.config.file={self.web_path}")
        self.user = user
        self.ctx = ssl.create_default_context(cafile=pki("ca.crt"))
        if client_cert:
            self.ctx.load_cert_chain(pki(client_cert + ".crt"), pki(client_cert + ".key"))

    def request(self, method, path, body=None, headers=None, timeout=30):
        import base64
        import http.client
        h = dict(headers or {})
        if self.user:
            h["Authorization"] = "Basic " + base64.b64encode(":".join(self.user).encode()).decode()
        c = http.client.HTTPSConnection("localhost", self.port, timeout=timeout, context=self.ctx)
        try:
            c.request(method, path, body=body, headers=h)
            r = c.getresponse()
            return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
        finally:
            c.close()

    def curl(self, path, *args):
        """(exit code, HTTP status, headers and body) of curl over TLS."""
        p = subprocess.run(["curl", "-sS", "-i", "--max-time", "20", "-w", "\n%{http_code}", *args,
                            f"https://localhost:{self.port}{path}"], capture_output=True, text=True)
        out = p.stdout.rsplit("\n", 1)
        return p.returncode, int(out[-1]) if out[-1].isdigit() else 0, out[0]


def web_config(extra="", users=True, tls=True):
    y = ""
    if tls:
        y += f"tls_server_config:\n  cert_file: {pki('server.crt')}\n  key_file: {pki('server.key')}\n"
    y += extra
    if users:
        y += f"basic_auth_users:\n  alice: {HASH}\n  bob: {bcrypt('bobs password')}\n  slow: {SLOW_HASH}\n"
    return y


HASH = None
SLOW_HASH = None  # cost 15: a second or more of bcrypt for each check


def hash_once():
    global HASH, SLOW_HASH
    if HASH is None:
        HASH = bcrypt(PASSWORD)
        SLOW_HASH = bcrypt("slow password", rounds=1 << 15)
    return HASH


class TlsKilnCase(KilnTestCase):
    web_extra = ""
    users = True
    tls = True
    client_cert = None

    @classmethod
    def web_yaml(cls):
        hash_once()
        return web_config(cls.web_extra, cls.users, cls.tls)

    @classmethod
    def make_kiln(cls):
        return TlsKiln(cls.web_yaml(), client_cert=cls.client_cert, args=cls.kiln_args)


class MutualTlsCase(TlsKilnCase):
    """kiln requiring client certificates of the test CA (and mtls_extra);
    the harness presents client.crt."""
    users = False
    client_cert = "client"
    mtls_extra = ""

    @classmethod
    def web_yaml(cls):
        return (f"tls_server_config:\n  cert_file: {pki('server.crt')}\n  key_file: {pki('server.key')}\n"
                f"  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: {pki('ca.crt')}\n"
                + cls.mtls_extra)


class TestTlsBasicAuth(TlsKilnCase):
    web_extra = ("http_server_config:\n  http2: false\n  headers:\n    X-Frame-Options: deny\n"
                 "    Strict-Transport-Security: max-age=300\n")

    def test_curl_good_password(self):
        rc, status, out = self.kiln.curl("/-/healthy", "--cacert", pki("ca.crt"), "-u", f"alice:{PASSWORD}")
        self.assertEqual((rc, status), (0, 200), out)
        self.assertIn("Healthy", out)
        # the configured headers are on every answer
        self.assertIn("X-Frame-Options: deny", out)
        self.assertIn("Strict-Transport-Security: max-age=300", out)
        # and the query API answers through TLS and auth
        rc, status, out = self.kiln.curl("/api/v1/query?query=1%2B1", "--cacert", pki("ca.crt"), "-u",
                                         f"bob:bobs password")
        self.assertEqual((rc, status), (0, 200), out)
        self.assertEqual(json.loads(out.split("\n\n", 1)[1])["data"]["result"][1], "2")

    def test_curl_bad_or_missing_password(self):
        for args in ((), ("-u", "alice:wrong"), ("-u", "mallory:" + PASSWORD), ("-u", "bob:" + PASSWORD),
                     ("-H", "Authorization: Bearer x")):
            # twice: the second answer comes from the cache of verdicts
            for _ in range(2):
                rc, status, out = self.kiln.curl("/-/healthy", "--cacert", pki("ca.crt"), *args)
                self.assertEqual((rc, status), (0, 401), (args, out))
                self.assertIn("WWW-Authenticate: Basic", out)
                self.assertTrue(out.endswith("Unauthorized\n"), out)
        # every endpoint, unknown paths included, wants a user
        for path in ("/metrics", "/api/v1/status/buildinfo", "/-/ready", "/nowhere"):
            rc, status, out = self.kiln.curl(path, "--cacert", pki("ca.crt"))
            self.assertEqual(status, 401, (path, out))

    def test_password_checked_after_cache(self):
        # a good password, cached, does not let a wrong one through for the same user
        for pw, want in ((PASSWORD, 200), ("x" + PASSWORD, 401), (PASSWORD, 200)):
            rc, status, out = self.kiln.curl("/-/healthy", "--cacert", pki("ca.crt"), "-u", f"alice:{pw}")
            self.assertEqual(status, want, out)

    def test_bcrypt_off_the_loop(self):
        # while a slow bcrypt runs for one request, a request whose
        # credentials are cached is answered: bcrypt does not hold the loop
        import threading
        self.assertEqual(self.kiln.get("/-/healthy")[0], 200)  # alice, now cached
        done = threading.Event()
        result = []

        def slow():
            # the slow hash takes seconds, and many more for an ASan build on a loaded machine:
            # a later --max-time wins over the helper's 20 s
            result.append(self.kiln.curl("/-/healthy", "--cacert", pki("ca.crt"), "-u", "slow:wrong",
                                         "--max-time", "120")[1])
            done.set()

        t = threading.Thread(target=slow)
        t.start()
        time.sleep(0.5)  # for curl to connect and send; its bcrypt then takes seconds
        answered = [self.kiln.get("/-/healthy")[0] for _ in range(3)]
        slow_still_running = not done.is_set()
        t.join(150)
        self.assertEqual(answered, [200] * 3)
        self.assertTrue(slow_still_running, "the slow check ended before the cached requests were answered")
        self.assertEqual(result, [401])

    def test_untrusted_and_plain_clients(self):
        # without the CA curl refuses kiln's certificate
        rc, status, out = self.kiln.curl("/-/healthy")
        self.assertEqual(rc, 60, out)
        # plain HTTP to the TLS port: Go's answer, then the connection closes
        got = raw_exchange(self.kiln.port, b"GET /-/healthy HTTP/1.1\r\nHost: x\r\n\r\n")
        self.assertTrue(got.startswith(b"HTTP/1.0 400 Bad Request"), got)
        self.assertIn(b"Client sent an HTTP request to an HTTPS server.", got)
        # garbage instead of a handshake closes the connection; kiln goes on serving
        got = raw_exchange(self.kiln.port, b"\x16\x03\x01\x00\x05hello" + b"\x00" * 64)
        self.assertNotIn(b"HTTP/", got)
        self.assertEqual(self.kiln.get("/-/healthy")[0], 200)

    def test_http2_warned(self):
        self.assertTrue(wait_for(lambda: "web configuration key is parsed but not acted on" in
                                 self.kiln.read_log(), 5), self.kiln.read_log())
        self.assertIn("key=http_server_config.http2", self.kiln.read_log())

    def test_keepalive_and_large_answer(self):
        import http.client
        import base64
        c = http.client.HTTPSConnection("localhost", self.kiln.port, timeout=30, context=self.kiln.ctx)
        auth = {"Authorization": "Basic " + base64.b64encode(f"alice:{PASSWORD}".encode()).decode()}
        try:
            for _ in range(3):  # one TLS session, several requests
                c.request("GET", "/metrics", headers=auth)
                r = c.getresponse()
                body = r.read()
                self.assertEqual(r.status, 200)
                self.assertIn(b"kiln_http_requests_total", body)
            # an answer larger than the write chunk and a TLS record (three series of 10,001 points)
            q = urllib.parse.quote('vector(1) or label_replace(vector(1), "a", "b", "", "")'
                                   ' or label_replace(vector(1), "a", "c", "", "")')
            c.request("GET", "/api/v1/query_range?query=" + q + "&start=0&end=10000&step=1", headers=auth)
            r = c.getresponse()
            body = r.read()
            self.assertEqual(r.status, 200, body[:300])
            self.assertGreater(len(body), 300000)
            res = json.loads(body)["data"]["result"]
            self.assertEqual([len(x["values"]) for x in res], [10001] * 3)
        finally:
            c.close()


class TestMutualTls(MutualTlsCase):
    mtls_extra = "  min_version: TLS13\n"
    kiln_args = ("--log.level=debug",)

    def curl_with(self, *args):
        return self.kiln.curl("/-/healthy", "--cacert", pki("ca.crt"), *args)

    def test_client_certificate_required(self):
        rc, status, out = self.curl_with("--cert", pki("client.crt"), "--key", pki("client.key"))
        self.assertEqual((rc, status), (0, 200), out)
        # no certificate, or one from another CA: the handshake fails
        rc, status, out = self.curl_with()
        self.assertNotEqual(rc, 0, out)
        self.assertEqual(status, 0)
        rc, status, out = self.curl_with("--cert", pki("stranger.crt"), "--key", pki("stranger.key"))
        self.assertNotEqual(rc, 0, out)
        # handshake failures are the client's business: logged at debug only
        self.assertTrue(wait_for(lambda: "TLS handshake error" in self.kiln.read_log(), 5), self.kiln.read_log())
        self.assertIn("level=debug", next(ln for ln in self.kiln.read_log().splitlines()
                                          if "TLS handshake error" in ln))
        self.assertEqual(self.kiln.get("/-/healthy")[0], 200)

    def test_min_version(self):
        rc, status, out = self.curl_with("--cert", pki("client.crt"), "--key", pki("client.key"), "--tls-max",
                                         "1.2")
        self.assertEqual(rc, 35, out)  # SSL connect error: kiln speaks TLS 1.3 only here


class TestAllowedSans(MutualTlsCase):
    mtls_extra = "  client_allowed_sans: [someone.else, client.example]\n"

    def test_san_allowed_or_not(self):
        rc, status, out = self.kiln.curl("/-/healthy", "--cacert", pki("ca.crt"), "--cert", pki("client.crt"),
                                         "--key", pki("client.key"))
        self.assertEqual((rc, status), (0, 200), out)
        # signed by the trusted CA, but its SANs are not among the allowed
        rc, status, out = self.kiln.curl("/-/healthy", "--cacert", pki("ca.crt"), "--cert", pki("intruder.crt"),
                                         "--key", pki("intruder.key"))
        self.assertEqual(status, 0, out)
        self.assertNotEqual(rc, 0, out)


class TestCiphersAndCurves(TlsKilnCase):
    users = False
    web_extra = ("  max_version: TLS12\n  cipher_suites: [TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384]\n"
                 "  curve_preferences: [CurveP384]\n")

    def curl_with(self, *args):
        return self.kiln.curl("/-/healthy", "--cacert", pki("ca.crt"), "--tls-max", "1.2", *args)

    def test_only_the_configured_ones(self):
        rc, status, out = self.curl_with("--ciphers", "ECDHE-RSA-AES256-GCM-SHA384", "--curves", "P-384")
        self.assertEqual((rc, status), (0, 200), out)
        # a suite or a curve kiln was not given: no handshake
        rc, status, out = self.curl_with("--ciphers", "ECDHE-RSA-AES128-GCM-SHA256")
        self.assertEqual(rc, 35, out)
        rc, status, out = self.curl_with("--curves", "X25519")
        self.assertEqual(rc, 35, out)


class TestCertificateReload(unittest.TestCase):
    def test_new_connections_see_new_certificate(self):
        d = tempfile.mkdtemp(prefix="kiln-reload-")
        try:
            for f in ("server.crt", "server.key"):
                shutil.copy(pki(f), os.path.join(d, f))
            k = TlsKiln("tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n", user=None)
            # relative names are the web configuration file's directory's
            shutil.move(k.web_path, os.path.join(d, "web.yml"))
            k.args[-1] = f"--web.config.file={os.path.join(d, 'web.yml')}"
            try:
                k.start()

                def served():
                    return ssl.PEM_cert_to_DER_cert(ssl.get_server_certificate(("127.0.0.1", k.port)))

                def of(name):
                    with open(pki(name)) as f:
                        return ssl.PEM_cert_to_DER_cert(f.read())

                self.assertEqual(served(), of("server.crt"))
                # an open connection keeps its session while the files change
                import http.client
                c = http.client.HTTPSConnection("localhost", k.port, timeout=10, context=k.ctx)
                c.request("GET", "/-/healthy")
                self.assertEqual(c.getresponse().read(), b"kiln is Healthy.\n")
                for f in ("crt", "key"):  # replaced as cert managers do: a new file renamed over
                    shutil.copy(pki("server2." + f), os.path.join(d, "new." + f))
                    os.rename(os.path.join(d, "new." + f), os.path.join(d, "server." + f))
                self.assertEqual(served(), of("server2.crt"))
                c.request("GET", "/-/healthy")
                self.assertEqual(c.getresponse().status, 200)
                c.close()
                self.assertIn("TLS certificate reloaded", k.read_log())
                # a broken pair is refused and the last good one kept
                with open(os.path.join(d, "server.key"), "w") as f:
                    f.write("not a key\n")
                self.assertEqual(served(), of("server2.crt"))
                self.assertIn("TLS certificate reload failed", k.read_log())
                self.assertEqual(k.stop(), 0, k.read_log()[-3000:])
            finally:
                k.cleanup()
        finally:
            shutil.rmtree(d, ignore_errors=True)


class TestPrometheusScrapesKiln(TlsKilnCase):
    """Prometheus 2.42 scrapes kiln's /metrics over TLS with basic auth."""

    def test_up(self):
        tmp = tempfile.mkdtemp(prefix="kiln-prom-")
        port = free_port()
        cfg = os.path.join(tmp, "prometheus.yml")
        with open(cfg, "w") as f:
            f.write(f"""
global:
  scrape_interval: 1s
scrape_configs:
  - job_name: kiln
    scheme: https
    tls_config:
      ca_file: {pki('ca.crt')}
      server_name: localhost
      min_version: TLS12
    basic_auth:
      username: alice
      password: "{PASSWORD}"
    static_configs:
      - targets: ["127.0.0.1:{self.kiln.port}"]
  - job_name: kiln-wrong-password
    scheme: https
    tls_config:
      ca_file: {pki('ca.crt')}
    basic_auth:
      username: alice
      password: wrong
    static_configs:
      - targets: ["localhost:{self.kiln.port}"]
""")
        prom = Process([PROMETHEUS, f"--config.file={cfg}", f"--storage.tsdb.path={os.path.join(tmp, 'data')}",
                        f"--web.listen-address=127.0.0.1:{port}"], os.path.join(tmp, "prometheus.log"))
        try:
            def up(job):
                st, body = http_get(f"http://127.0.0.1:{port}/api/v1/query?" +
                                    urllib.parse.urlencode({"query": f'up{{job="{job}"}}'}))
                if st != 200:
                    return None
                r = json.loads(body)["data"]["result"]
                return r[0]["value"][1] if r else None

            self.assertEqual(wait_for(lambda: up("kiln") == "1", 30) and up("kiln"), "1", prom.read_log()[-3000:])
            self.assertEqual(wait_for(lambda: up("kiln-wrong-password"), 30), "0")
            st, body = http_get(f"http://127.0.0.1:{port}/api/v1/targets")
            errs = {t["labels"]["job"]: t["lastError"] for t in json.loads(body)["data"]["activeTargets"]}
            self.assertEqual(errs["kiln"], "")
            self.assertIn("401", errs["kiln-wrong-password"])
            # and the scraped samples are kiln's own
            st, body = http_get(f"http://127.0.0.1:{port}/api/v1/query?query=kiln_http_open_connections")
            self.assertEqual(st, 200)
            self.assertTrue(json.loads(body)["data"]["result"])
        finally:
            prom.stop()
            shutil.rmtree(tmp, ignore_errors=True)


class TestScrapeTls(unittest.TestCase):
    """kiln's scrapes apply tls_config's server_name and min_version: kiln
    scrapes itself at 127.0.0.1 while its certificate names only kiln.test
    and it speaks TLS 1.2 at most."""

    def test_server_name_and_min_version(self):
        k = TlsKiln(f"tls_server_config:\n  cert_file: {pki('named.crt')}\n  key_file: {pki('named.key')}\n"
                    "  max_version: TLS12\n", user=None)
        k.ctx.check_hostname = False  # the harness's own requests go to 127.0.0.1
        jobs = {"sni": "server_name: kiln.test", "no-sni": "", "wrong-name": "server_name: other.test",
                "tls13": "server_name: kiln.test\n      min_version: TLS13",
                "tls12": "server_name: kiln.test\n      min_version: TLS12"}
        cfg = "scrape_configs:\n"
        for job, tls in jobs.items():
            cfg += (f"  - job_name: {job}\n    scrape_interval: 1s\n    scheme: https\n"
                    f"    tls_config:\n      ca_file: {pki('ca.crt')}\n      {tls}\n"
                    f"    static_configs: [{{targets: ['127.0.0.1:{k.port}']}}]\n")
        with open(k.config_path, "w") as f:
            f.write(cfg)
        try:
            k.start()

            def ups():
                st, _, body = k.get("/api/v1/query?query=up")
                r = json.loads(body)["data"]["result"] if st == 200 else []
                return {x["metric"]["job"]: x["value"][1] for x in r}

            want = {"sni": "1", "tls12": "1", "no-sni": "0", "wrong-name": "0", "tls13": "0"}
            # the good ones may time out now and then on a loaded machine (1 s scrapes of an ASan build)
            wait_for(lambda: ups() == want, 30)
            self.assertEqual(ups(), want)
            st, _, body = k.get("/api/v1/targets")
            errs = {t["labels"]["job"]: t["lastError"] for t in json.loads(body)["data"]["activeTargets"]}
            self.assertIn("certificate", errs["no-sni"].lower() + errs["wrong-name"].lower())
            self.assertNotIn("not acted on", k.read_log())
            self.assertEqual(k.stop(), 0, k.read_log()[-3000:])
        finally:
            k.cleanup()


def promtool_ok(path):
    p = subprocess.run([PROMTOOL, "check", "web-config", path], capture_output=True, text=True)
    return p.returncode == 0, p.stderr


class TestPromtoolAgreement(unittest.TestCase):
    """kiln starts with every file promtool accepts here, and refuses those
    promtool refuses."""

    def files(self):
        h = hash_once()
        tls = f"tls_server_config:\n  cert_file: {pki('server.crt')}\n  key_file: {pki('server.key')}\n"
        good = [
            "",
            f"basic_auth_users:\n  alice: {h}\n",
            tls,
            tls + ("  min_version: TLS12\n  max_version: TLS13\n"
                   "  cipher_suites: [TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256, TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384]\n"
                   "  curve_preferences: [X25519, CurveP256]\n  prefer_server_cipher_suites: false\n"),
            tls + f"  client_auth_type: VerifyClientCertIfGiven\n  client_ca_file: {pki('ca.crt')}\n",
            tls + "  client_auth_type: RequireAnyClientCert\n",
            "http_server_config:\n  http2: true\n  headers:\n    X-Content-Type-Options: nosniff\n"
            "    Content-Security-Policy: default-src 'self'\n    X-XSS-Protection: '1; mode=block'\n",
        ]
        bad = [
            "x: 1\n",
            "tls_server_config:\n  min_version: TLS14\n",
            "tls_server_config:\n  cipher_suites: [TLS_RSA_WITH_RC4_128_SHA]\n",
            "tls_server_config:\n  curve_preferences: [CurveP224]\n",
            f"tls_server_config:\n  cert_file: {pki('server.crt')}\n",
            tls + f"  client_ca_file: {pki('ca.crt')}\n",
            tls + "  client_auth_type: Sometimes\n",
            f"tls_server_config:\n  cert_file: {pki('server.crt')}\n  key_file: {pki('client.key')}\n",
            f"tls_server_config:\n  cert_file: /nonexistent.crt\n  key_file: {pki('server.key')}\n",
            tls + "  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: /nonexistent-ca.crt\n",
            "http_server_config:\n  headers:\n    Server: kiln\n",
            "http_server_config:\n  headers:\n    X-Frame-Options: allow\n",
            "basic_auth_users:\n  alice: notahash\n",
            "basic_auth_users:\n  alice: $2y$03$QOauhQNbBCuQDKes6eFzPeMqBSjb7Mr5DUmpZ/VcEd00UAV/LDeSi\n",
        ]
        return good, bad

    def kiln_verdict(self, path):
        k = Kiln(args=[f"--web.config.file={path}"], config="")
        try:
            k.log = open(k.log_path, "ab")
            p = subprocess.Popen(k.args, stdout=k.log, stderr=subprocess.STDOUT, cwd=k.tmp)
            k.proc = p
            # a refused file stops kiln at start; an accepted one serves
            started = wait_for(lambda: p.poll() is not None or "Listening" in k.read_log(), 20)
            self.assertTrue(started, k.read_log())
            ok = p.poll() is None
            if ok:
                self.assertEqual(k.stop(), 0, k.read_log()[-3000:])
            else:
                self.assertNotEqual(p.returncode, 0)
                self.assertIn("Start-up failed", k.read_log())
            return ok, k.read_log()
        finally:
            k.cleanup()

    def test_agreement(self):
        good, bad = self.files()
        d = tempfile.mkdtemp(prefix="kiln-webcfg-")
        try:
            for i, (text, want) in enumerate([(g, True) for g in good] + [(b, False) for b in bad]):
                path = os.path.join(d, f"web{i}.yml")
                with open(path, "w") as f:
                    f.write(text)
                p_ok, p_msg = promtool_ok(path)
                self.assertEqual(p_ok, want, (text, p_msg))
                k_ok, k_log = self.kiln_verdict(path)
                self.assertEqual(k_ok, want, (text, k_log[-2000:]))
                if not want:
                    self.assertIn(f"web{i}.yml", k_log)
        finally:
            shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    unittest.main()
