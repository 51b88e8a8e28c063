"""A scripted Kubernetes API server for kiln's Kubernetes SD tests and
benchmark: the list/watch protocol of the API as documented
(https://kubernetes.io/docs/reference/using-api/api-concepts/).

- GET <prefix>[/namespaces/<ns>]/<resource>: a list, {"kind": "<Kind>List",
  "metadata": {"resourceVersion": "<rv>"}, "items": [...]}, filtered by
  namespace and by a labelSelector of k=v terms.
- ...?watch=1&resourceVersion=<rv>: a chunked stream of events, one JSON
  object a line, {"type": "ADDED|MODIFIED|DELETED|BOOKMARK", "object": ...},
  every event after rv, then the new ones as they happen, until
  timeoutSeconds.  An rv older than the compacted history gets the API's
  410: an ERROR event whose object is a Status with code 410 (or, with
  gone_as_status, the HTTP status 410).
- break_watches(partial=True) cuts every open watch in the middle of a line.
- Every request must carry "Authorization: Bearer <token>" (token None: no
  check), or with client_ca (TLS) a client certificate that CA signed.
"""
import http.server
import json
import os
import ssl
import subprocess
import threading
import time
import urllib.parse

KINDS = {"pods": ("/api/v1", "Pod"), "nodes": ("/api/v1", "Node"), "services": ("/api/v1", "Service"),
         "endpoints": ("/api/v1", "Endpoints"), "endpointslices": ("/apis/discovery.k8s.io/v1", "EndpointSlice"),
         "ingresses": ("/apis/networking.k8s.io/v1", "Ingress"), "namespaces": ("/api/v1", "Namespace"),
         "replicasets": ("/apis/apps/v1", "ReplicaSet"), "jobs": ("/apis/batch/v1", "Job")}


def status(code, reason, message):
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": message,
            "reason": reason, "code": code}


class KubeHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def send_json(self, code, obj):
        body = json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        api = self.server.api
        u = urllib.parse.urlsplit(self.path)
        q = urllib.parse.parse_qs(u.query)
        with api.cond:
            api.requests.append((u.path, q))
        if api.token is not None and self.headers.get("Authorization") != f"Bearer {api.token}":
            return self.send_json(401, status(401, "Unauthorized", "Unauthorized"))
        parts = u.path.strip("/").split("/")
        resource, ns = parts[-1], None
        if "namespaces" in parts[:-1]:
            ns = parts[parts.index("namespaces") + 1]
        if resource not in KINDS or not u.path.startswith(KINDS[resource][0]):
            return self.send_json(404, status(404, "NotFound", "the server could not find the requested resource"))
        sel = q.get("labelSelector", [""])[0]
        if q.get("watch", ["0"])[0] in ("1", "true"):
            return self.watch(resource, ns, sel, int(q.get("resourceVersion", ["0"])[0] or 0),
                              int(q.get("timeoutSeconds", ["300"])[0]))
        with api.cond:
            items = [o for o in api.objects[resource].values() if api.matches(o, ns, sel)]
            rv = api.rv
        self.send_json(200, {"kind": KINDS[resource][1] + "List", "apiVersion": "v1",
                             "metadata": {"resourceVersion": str(rv)}, "items": items})

    def chunk(self, data):
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def watch(self, resource, ns, sel, rv, timeout):
        api = self.server.api
        with api.cond:
            gone = rv < api.compacted
        if gone and api.gone_as_status:
            return self.send_json(410, status(410, "Expired", f"too old resource version: {rv} ({api.compacted})"))
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        if gone:
            ev = {"type": "ERROR", "object": status(410, "Expired", f"too old resource version: {rv} ({api.compacted})")}
            self.chunk(json.dumps(ev).encode() + b"\n")
            self.wfile.write(b"0\r\n\r\n")
            return
        deadline = time.time() + timeout
        generation = api.generation
        sent = rv
        while time.time() < deadline:
            with api.cond:
                evs = [e for e in api.events if e[0] > sent and e[1] == resource and api.matches(e[3], ns, sel)]
                if not evs and api.generation == generation:
                    api.cond.wait(0.2)
                    continue
                brk = api.generation != generation
                partial = api.partial
            for erv, _, typ, obj in evs:
                self.chunk(json.dumps({"type": typ, "object": obj}).encode() + b"\n")
                sent = erv
            if evs:
                continue
            if brk:
                if partial:  # half an event, and the connection goes
                    self.chunk(b'{"type":"ADDED","object":{"metadata":{"na')
                self.close_connection = True
                return
        self.wfile.write(b"0\r\n\r\n")


