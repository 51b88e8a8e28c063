"""send_exemplars: true in remote_write (issue 18): kiln scrapes exemplars
(the target of test_exemplar_wal), its queue reads them from the WAL and
sends them with the samples.  Remote write 1.0 goes to Debian's Prometheus
2.42 (--web.enable-remote-write-receiver --enable-feature=exemplar-storage),
whose query_exemplars must answer what kiln's does (external labels added);
remote write 2.0 goes to a Python receiver that decodes the requests
(symbols, labels_refs, Exemplar) and must hold the same exemplars, and
every TimeSeries carries its family's metadata (metadata_config, as
Prometheus' 2.0 sender): type, help and unit as symbol references.
"""
import http.server
import json
import struct
import threading
import time
import unittest

import kilntest
from kilntest import Kiln, Prometheus, free_port, wait_for
from rwproto import unsnappy
from test_exemplar_wal import Handler, exemplars
from test_remote_read import fields
from test_scrape_proto import packed_varints as packed


def signed(v):
    return v - (1 << 64) if v >= 1 << 63 else v


def v2_exemplars(body, meta):
    """The exemplars of an io.prometheus.write.v2.Request: [(series labels, exemplar labels, value, ts ms)];
    meta[metric name] gets the set of the (type, help, unit) its TimeSeries carried."""
    f = fields(body)
    syms = [v.decode() for n, _, v in f if n == 4]
    out = []
    for n, _, ts in f:
        if n != 5:
            continue
        tf = fields(ts)
        refs = [r for k, _, v in tf if k == 1 for r in packed(v)]
        series = {syms[refs[i]]: syms[refs[i + 1]] for i in range(0, len(refs), 2)}
        md = {k: v for k, _, v in fields(b"".join(v for k, _, v in tf if k == 5))}
        meta.setdefault(series["__name__"], set()).add(
            (md.get(1, 0), syms[md[3]] if 3 in md else None, syms[md[4]] if 4 in md else None))
        for k, _, ex in tf:
            if k != 4:
                continue
            xf = fields(ex)
            xr = [r for kk, _, v in xf if kk == 1 for r in packed(v)]
            value = [struct.unpack("<d", v)[0] for kk, _, v in xf if kk == 2]
            t = [signed(v) for kk, _, v in xf if kk == 3]
            out.append((series, {syms[xr[i]]: syms[xr[i + 1]] for i in range(0, len(xr), 2)},
                        value[0] if value else 0.0, t[0] if t else 0))
    return out


class V2Receiver(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self):
        self.got, self.types, self.meta = [], set(), {}
        self.lock = threading.Lock()
        super().__init__(("127.0.0.1", 0), V2Handler)


class V2Handler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *a):
        pass

    def do_POST(self):
        body = unsnappy(self.rfile.read(int(self.headers.get("Content-Length", 0))))
        with self.server.lock:
            self.server.types.add(self.headers.get("Content-Type"))
            self.server.got += v2_exemplars(body, self.server.meta)
        self.send_response(204)
        self.end_headers()


def as_query_answer(got, end_s):
    """The receiver's exemplars up to end_s in query_exemplars' canonical form (test_exemplar_wal.exemplars)."""
    by = {}
    for series, labels, v, t in got:
        if t > end_s * 1000:
            continue
        ex = (json.dumps(labels, sort_keys=True), f"{v:g}", t / 1000)
        by.setdefault(json.dumps(series, sort_keys=True), set()).add(ex)
    return sorted((s, sorted(exs, key=lambda e: e[2])) for s, exs in by.items())


def with_site(ex):
    """kiln's answer with the external label site="s1" added to every series."""
    out = []
    for s, exs in ex:
        m = json.loads(s)
        m["site"] = "s1"
        out.append((json.dumps(m, sort_keys=True), exs))
    return sorted(out)


class SendExemplarsTest(unittest.TestCase):
    maxDiff = None

    @classmethod
    def setUpClass(cls):
        cls.srv = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        threading.Thread(target=cls.srv.serve_forever, daemon=True).start()

    @classmethod
    def tearDownClass(cls):
        cls.srv.shutdown()

    def sender(self, url, extra=""):
        k = Kiln(args=["--enable-feature=exemplar-storage"], config=f"""global:
  scrape_interval: 1s
  external_labels: {{site: s1}}
scrape_configs:
  - job_name: ex
    static_configs: [{{targets: ['127.0.0.1:{self.srv.server_address[1]}']}}]
remote_write:
  - url: {url}
    send_exemplars: true
    queue_config: {{batch_send_deadline: 300ms}}{extra}
""")
        self.addCleanup(k.cleanup)
        k.start()
        # three scrapes or more: the changing series has an exemplar each
        self.assertTrue(wait_for(lambda: sum(len(e) for s, e in exemplars(f"http://{k.addr}", 2e9)
                                             if '"/c"' in s) >= 3, timeout=30))
        return k

    def test_v1_to_prometheus(self):
        kilntest.require("prometheus")
        with Prometheus("global: {}\n", args=["--web.enable-remote-write-receiver",
                                              "--enable-feature=exemplar-storage"]) as p:
            k = self.sender(f"{p.url}/api/v1/write")
            end = time.time()
            want = with_site(exemplars(f"http://{k.addr}", end))
            self.assertEqual(len(want), 4)
            ok = wait_for(lambda: exemplars(p.url, end) == want, timeout=30, step=0.3)
            self.assertEqual(exemplars(p.url, end), want, k.read_log()[-2000:])
            self.assertTrue(ok)
            self.assertEqual(k.stop(), 0)

    def test_v2_to_receiver(self):
        recv = V2Receiver()
        threading.Thread(target=recv.serve_forever, daemon=True).start()
        self.addCleanup(recv.server_close)
        self.addCleanup(recv.shutdown)
        k = self.sender(f"http://127.0.0.1:{recv.server_address[1]}/api/v1/write",
                        "\n    protobuf_message: io.prometheus.write.v2.Request"
                        "\n    metadata_config: {send_interval: 2s}")
        end = time.time()
        want = with_site(exemplars(f"http://{k.addr}", end))
        self.assertEqual(len(want), 4)

        def got():
            with recv.lock:
                return as_query_answer(list(recv.got), end)
        wait_for(lambda: got() == want, timeout=30, step=0.3)
        self.assertEqual(got(), want)
        self.assertEqual(recv.types, {"application/x-protobuf;proto=io.prometheus.write.v2.Request"})
        # metadata: each family's once scraped (before, none: the first TimeSeries may lack it)
        counter, hist = (1, "Requests served.", None), (3, "Latency.", "seconds")
        want_md = {"req_total": counter, "lat_seconds_bucket": hist, "lat_seconds_sum": hist,
                   "lat_seconds_count": hist}
        self.assertTrue(wait_for(lambda: all(m in recv.meta.get(n, ()) for n, m in want_md.items()),
                                 timeout=20, step=0.3), recv.meta)
        for n, m in want_md.items():
            self.assertLessEqual(recv.meta[n], {m, (0, None, None)}, n)
        self.assertEqual(k.stop(), 0)


if __name__ == "__main__":
    unittest.main()
