"""Ingestion isolated from queries: with the query pool saturated by slow
queries, a remote write, /-/healthy and /metrics still answer at once.

Queries (query, query_range) run on the HTTP server's query pool of
--query.max-concurrency threads, lookups (series, labels, ...) on its lookup
pool; remote writes and the cheap endpoints run on libuv's pool, which no
query can occupy.  Before that split a remote write
waited behind ten slow queries for minutes (issue 16, finding 4).

The slow query is a subquery of quantile_over_time over a millisecond
step: all CPU (about 30 s on one core) and little memory (10 MB); its
`timeout` parameter ends it after QUERY_SECONDS so the test has a known
length.  Bounds below are generous (seconds, where the idle answer takes
milliseconds): they fail only when a request waits behind the queries.
"""
import threading
import time
import unittest
import urllib.parse

from kilntest import Kiln
from rwproto import write_body

SLOW_QUERY = "count_over_time(quantile_over_time(0.5, vector(1)[5s:1ms])[10m:1ms])"
QUERY_SECONDS = 25
NQUERIES = 10
BOUND = 5.0  # seconds: what a request may take while the queries run

RW_HEADERS = {
    "Content-Encoding": "snappy",
    "Content-Type": "application/x-protobuf",
    "X-Prometheus-Remote-Write-Version": "0.1.0",
}


class SlowQueries:
    """NQUERIES slow queries, each on its own connection and thread."""

    def __init__(self, kiln, path="/api/v1/query", n=NQUERIES):
        self.kiln, self.path, self.n = kiln, path, n
        self.results = []
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self.run, daemon=True) for _ in range(n)]

    def run(self):
        body = urllib.parse.urlencode({"query": SLOW_QUERY, "time": "1000", "timeout": f"{QUERY_SECONDS}s"})
        try:
            st, _, data = self.kiln.post(self.path, body=body.encode(), timeout=600,
                                         headers={"Content-Type": "application/x-www-form-urlencoded"})
        except OSError as e:
            st, data = None, str(e).encode()
        with self.lock:
            self.results.append((st, data))

    def start(self):
        for t in self.threads:
            t.start()

    def running(self):
        return sum(t.is_alive() for t in self.threads)

    def join(self):
        for t in self.threads:
            t.join(600)


def timed(fn):
    t0 = time.monotonic()
    r = fn()
    return r, time.monotonic() - t0


class TestIsolation(unittest.TestCase):
    def setUp(self):
        # the default --query.max-concurrency (20): ten queries all run at once
        self.kiln = Kiln(args=["--query.timeout=10m", "--query.max-samples=2000000000"],
                         config="global:\n  scrape_interval: 1h\n")
        self.addCleanup(self.kiln.cleanup)
        self.kiln.start()
        self.ts = int(time.time() * 1000) - 60000

    def write(self):
        self.ts += 1
        body = write_body([([("__name__", "iso_write"), ("job", "iso")], [(1.0, self.ts)])])
        st, _, text = self.kiln.post("/api/v1/write", body=body, headers=RW_HEADERS, timeout=600)
        return st

    def assert_answers_while_queries_run(self, q):
        q.start()
        # the queries reach the server and start evaluating
        time.sleep(2)
        self.assertEqual(q.running(), NQUERIES, q.results)
        st, dt = timed(self.write)
        self.assertEqual(st, 204)
        self.assertLess(dt, BOUND, f"a one-sample remote write took {dt:.1f} s behind {NQUERIES} queries")
        (st, _, _), dt = timed(lambda: self.kiln.get("/-/healthy", timeout=600))
        self.assertEqual(st, 200)
        self.assertLess(dt, BOUND, f"/-/healthy took {dt:.1f} s")
        (st, _, body), dt = timed(lambda: self.kiln.get("/metrics", timeout=600))
        self.assertEqual(st, 200)
        self.assertLess(dt, BOUND, f"/metrics took {dt:.1f} s")
        # the queries were still evaluating all along: the pool was full
        self.assertEqual(q.running(), NQUERIES, "the slow queries ended before the measurements: not slow enough")
        self.assertIn(b"kiln_engine_queries 10\n", body)
        q.join()
        self.assertEqual(len(q.results), NQUERIES)
        for st, data in q.results:
            self.assertEqual(st, 503, data)
            self.assertIn(b"query timed out in query execution", data)

    def test_remote_write_health_and_metrics_answer_while_queries_saturate(self):
        self.assertEqual(self.write(), 204)
        self.assert_answers_while_queries_run(SlowQueries(self.kiln))
        # every acknowledged sample is there
        st, _, body = self.kiln.get("/api/v1/query?query=count_over_time(iso_write[1h])")
        self.assertEqual(st, 200)
        self.assertIn(b'"2"]', body)


if __name__ == "__main__":
    unittest.main()


class NewSeriesDuringRegex(unittest.TestCase):
    """A regex matched over many label values runs with the head's index lock
    released: a remote write that creates a series (which takes that lock for
    writing) does not wait for it.  Before, the write waited for every such
    query to end (minutes, with a slow regex over thousands of values)."""

    def test_new_series_written_while_regex_queries_run(self):
        kn = Kiln(args=["--query.timeout=600s"], config="global:\n  scrape_interval: 1h\n").start()
        try:
            now = int(time.time() * 1000)
            # values that make (a|aa)*c backtrack (about a ms each): the query takes seconds
            # (minutes for the ASan build on a loaded machine: hence the long timeouts)
            st, _, body = kn.post("/api/v1/write", write_body(
                [([("__name__", "evil"), ("v", "a" * 24 + "bc%05d" % i)], [(1.0, now - 1000)])
                 for i in range(3000)]), headers=RW_HEADERS)
            self.assertEqual(st, 204, body)
            q = "/api/v1/query?" + urllib.parse.urlencode({"query": 'count(evil{v=~"(a|aa)*c"})',
                                                            "time": now / 1000})
            done = []
            threads = [threading.Thread(target=lambda: done.append(kn.get(q, timeout=600)[0]), daemon=True)
                       for _ in range(4)]
            for t in threads:
                t.start()
            time.sleep(1)
            t0 = time.time()
            st, _, body = kn.post("/api/v1/write", write_body(
                [([("__name__", "fresh"), ("x", "1")], [(1.0, now)])]), headers=RW_HEADERS, timeout=60)
            took = time.time() - t0
            alive = sum(t.is_alive() for t in threads)
            self.assertEqual(st, 204, body)
            self.assertLess(took, BOUND, f"the write waited {took:.1f}s behind the regex queries")
            self.assertGreater(alive, 0, "the queries ended before the write: the test proves nothing")
            for t in threads:
                t.join(600)
            self.assertEqual(done, [200] * 4)
        finally:
            kn.stop()
            kn.cleanup()