class QuietServer(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        pass


class KubeAPI:
    def __init__(self, token="kube-t0ken", tls_dir=None, client_ca=None):
        self.token = token
        self.cond = threading.Condition()
        self.objects = {r: {} for r in KINDS}
        self.events = []  # (rv, resource, type, object)
        self.rv = 100
        self.compacted = 0
        self.generation = 0
        self.partial = False
        self.gone_as_status = False
        self.requests = []
        self.httpd = QuietServer(("127.0.0.1", 0), KubeHandler)
        self.httpd.api = self
        self.scheme = "http"
        if tls_dir:
            self.ca = make_cert(tls_dir)
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(os.path.join(tls_dir, "server.crt"), os.path.join(tls_dir, "server.key"))
            if client_ca:
                ctx.verify_mode = ssl.CERT_REQUIRED
                ctx.load_verify_locations(client_ca)
            self.httpd.socket = ctx.wrap_socket(self.httpd.socket, server_side=True)
            self.scheme = "https"
        self.port = self.httpd.server_address[1]
        self.url = f"{self.scheme}://127.0.0.1:{self.port}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def stop(self):
        self.break_watches(False)
        self.httpd.shutdown()
        self.httpd.server_close()

    @staticmethod
    def matches(obj, ns, sel):
        md = obj["metadata"]
        if ns and md.get("namespace") != ns:
            return False
        for term in filter(None, sel.split(",")):
            k, _, v = term.partition("=")
            if md.get("labels", {}).get(k) != v:
                return False
        return True

    @staticmethod
    def key(obj):
        md = obj["metadata"]
        return md.get("namespace", "") + "/" + md["name"]

    def put(self, resource, obj):
        with self.cond:
            self.rv += 1
            obj = json.loads(json.dumps(obj))
            obj["metadata"]["resourceVersion"] = str(self.rv)
            k = self.key(obj)
            typ = "MODIFIED" if k in self.objects[resource] else "ADDED"
            self.objects[resource][k] = obj
            self.events.append((self.rv, resource, typ, obj))
            self.cond.notify_all()

    def delete(self, resource, ns, name):
        with self.cond:
            obj = self.objects[resource].pop(f"{ns or ''}/{name}")
            self.rv += 1
            obj = dict(obj, metadata=dict(obj["metadata"], resourceVersion=str(self.rv)))
            self.events.append((self.rv, resource, "DELETED", obj))
            self.cond.notify_all()

    def compact(self):
        """Forgets the history: a watch from an older version gets 410."""
        with self.cond:
            self.compacted = self.rv + 1
            self.events = []

    def break_watches(self, partial=True):
        with self.cond:
            self.partial = partial
            self.generation += 1
            self.cond.notify_all()

    def got(self, pred):
        with self.cond:
            return [(p, q) for p, q in self.requests if pred(p, q)]


def make_cert(d):
    """A self-signed certificate for 127.0.0.1 (the CA is the certificate itself)."""
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-keyout", os.path.join(d, "server.key"), "-out", os.path.join(d, "server.crt"),
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return os.path.join(d, "server.crt")


def pod(ns, name, ip, ports, labels=None, node="node-1", phase="Running", ready="True", owner=None):
    return {
        "kind": "Pod", "apiVersion": "v1",
        "metadata": {"name": name, "namespace": ns, "uid": f"uid-{name}", "labels": labels or {},
                     "annotations": {"prometheus.io/scrape": "true"},
                     "ownerReferences": [owner] if owner else []},
        "spec": {"nodeName": node, "containers": [
            {"name": "main", "image": "example/app:1", "ports": [
                {"name": f"p{p}", "containerPort": p, "protocol": "TCP"} for p in ports]},
            {"name": "sidecar", "image": "example/side:2"}]},
        "status": {"phase": phase, "podIP": ip, "hostIP": "10.0.0.1",
                   "conditions": [{"type": "Ready", "status": ready}],
                   "containerStatuses": [{"name": "main", "containerID": f"containerd://{name}-main"}]},
    }


def node(name, ip, labels=None):
    return {"kind": "Node", "apiVersion": "v1",
            "metadata": {"name": name, "labels": labels or {}, "annotations": {"a": "b"}},
            "spec": {"providerID": f"aws:///{name}"},
            "status": {"addresses": [{"type": "Hostname", "address": name}, {"type": "InternalIP", "address": ip}],
                       "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
                       "conditions": [{"type": "Ready", "status": "True"},
                                      {"type": "MemoryPressure", "status": "False"}]}}
