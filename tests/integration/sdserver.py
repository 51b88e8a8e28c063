"""Scripted HTTP servers for the service discovery tests (test_sd_*.py):

- Server: a threaded HTTP/1.1 server whose answers a test scripts per path
  (a function of the request, or a fixed (status, headers, body)); it keeps
  every request it got, so a test can look at headers and query strings.
- Exporters: several small /metrics endpoints on their own ports, counting
  the scrapes each got, for kiln to scrape as discovered targets.
"""
import http.server
import json
import threading
import urllib.parse


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def do_GET(self):
        srv = self.server.owner
        u = urllib.parse.urlsplit(self.path)
        req = {"path": u.path, "query": urllib.parse.parse_qs(u.query, keep_blank_values=True),
               "headers": {k.lower(): v for k, v in self.headers.items()}}
        with srv.lock:
            srv.requests.append(req)
            route = srv.routes.get(u.path, srv.default)
        if route is None:
            return self.answer(404, {"Content-Type": "text/plain"}, b"not found\n")
        res = route(req, self) if callable(route) else route
        if res is None:  # the route wrote its own answer
            return
        self.answer(*res)

    def answer(self, status, headers, body):
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
        elif isinstance(body, str):
            body = body.encode()
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class QuietServer(http.server.ThreadingHTTPServer):
    def handle_error(self, request, client_address):
        pass  # a client (kiln) that hangs up on a held answer is no error here


class Server:
    """A scripted server on 127.0.0.1:<port>; routes[path] = fn(req, handler) or (status, headers, body)."""

    def __init__(self):
        self.routes = {}
        self.default = None
        self.requests = []
        self.lock = threading.Lock()
        self.httpd = QuietServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.httpd.owner = self
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def route(self, path, answer):
        with self.lock:
            self.routes[path] = answer

    def json(self, path, obj, status=200, ctype="application/json"):
        self.route(path, (status, {"Content-Type": ctype}, json.dumps(obj).encode()))

    def got(self, path):
        with self.lock:
            return [r for r in self.requests if r["path"] == path]

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()


class Exporters:
    """n /metrics endpoints; scrapes[i] counts the scrapes of the i-th."""

    def __init__(self, n):
        self.servers = []
        self.scrapes = [0] * n
        for i in range(n):
            s = Server()
            s.route("/metrics", self._metrics(i))
            self.servers.append(s)
        self.addrs = [f"127.0.0.1:{s.port}" for s in self.servers]

    def _metrics(self, i):
        def answer(req, h):
            self.scrapes[i] += 1
            return 200, {"Content-Type": "text/plain; version=0.0.4"}, f"sd_test_metric {i}\n"
        return answer

    def stop(self):
        for s in self.servers:
            s.stop()
