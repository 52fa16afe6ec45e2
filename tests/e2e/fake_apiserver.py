"""A fake kube-apiserver for the svcdns tests: the list + watch protocol of the real one over
HTTPS with a bearer token or a client certificate, on 127.0.0.1 (and [::1]) only.

Resources (cluster-wide and per-namespace list/watch, and GET of one object):
  /api/v1/services  /api/v1/endpoints  /api/v1/namespaces  /api/v1/pods
  /apis/discovery.k8s.io/v1/endpointslices
plus the discovery documents kubectl reads (/api, /apis, /api/v1, /apis/discovery.k8s.io/v1,
/version) and /healthz, /livez, /readyz.

Protocol rules followed (sources: the Kubernetes "API Concepts" page; apiserver
storage/continue.go, storage/etcd3/errors.go, storage/cacher/watch_cache.go,
endpoints/handlers/watch.go, endpoints/handlers/responsewriters/errors.go; apimachinery
api/errors/errors.go; client-go tools/cache/reflector.go):
  * one global resourceVersion (an etcd revision): every create/update/delete bumps it by one
    and is one event in the history; every object carries its own metadata.resourceVersion;
  * a list is {"kind":"ServiceList","apiVersion":"v1","metadata":{"resourceVersion":...},
    "items":[...]} and its items carry NO kind/apiVersion (kubernetes/kubernetes#3030);
  * limit/continue paging; the token is base64url(JSON {"v":"meta.k8s.io/v1","rv":N,
    "start":KEY}) like storage.EncodeContinue, and every page is served at the snapshot rv N;
    a token whose rv is compacted -> 410 Expired with the "inconsistent continue" message and
    a fresh token (rv -1) in metadata.continue, as etcd3's handleCompactedErrorForPaging;
  * watch: 200, Content-Type application/json, chunked, one {"type","object"} JSON line per
    chunk; events after resourceVersion replayed from the history, then live ones; a
    resourceVersion older than the history -> an ERROR event (Status 410 Expired "too old
    resource version: X (Y)") and the end of the stream; BOOKMARK objects carry only
    kind, apiVersion and metadata.resourceVersion; timeoutSeconds ends the stream cleanly;
  * errors are Status objects: 401 Unauthorized, 403 Forbidden with the RBAC message, 410
    Expired, 504 Timeout "Too large resource version", 500/503 on demand;
  * a response over 128 KiB to a client that accepts gzip is gzipped and chunked.

Simplified: HTTP/1.1 only (no HTTP/2), JSON only (no protobuf, no Table: kubectl prints
NAME/AGE), read-only over HTTP (objects change through the Python methods), any field path
is accepted in fieldSelector, one history for all resources (the real watch cache keeps one
per resource).

In a test:   api = FakeAPIServer().start(); kc = api.kubeconfig(); ...; api.stop()
Standalone:  /usr/bin/python3 fake_apiserver.py --port 6443 --dir /tmp/fake-api [--services N]"""

import argparse
import atexit
import base64
import bisect
import datetime
import gzip
import http.server
import ipaddress
import json
import os
import random
import re
import shutil
import signal
import socket
import socketserver
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import uuid

DEFAULT_USER = "system:serviceaccount:kube-system:svcdns"
DEFAULT_TOKEN = "svcdns-test-token"
INITIAL_RV = 1000
GZIP_THRESHOLD = 128 * 1024   # responsewriters.defaultGzipThresholdBytes
SERVER_VERSION = {"major": "1", "minor": "32", "gitVersion": "v1.32.4-fake",
                  "gitCommit": "0000000000000000000000000000000000000000",
                  "gitTreeState": "clean", "buildDate": "2025-01-01T00:00:00Z",
                  "goVersion": "go1.23.8", "compiler": "gc", "platform": "linux/amd64"}

# resource -> (group, version, kind, namespaced, short names)
RESOURCES = {
    "services": ("", "v1", "Service", True, ["svc"]),
    "endpoints": ("", "v1", "Endpoints", True, ["ep"]),
    "namespaces": ("", "v1", "Namespace", False, ["ns"]),
    "pods": ("", "v1", "Pod", True, ["po"]),
    "endpointslices": ("discovery.k8s.io", "v1", "EndpointSlice", True, []),
}
# the order Go's encoding/json writes the fields of these types in
TOP_ORDER = ("kind", "apiVersion", "metadata", "addressType", "endpoints", "ports", "subsets",
             "spec", "status")
META_ORDER = ("name", "generateName", "namespace", "selfLink", "uid", "resourceVersion",
              "generation", "creationTimestamp", "deletionTimestamp",
              "deletionGracePeriodSeconds", "labels", "annotations", "ownerReferences",
              "finalizers", "managedFields")


def go_order(obj):
    """The object with its top-level and metadata fields in Go's struct order."""
    def order(d, keys):
        out = {k: d[k] for k in keys if k in d}
        out.update((k, v) for k, v in d.items() if k not in out)
        return out
    obj = order(obj, TOP_ORDER)
    obj["metadata"] = order(obj["metadata"], META_ORDER)
    return obj


def api_version(resource):
    group, version = RESOURCES[resource][:2]
    return f"{group}/{version}" if group else version


def now_rfc3339():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def dumps(obj):
    """Compact JSON as Go's encoding/json writes it."""
    return json.dumps(obj, separators=(",", ":"))


def status(code, reason, message, details=None, continue_token=None):
    """A metav1.Status in the field order Go writes (kind, apiVersion, metadata, status,
    message, reason, details, code)."""
    st = {"kind": "Status", "apiVersion": "v1",
          "metadata": {"continue": continue_token} if continue_token else {},
          "status": "Failure", "message": message, "reason": reason}
    if details is not None:
        st["details"] = details
    st["code"] = code
    return st


def expired(message, continue_token=None):
    """apierrors.NewResourceExpired: 410, reason Expired (not "Gone")."""
    return status(410, "Expired", message, continue_token=continue_token)


def too_large_rv(wanted, current):
    """storage.NewTooLargeResourceVersionError: a 504 Timeout, retry after 1 s."""
    return status(504, "Timeout", f"Timeout: Too large resource version: {wanted}, "
                  f"current: {current}",
                  {"causes": [{"reason": "ResourceVersionTooLarge",
                               "message": "Too large resource version"}],
                   "retryAfterSeconds": 1})


def encode_continue(rv, start):
    """storage.EncodeContinue: base64url without padding of {"v","rv","start"}."""
    raw = dumps({"v": "meta.k8s.io/v1", "rv": rv, "start": start}).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_continue(token):
    """storage.DecodeContinue; None for a token the server does not recognise."""
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        c = json.loads(raw)
        if c.get("v") != "meta.k8s.io/v1" or not c.get("rv") or not c.get("start"):
            return None
        return int(c["rv"]), str(c["start"])
    except (ValueError, TypeError, AttributeError):
        return None


# --- selectors ------------------------------------------------------------------------------
_SEL_RE = re.compile(r"\s*(!?)\s*([A-Za-z0-9_./-]+)\s*(?:(==|=|!=)\s*([A-Za-z0-9_./-]*)|"
                     r"\s+(in|notin)\s*\(([^)]*)\))?\s*$")


def parse_label_selector(text):
    """The label selector grammar of apimachinery/pkg/labels: k=v, k==v, k!=v, k, !k,
    k in (a,b), k notin (a,b), comma-separated. Returns a predicate on a labels dict."""
    reqs = []
    for part in re.split(r",(?![^(]*\))", text or ""):
        if not part.strip():
            continue
        m = _SEL_RE.match(part)
        if not m:
            raise ValueError(f"unable to parse requirement: {part!r}")
        neg, key, op, val, setop, setvals = m.groups()
        if neg:
            reqs.append(lambda lb, k=key: k not in lb)
        elif op in ("=", "=="):
            reqs.append(lambda lb, k=key, v=val: lb.get(k) == v)
        elif op == "!=":
            reqs.append(lambda lb, k=key, v=val: lb.get(k) != v)
        elif setop:
            vals = {s.strip() for s in setvals.split(",")}
            if setop == "in":
                reqs.append(lambda lb, k=key, vs=vals: lb.get(k) in vs)
            else:
                reqs.append(lambda lb, k=key, vs=vals: lb.get(k) not in vs)
        else:
            reqs.append(lambda lb, k=key: k in lb)
    return lambda obj: all(r(obj.get("metadata", {}).get("labels") or {}) for r in reqs)


def parse_field_selector(text):
    """Field selectors as dotted paths with =, == or != (metadata.name, metadata.namespace,
    status.phase, spec.nodeName ...)."""
    reqs = []
    for part in (text or "").split(","):
        if not part.strip():
            continue
        m = re.match(r"\s*([A-Za-z0-9_.]+)\s*(==|=|!=)\s*(.*?)\s*$", part)
        if not m:
            raise ValueError(f"invalid field selector: {part!r}")
        path, op, val = m.groups()

        def get(obj, path=path):
            for p in path.split("."):
                obj = obj.get(p) if isinstance(obj, dict) else None
            return "" if obj is None else str(obj)
        reqs.append((lambda o, g=get, v=val: g(o) != v) if op == "!="
                    else (lambda o, g=get, v=val: g(o) == v))
    return lambda obj: all(r(obj) for r in reqs)


# --- certificates ---------------------------------------------------------------------------
def _openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.PIPE, timeout=60)


def make_ca(directory, name):
    """A self-signed CA (EC P-256) as NAME.crt / NAME.key."""
    _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
             "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.crt", "-days", "3650",
             "-subj", f"/CN={name}", "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=directory)
    return os.path.join(directory, f"{name}.crt"), os.path.join(directory, f"{name}.key")


def make_cert(directory, name, ca, subject, server=True):
    """A leaf certificate NAME.crt / NAME.key signed by the CA named ca: a server one for
    127.0.0.1, ::1, localhost and the in-cluster names, or a client one (clientAuth)."""
    _openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
             "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", subject, cwd=directory)
    ext = os.path.join(directory, f"{name}.ext")
    with open(ext, "w") as f:
        f.write("basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n")
        if server:
            f.write("extendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1,IP:::1,"
                    "DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,"
                    "DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local\n")
        else:
            f.write("extendedKeyUsage=clientAuth\n")
    _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.crt", "-CAkey", f"{ca}.key",
             "-CAcreateserial", "-out", f"{name}.crt", "-days", "825", "-extfile", ext,
             cwd=directory)
    return os.path.join(directory, f"{name}.crt"), os.path.join(directory, f"{name}.key")


_CERT_CACHE = {}   # user -> a directory with ca, server and client certificates


def cached_certs(directory, user, fresh=False):
    """Copies into directory the CA, server and client certificates for this user, made
    once per process (openssl takes ~0.1 s a certificate) unless fresh."""
    src = None if fresh else _CERT_CACHE.get(user)
    if src is None:
        src = tempfile.mkdtemp(prefix="fake-apiserver-certs-")
        make_ca(src, "ca")
        make_cert(src, "server", "ca", "/CN=kube-apiserver")
        make_cert(src, "client", "ca", f"/O=system:authenticated/CN={user}", server=False)
        if fresh:
            atexit.register(shutil.rmtree, src, True)
        else:
            _CERT_CACHE[user] = src
            if len(_CERT_CACHE) == 1:
                atexit.register(lambda: [shutil.rmtree(d, True) for d in _CERT_CACHE.values()])
    for name in ("ca", "server", "client"):
        for ext in ("crt", "key"):
            shutil.copy(os.path.join(src, f"{name}.{ext}"), directory)
    return {f"{n}_{e}": os.path.join(directory, f"{n}.{e}")
            for n in ("ca", "server", "client") for e in ("crt", "key")}


def _b64file(path):
    with open(path, "rb") as f:
        return base64.b64encode(f.read()).decode()


# --- the HTTP side --------------------------------------------------------------------------
class _HTTPServer(socketserver.ThreadingMixIn, http.server.HTTPServer):
    """One thread per connection; TLS is negotiated in that thread, not in the accept loop."""
    allow_reuse_address = True
    daemon_threads = False
    block_on_close = True

    def __init__(self, addr, family, fake):
        self.address_family = family
        self.fake = fake
        super().__init__(addr, _Handler)

    def finish_request(self, request, client_address):
        fake = self.fake
        fake._track(request, True)
        try:
            request.settimeout(10)
            tls = fake._ssl_ctx.wrap_socket(request, server_side=True)
            tls.settimeout(None)
        except (OSError, ssl.SSLError):
            fake._track(request, False)
            return
        fake._track(request, False)
        fake._track(tls, True)
        try:
            _Handler(tls, client_address, self)
        except (OSError, ssl.SSLError):
            pass
        finally:
            fake._track(tls, False)
            try:
                tls.close()
            except OSError:
                pass

    def handle_error(self, request, client_address):
        pass


class _Abort(Exception):
    """A watch stream is cut: close the connection without the final chunk."""


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "fake-kube-apiserver"
    sys_version = ""

    def log_message(self, *args):
        pass

    def do_GET(self):
        self.server.fake._handle(self)

    def do_POST(self):
        self._drain()
        self.server.fake._handle(self)

    do_PUT = do_PATCH = do_DELETE = do_POST

    def _drain(self):
        n = int(self.headers.get("Content-Length") or 0)
        if n:
            self.rfile.read(n)

    def send_json(self, code, obj, extra_headers=()):
        """A JSON response. As kube-apiserver's deferredResponseWriter: a body over 128 KiB
        to a client that accepts gzip is gzipped (level 1) and streamed chunked."""
        body = (dumps(obj) + "\n").encode()
        self.send_response(code)
        self.send_header("Audit-Id", str(uuid.uuid4()))
        self.send_header("Cache-Control", "no-cache, private")
        self.send_header("Content-Type", "application/json")
        for k, v in extra_headers:
            self.send_header(k, v)
        accept = self.headers.get("Accept-Encoding", "")
        if self.server.fake.gzip and len(body) > GZIP_THRESHOLD and \
                "gzip" in [e.split(";")[0].strip() for e in accept.split(",")]:
            self.send_header("Content-Encoding", "gzip")
            self.send_header("Vary", "Accept-Encoding")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            body = gzip.compress(body, compresslevel=1)
            for i in range(0, len(body), 32768):
                self.send_chunk(body[i:i + 32768])
            return self.send_chunk(b"")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        self.wfile.flush()

    def send_chunk(self, data):
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()


# --- the fake -------------------------------------------------------------------------------
class _Event:
    __slots__ = ("rv", "resource", "type", "key", "obj", "prev", "_line")

    def __init__(self, rv, resource, type_, key, obj, prev):
        self.rv, self.resource, self.type, self.key = rv, resource, type_, key
        self.obj, self.prev, self._line = obj, prev, None

    def line(self):
        if self._line is None:
            self._line = (dumps({"type": self.type, "object": self.obj}) + "\n").encode()
        return self._line


class FakeAPIServer:
    """The fake API server. Construct, seed objects (before or after start()), start(), point
    the client at kubeconfig(), drive it with the control methods, stop().

    Options: token (the valid bearer token), user (the name in 403 messages for the token),
    ipv6 (also listen on [::1], same port), port (0: a free one), directory (for certs and
    kubeconfigs; a temporary one by default, removed by stop()), history_limit (keep at most
    N events, like the watch cache's capacity; None: until compact()), bookmark_interval
    (seconds between periodic BOOKMARKs to watchers that allowed them, and one 2 s before
    the watch deadline, as the cacher does; None: only on send_bookmarks()),
    rv0_unpaged (a list with resourceVersion=0 ignores limit, as kube-apiserver's watch
    cache did; default False: limit is honoured for every resourceVersion, as a server
    without a watch cache), watch_timeout (seconds, when the client gives no timeoutSeconds),
    gzip (compress responses over 128 KiB for clients that send Accept-Encoding: gzip),
    fresh_certs (a new CA for this server; by default one CA per process is shared)."""

    def __init__(self, token=DEFAULT_TOKEN, user=DEFAULT_USER, ipv6=False, port=0,
                 directory=None, history_limit=None, bookmark_interval=None,
                 rv0_unpaged=False, watch_timeout=1800, gzip=True, fresh_certs=False):
        self.host = "127.0.0.1"
        self.port = port
        self.ipv6 = ipv6
        self.user = user
        self.history_limit = history_limit
        self.bookmark_interval = bookmark_interval
        self.rv0_unpaged = rv0_unpaged
        self.watch_timeout = watch_timeout
        self.gzip = gzip
        self.rv_wait = 3.0         # how long a list waits for a future resourceVersion
        self._own_dir = directory is None
        self.dir = directory or tempfile.mkdtemp(prefix="fake-apiserver-")
        os.makedirs(self.dir, exist_ok=True)
        self._tokens = {token: user}
        self._cond = threading.Condition(threading.RLock())
        self._conns = set()
        self._conns_lock = threading.Lock()
        self._servers = []
        self._threads = []
        self._forbidden = {}       # resource -> set of verbs
        self._failure = None       # (code, reason, message, remaining count or None, resources)
        self._stopping = False
        self._cut_gen = 0
        self._bookmark_gen = 0
        self._stall_until = None   # monotonic time (or inf) until which requests are held
        self._paused = False       # watch streams deliver nothing (a black hole)
        self.requests = []         # one dict per request, in arrival order
        self._watching = {}        # resource -> open watch streams
        self._kc_count = 0
        self._token_files = set()
        self._ip_next = {"svc": 10, "pod": 10}
        self._reset_store()
        self._make_certs(fresh_certs)

    # --- certificates and kubeconfigs ----------------------------------------------------
    def _make_certs(self, fresh):
        """ca.crt, server.crt (SANs 127.0.0.1, ::1, localhost, kubernetes.default.svc...)
        and client.crt (CN = user) with their keys in self.dir."""
        f = cached_certs(self.dir, self.user, fresh)
        self.ca_file, self.ca_key = f["ca_crt"], f["ca_key"]
        self.server_cert, self.server_key = f["server_crt"], f["server_key"]
        self.client_cert, self.client_key = f["client_crt"], f["client_key"]
        self._other = None
        self._ssl_ctx = self._context(self.server_cert, self.server_key)

    def _context(self, cert, key):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cert, key)
        ctx.load_verify_locations(self.ca_file)
        ctx.verify_mode = ssl.CERT_OPTIONAL   # a client certificate is one way to log in
        ctx.set_alpn_protocols(["http/1.1"])
        return ctx

    def swap_cert(self, which="other"):
        """Serve, to new connections, a server certificate from another CA ("other": clients
        that trust ca_file must refuse it) or the normal one again ("main")."""
        if which == "other":
            if self._other is None:
                d = os.path.join(self.dir, "other")
                os.makedirs(d, exist_ok=True)
                self.other_ca_file = make_ca(d, "other-ca")[0]
                self._other = make_cert(d, "server", "other-ca", "/CN=kube-apiserver")
            self._ssl_ctx = self._context(*self._other)
        else:
            self._ssl_ctx = self._context(self.server_cert, self.server_key)

    @property
    def url(self):
        return f"https://{self.host}:{self.port}"

    @property
    def url6(self):
        return f"https://[::1]:{self.port}"

    @property
    def token(self):
        return next(iter(self._tokens))

    def kubeconfig(self, path=None, auth="token", ca="file", server=None, token=None,
                   namespace=None, context="fake"):
        """Writes a kubeconfig and returns its path. auth: "token", "token-file",
        "client-cert" (files), "client-cert-data" (inline), "none". ca: "file"
        (certificate-authority), "data" (certificate-authority-data), "insecure"
        (insecure-skip-tls-verify), "none" (system roots only)."""
        self._kc_count += 1
        path = path or os.path.join(self.dir, f"kubeconfig-{self._kc_count}-{auth}-ca-{ca}.yaml")
        q = json.dumps   # a JSON string is a valid YAML scalar
        cluster = [f"    server: {q(server or self.url)}"]
        if ca == "file":
            cluster.append(f"    certificate-authority: {q(self.ca_file)}")
        elif ca == "data":
            cluster.append(f"    certificate-authority-data: {_b64file(self.ca_file)}")
        elif ca == "insecure":
            cluster.append("    insecure-skip-tls-verify: true")
        user = []
        if auth == "token":
            user.append(f"    token: {q(token or self.token)}")
        elif auth == "token-file":
            tf = os.path.join(self.dir, "token")
            with open(tf, "w") as f:
                f.write(token or self.token)
            self._token_files.add(tf)
            user.append(f"    tokenFile: {q(tf)}")
        elif auth == "client-cert":
            user += [f"    client-certificate: {q(self.client_cert)}",
                     f"    client-key: {q(self.client_key)}"]
        elif auth == "client-cert-data":
            user += [f"    client-certificate-data: {_b64file(self.client_cert)}",
                     f"    client-key-data: {_b64file(self.client_key)}"]
        ctx = [f"    cluster: {context}", f"    user: {context}"]
        if namespace:
            ctx.append(f"    namespace: {q(namespace)}")
        text = "\n".join(["apiVersion: v1", "kind: Config", "preferences: {}", "clusters:",
                          f"- name: {context}", "  cluster:", *cluster, "users:",
                          f"- name: {context}", "  user:" + ("" if user else " {}"), *user,
                          "contexts:", f"- name: {context}", "  context:", *ctx,
                          f"current-context: {context}", ""])
        with open(path, "w") as f:
            f.write(text)
        return path

    def kubeconfig_token(self, **kw):
        return self.kubeconfig(auth="token", **kw)

    def kubeconfig_token_file(self, **kw):
        return self.kubeconfig(auth="token-file", **kw)

    def kubeconfig_client_cert(self, inline=False, **kw):
        return self.kubeconfig(auth="client-cert-data" if inline else "client-cert", **kw)

    def kubeconfig_ca_data(self, **kw):
        return self.kubeconfig(ca="data", **kw)

    def serviceaccount_dir(self, path=None, namespace="kube-system"):
        """The in-cluster layout (token, ca.crt, namespace files) and the environment that
        goes with it: returns (directory, {"KUBERNETES_SERVICE_HOST": ..., ..._PORT: ...})."""
        path = path or os.path.join(self.dir, "serviceaccount")
        os.makedirs(path, exist_ok=True)
        for name, text in (("token", self.token), ("namespace", namespace)):
            with open(os.path.join(path, name), "w") as f:
                f.write(text)
        shutil.copy(self.ca_file, os.path.join(path, "ca.crt"))
        self._token_files.add(os.path.join(path, "token"))
        return path, {"KUBERNETES_SERVICE_HOST": self.host,
                      "KUBERNETES_SERVICE_PORT": str(self.port)}

    # --- lifecycle -----------------------------------------------------------------------
    def start(self):
        """Listens on 127.0.0.1 (and [::1] with ipv6=True) on self.port (a free one if 0)."""
        self._stopping = False
        for attempt in range(20):
            try:
                servers = [_HTTPServer((self.host, self.port), socket.AF_INET, self)]
                if self.ipv6:
                    try:
                        servers.append(_HTTPServer(("::1", servers[0].server_address[1]),
                                                   socket.AF_INET6, self))
                    except OSError:
                        servers[0].server_close()
                        if self.port:
                            raise
                        continue
                break
            except OSError:
                if self.port or attempt == 19:
                    raise
        self.port = servers[0].server_address[1]
        self._servers = servers
        for s in servers:
            t = threading.Thread(target=s.serve_forever, kwargs={"poll_interval": 0.1},
                                 name=f"fake-apiserver-{self.port}", daemon=True)
            t.start()
            self._threads.append(t)
        return self

    def _shutdown_listeners(self, graceful=False):
        with self._cond:
            self._stopping = "graceful" if graceful else True
            self._cond.notify_all()
        if graceful:    # let the watch handlers write their final chunk
            deadline = time.monotonic() + 5
            while self.open_watches and time.monotonic() < deadline:
                time.sleep(0.01)
        for s in self._servers:
            s.shutdown()
        with self._conns_lock:
            conns = list(self._conns)
        for c in conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        for s in self._servers:
            s.server_close()          # joins the connection threads
        for t in self._threads:
            t.join(5)
        self._servers, self._threads = [], []

    def stop(self):
        """Stops listening, closes every connection, joins every thread, removes the
        temporary directory (if this object made it)."""
        self._shutdown_listeners()
        if self._own_dir:
            shutil.rmtree(self.dir, ignore_errors=True)

    def outage(self, graceful=False):
        """The server goes away: connections are closed and new ones refused (the port is
        closed) until recover(). graceful=True: open watches first end cleanly with the
        final chunk, as kube-apiserver's watch handlers return on shutdown; otherwise they
        are cut like a crash."""
        self._shutdown_listeners(graceful)

    def recover(self, keep_state=True, keep_history=False):
        """Listens again on the same port. keep_state: objects and resourceVersions are kept
        (etcd survives a kube-apiserver restart); keep_history=False empties the watch
        history as a restarted watch cache has it, so watches from older resourceVersions
        get 410. keep_state=False: an empty cluster starting again at INITIAL_RV."""
        if not keep_state:
            self._reset_store()
        elif not keep_history:
            self.compact()
        return self.start()

    def restart(self, keep_state=True, keep_history=False, down_for=0.0, graceful=False):
        """outage(graceful), down_for seconds, recover(keep_state, keep_history)."""
        self.outage(graceful)
        if down_for:
            time.sleep(down_for)
        return self.recover(keep_state=keep_state, keep_history=keep_history)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
        return False

    def _track(self, sock, add):
        with self._conns_lock:
            (self._conns.add if add else self._conns.discard)(sock)

    # --- faults and auth -----------------------------------------------------------------
    def set_token(self, token, user=None):
        """Token rotation: only `token` is valid from now on (the old one gets 401). The
        token files written by kubeconfig(auth="token-file") and serviceaccount_dir() are
        rewritten, as the kubelet rewrites a projected service-account token."""
        self._tokens = {token: user or self.user}
        for path in self._token_files:
            tmp = path + ".tmp"
            with open(tmp, "w") as f:
                f.write(token)
            os.replace(tmp, path)

    def add_token(self, token, user=None):
        self._tokens[token] = user or self.user

    def forbid(self, resource, verbs=("list", "watch", "get")):
        """RBAC denies these verbs on the resource: 403 with the real message."""
        self._forbidden[self._res(resource)] = set(verbs)

    def allow(self, resource=None):
        if resource is None:
            self._forbidden.clear()
        else:
            self._forbidden.pop(self._res(resource), None)

    def fail(self, code=503, count=None, resources=None, message=None, retry_after=None):
        """Answer the next `count` requests (all while None) to the given resources (all API
        requests while None) with a Status of this code: 500 InternalError, 503
        ServiceUnavailable, 429 TooManyRequests. fail(None) ends it."""
        if code is None:
            self._failure = None
            return
        reason = {500: "InternalError", 503: "ServiceUnavailable", 429: "TooManyRequests",
                  504: "Timeout"}.get(code, "InternalError")
        message = message or {500: "Internal error occurred: fake failure",
                              503: "service unavailable",
                              429: "Too many requests, please try again later."}.get(
                                  code, "fake failure")
        res = {self._res(r) for r in resources} if resources else None
        self._failure = [code, reason, message, count, res, retry_after]

    def cut_watches(self):
        """Closes every open watch stream abruptly (no final chunk)."""
        with self._cond:
            self._cut_gen += 1
            self._cond.notify_all()

    def stall(self, seconds=None):
        """Hold back the answers to requests (arriving or waiting) for `seconds`, or until
        unstall() when None: the connection is accepted and then nothing comes back."""
        with self._cond:
            self._stall_until = time.monotonic() + seconds if seconds else float("inf")

    def unstall(self):
        with self._cond:
            self._stall_until = None
            self._cond.notify_all()

    def pause_watches(self):
        """Open watch streams stay open but deliver nothing (no events, bookmarks or final
        chunk) until resume_watches(): a half-dead connection."""
        with self._cond:
            self._paused = True

    def resume_watches(self):
        with self._cond:
            self._paused = False
            self._cond.notify_all()

    def send_bookmarks(self):
        """Every open watch that allowed bookmarks gets a BOOKMARK at the current RV now."""
        with self._cond:
            self._bookmark_gen += 1
            self._cond.notify_all()

    # --- the store -----------------------------------------------------------------------
    def _reset_store(self):
        with self._cond:
            self.rv = INITIAL_RV
            self.compacted_rv = INITIAL_RV
            self._objects = {r: {} for r in RESOURCES}
            self._order = {}      # resource -> (keys, etcd keys) of the live state, sorted
            self._history = []    # _history[i].rv == compacted_rv + 1 + i
            self._cond.notify_all()

    @staticmethod
    def _res(name):
        n = name.lower()
        for r, spec in RESOURCES.items():
            if n in (r, spec[2].lower(), r.rstrip("s"), *spec[4]):
                return r
        if n in ("endpointslice", "endpointslices"):
            return "endpointslices"
        raise KeyError(f"unknown resource {name!r}")

    def _key(self, resource, obj):
        md = obj["metadata"]
        return (md.get("namespace", "") if RESOURCES[resource][3] else "", md["name"])

    def _commit(self, resource, type_, key, obj, prev):
        """One change: bump the RV, stamp the object, record the event, wake the watchers.
        Called with the lock held."""
        self.rv += 1
        obj["metadata"]["resourceVersion"] = str(self.rv)
        obj = go_order(obj)
        if type_ != "MODIFIED":
            self._order.pop(resource, None)
        if type_ == "DELETED":
            self._objects[resource].pop(key, None)
        else:
            self._objects[resource][key] = obj
        self._history.append(_Event(self.rv, resource, type_, key, obj, prev))
        if self.history_limit and len(self._history) > self.history_limit:
            self.compact(self.rv - self.history_limit)
        self._cond.notify_all()
        return obj

    def _complete(self, resource, obj):
        group, version, kind = RESOURCES[resource][:3]
        obj = {"kind": kind, "apiVersion": api_version(resource),
               **{k: v for k, v in obj.items() if k not in ("kind", "apiVersion")}}
        md = obj.setdefault("metadata", {})
        if RESOURCES[resource][3]:
            md.setdefault("namespace", "default")
        md.setdefault("uid", str(uuid.uuid4()))
        md.setdefault("creationTimestamp", now_rfc3339())
        md.setdefault("managedFields", [{
            "manager": "kubectl-client-side-apply", "operation": "Update",
            "apiVersion": api_version(resource), "time": md["creationTimestamp"],
            "fieldsType": "FieldsV1", "fieldsV1": {"f:metadata": {"f:labels": {".": {}}}}}])
        return obj

    def create(self, obj, resource=None):
        """Adds an object (a dict in Kubernetes JSON form; kind picks the resource). Missing
        metadata (uid, creationTimestamp, managedFields, namespace) is filled in. ADDED."""
        resource = self._res(resource or obj["kind"])
        obj = self._complete(resource, json.loads(dumps(obj)))
        with self._cond:
            key = self._key(resource, obj)
            if key in self._objects[resource]:
                raise KeyError(f"{resource} {key} already exists")
            return self._commit(resource, "ADDED", key, obj, None)

    def update(self, obj, resource=None):
        """Replaces an existing object (uid and creationTimestamp kept). MODIFIED."""
        resource = self._res(resource or obj["kind"])
        obj = json.loads(dumps(obj))
        with self._cond:
            key = self._key(resource, {"metadata": {"namespace": "default", **obj["metadata"]}})
            prev = self._objects[resource][key]
            for f in ("uid", "creationTimestamp", "managedFields", "namespace"):
                if f in prev["metadata"]:
                    obj["metadata"].setdefault(f, prev["metadata"][f])
            obj = self._complete(resource, obj)
            if "generation" in prev["metadata"]:
                obj["metadata"]["generation"] = prev["metadata"]["generation"] + 1
            return self._commit(resource, "MODIFIED", key, obj, prev)

    def apply(self, obj, resource=None):
        """create() or update(), whichever fits."""
        resource = self._res(resource or obj["kind"])
        md = obj["metadata"]
        if self.get(resource, md["name"], md.get("namespace", "default")) is None:
            return self.create(obj, resource)
        return self.update(obj, resource)

    def modify(self, resource, name, namespace="default", fn=None, labels=None):
        """Changes an object in place: fn(copy) edits a copy (or labels are merged). MODIFIED."""
        cur = self.get(resource, name, namespace)
        if cur is None:
            raise KeyError(f"{resource} {namespace}/{name} not found")
        if fn:
            fn(cur)
        if labels:
            cur["metadata"].setdefault("labels", {}).update(labels)
        return self.update(cur, resource)

    def delete(self, resource, name, namespace="default"):
        """Removes an object; the DELETED event carries its last state at the new RV."""
        resource = self._res(resource)
        with self._cond:
            key = (namespace if RESOURCES[resource][3] else "", name)
            prev = self._objects[resource][key]
            obj = json.loads(dumps(prev))
            return self._commit(resource, "DELETED", key, obj, prev)

    def get(self, resource, name, namespace="default"):
        """A copy of the current object, or None."""
        resource = self._res(resource)
        key = (namespace if RESOURCES[resource][3] else "", name)
        with self._cond:
            obj = self._objects[resource].get(key)
            return json.loads(dumps(obj)) if obj else None

    def objects(self, resource):
        """Copies of the current objects, in list order."""
        with self._cond:
            objs = self._objects[self._res(resource)]
            return [json.loads(dumps(objs[k])) for k in sorted(objs, key=self._skey)]

    def compact(self, rv=None):
        """Forgets the history up to rv (default: all of it, i.e. the current RV): watches
        and continue tokens from an RV below it get 410 Expired."""
        with self._cond:
            rv = self.rv if rv is None else min(rv, self.rv)
            if rv > self.compacted_rv:
                del self._history[:rv - self.compacted_rv]
                self.compacted_rv = rv
            self._cond.notify_all()

    # --- object builders -----------------------------------------------------------------
    def _next_ip(self, kind):
        n = self._ip_next[kind]
        self._ip_next[kind] += 1
        base = "10.96.0.0" if kind == "svc" else "10.244.0.0"
        return str(ipaddress.ip_address(base) + n)

    def add_namespace(self, name, labels=None):
        return self.create({"kind": "Namespace", "metadata": {
            "name": name, "labels": {"kubernetes.io/metadata.name": name, **(labels or {})}},
            "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"}})

    def add_service(self, name, namespace="default", cluster_ip=None, ports=None,
                    headless=False, external_name=None, endpoints=None, labels=None,
                    ip_families=None):
        """A Service (ClusterIP, headless with headless=True, ExternalName with external_name)
        and, when endpoints (a list of IPs) is given, its EndpointSlice. Returns the Service."""
        ports = ports or [{"name": "http", "protocol": "TCP", "port": 80, "targetPort": 8080}]
        spec = {"ports": ports, "selector": {"app": name}, "type": "ClusterIP",
                "sessionAffinity": "None", "internalTrafficPolicy": "Cluster"}
        if external_name:
            spec = {"type": "ExternalName", "externalName": external_name,
                    "sessionAffinity": "None"}
        else:
            ip = "None" if headless else (cluster_ip or self._next_ip("svc"))
            spec.update({"clusterIP": ip, "clusterIPs": [ip],
                         "ipFamilies": ip_families or ["IPv4"],
                         "ipFamilyPolicy": "SingleStack"})
        svc = self.create({"kind": "Service", "metadata": {
            "name": name, "namespace": namespace, "labels": {"app": name, **(labels or {})}},
            "spec": spec, "status": {"loadBalancer": {}}})
        if endpoints is not None and not external_name:
            self.add_endpointslice(svc, endpoints)
        return svc

    def add_endpointslice(self, service, ips, name=None, ready=True, address_type="IPv4",
                          hostnames=None):
        """The EndpointSlice the endpointslice controller would write for the Service."""
        md = service["metadata"]
        svc_name, ns = md["name"], md["namespace"]
        eps = []
        for i, ip in enumerate(ips):
            ep = {"addresses": [ip], "conditions": {"ready": ready, "serving": ready,
                                                    "terminating": False},
                  "nodeName": f"node-{i % 3}",
                  "targetRef": {"kind": "Pod", "namespace": ns, "name": f"{svc_name}-{i}",
                                "uid": str(uuid.uuid4())}}
            if hostnames:
                ep["hostname"] = hostnames[i]
            eps.append(ep)
        ports = [{"name": p.get("name", ""), "protocol": p.get("protocol", "TCP"),
                  "port": p.get("targetPort", p["port"]) if isinstance(
                      p.get("targetPort", 0), int) else p["port"]}
                 for p in service["spec"].get("ports", [])]
        return self.create({"kind": "EndpointSlice", "metadata": {
            "name": name or f"{svc_name}-{uuid.uuid4().hex[:5]}", "generateName": f"{svc_name}-",
            "namespace": ns, "generation": 1,
            "labels": {"endpointslice.kubernetes.io/managed-by":
                       "endpointslice-controller.k8s.io",
                       "kubernetes.io/service-name": svc_name},
            "annotations": {"endpoints.kubernetes.io/last-change-trigger-time": now_rfc3339()},
            "ownerReferences": [{"apiVersion": "v1", "kind": "Service", "name": svc_name,
                                 "uid": md["uid"], "controller": True,
                                 "blockOwnerDeletion": True}]},
            "addressType": address_type, "endpoints": eps, "ports": ports})

    def add_pod(self, name, namespace="default", ip=None, node="node-0", labels=None,
                hostname=None, subdomain=None, phase="Running"):
        ip = ip or self._next_ip("pod")
        spec = {"containers": [{"name": "main", "image": "registry.k8s.io/pause:3.10"}],
                "nodeName": node, "restartPolicy": "Always", "dnsPolicy": "ClusterFirst"}
        if hostname:
            spec["hostname"] = hostname
        if subdomain:
            spec["subdomain"] = subdomain
        return self.create({"kind": "Pod", "metadata": {
            "name": name, "namespace": namespace, "labels": labels or {"app": name}},
            "spec": spec, "status": {"phase": phase, "hostIP": "192.168.0.10", "podIP": ip,
                                     "podIPs": [{"ip": ip}]}})

    def delete_service(self, name, namespace="default"):
        """The Service and (as the garbage collector would) its EndpointSlices."""
        for key, es in list(self._objects["endpointslices"].items()):
            if key[0] == namespace and es["metadata"].get("labels", {}).get(
                    "kubernetes.io/service-name") == name:
                self.delete("endpointslices", key[1], namespace)
        return self.delete("services", name, namespace)

    def bulk(self, services=3000, namespaces=30, endpoints=2, prefix="svc"):
        """services Services spread over namespaces Namespaces (bulk-00 ...), each with an
        EndpointSlice of `endpoints` ready IPs. Returns the namespace names."""
        names = [f"bulk-{i:02d}" for i in range(namespaces)]
        for ns in names:
            if self.get("namespaces", ns, "") is None:
                self.add_namespace(ns)
        for i in range(services):
            ips = [self._next_ip("pod") for _ in range(endpoints)]
            self.add_service(f"{prefix}-{i:05d}", names[i % namespaces], endpoints=ips)
        return names

    def load(self, path):
        """Objects from a JSON file (one object or a List)."""
        with open(path) as f:
            doc = json.load(f)
        for obj in doc.get("items", [doc]) if doc.get("kind", "").endswith("List") else [doc]:
            self.apply(obj)

    # --- request accounting --------------------------------------------------------------
    def count(self, verb=None, resource=None, status=None, **query):
        """How many requests matched: verb (list, watch, get, discovery), resource, HTTP
        status, and query parameters (e.g. limit="500", resourceVersion="0")."""
        return len(self.find_requests(verb, resource, status, **query))

    def find_requests(self, verb=None, resource=None, status=None, **query):
        out = []
        for r in list(self.requests):
            if verb and r["verb"] != verb or resource and r["resource"] != self._res(resource):
                continue
            if status is not None and r["status"] != status:
                continue
            if any(r["query"].get(k) != v for k, v in query.items()):
                continue
            out.append(r)
        return out

    def reset_requests(self):
        self.requests = []

    @property
    def open_watches(self):
        """How many watch streams are open now (all resources)."""
        return sum(self._watching.values())

    def watching(self, resource):
        """How many watch streams of this resource are open now."""
        return self._watching.get(self._res(resource), 0)

    def wait_for_watches(self, n=1, resource=None, timeout=10.0):
        """Blocks until at least n watches (of the resource) are open; returns whether."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while (self.watching(resource) if resource else self.open_watches) < n:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(min(left, 0.1))
        return True

    def wait_for_requests(self, n=1, timeout=10.0, **match):
        """Blocks until count(**match) >= n (e.g. verb="list", resource="services")."""
        deadline = time.monotonic() + timeout
        while self.count(**match) < n:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.02)
        return True

    def request_log(self):
        """The requests as text lines, for a failing test's report."""
        out = []
        for r in list(self.requests):
            q = urllib.parse.urlencode(r["query"])
            out.append(f'{r["method"]} {r["path"]}{"?" + q if q else ""} -> {r["status"]} '
                       f'({r["verb"]} {r["resource"] or ""}, user {r["user"]!r}'
                       + (f', {r["events"]} events' if "events" in r else "") + ")")
        return "\n".join(out)

    # --- request handling ----------------------------------------------------------------
    _PATH = re.compile(r"^/(?:api/v1|apis/(?P<group>[a-z0-9.]+)/v1)"
                       r"(?:/namespaces/(?P<ns>[^/]+))?/(?P<res>[a-z]+)(?:/(?P<name>[^/]+))?$")

    def _authenticate(self, h):
        """The user name, or None. As kube-apiserver's union authenticator: a client
        certificate verified against the CA (its CN) first, then the bearer token."""
        try:
            cert = h.connection.getpeercert()
        except (AttributeError, ValueError):
            cert = None
        for rdn in (cert or {}).get("subject", ()):
            for k, v in rdn:
                if k == "commonName":
                    return v
        auth = h.headers.get("Authorization", "")
        if auth.startswith("Bearer "):
            return self._tokens.get(auth[7:].strip())
        return None

    def _handle(self, h):
        """One request: route, authenticate (401), injected failure (fail()), authorize
        (403, forbid()), then discovery, GET, LIST or WATCH. Recorded in self.requests."""
        url = urllib.parse.urlsplit(h.path)
        path = url.path.rstrip("/") or "/"
        query = {k: v[0] for k, v in urllib.parse.parse_qs(url.query,
                                                           keep_blank_values=True).items()}
        rec = {"time": time.time(), "method": h.command, "path": path, "query": query,
               "verb": "discovery", "resource": None, "namespace": None, "user": None,
               "status": None, "accept": h.headers.get("Accept", "")}
        self.requests.append(rec)

        def reply(code, obj, headers=()):
            rec["status"] = code
            h.send_json(code, obj, headers)

        m = self._PATH.match(path)
        spec = RESOURCES.get(m["res"]) if m else None
        if not spec or (m["group"] or "") != spec[0] or (m["ns"] and not spec[3]) or \
                (m["name"] and spec[3] and not m["ns"]):
            m = None
        else:
            verb = "get" if m["name"] else (
                "watch" if query.get("watch") in ("true", "1") else "list")
            rec.update(verb=verb, resource=m["res"], namespace=m["ns"])
        rec["user"] = user = self._authenticate(h)
        if user is None:
            return reply(401, status(401, "Unauthorized", "Unauthorized"))
        f = self._failure
        if f and (f[4] is None or rec["resource"] in f[4]):
            code, reason, message, left, _, retry_after = f
            if left is not None:
                f[3] = left - 1
                if f[3] <= 0:
                    self._failure = None
            headers = [("Retry-After", str(retry_after))] if retry_after else []
            details = {"retryAfterSeconds": retry_after} if retry_after else None
            return reply(code, status(code, reason, message, details), headers)
        with self._cond:
            while self._stall_until and not self._stopping:
                left = self._stall_until - time.monotonic()
                if left <= 0:
                    self._stall_until = None
                    break
                self._cond.wait(min(left, 1.0))
        if path in ("/healthz", "/livez", "/readyz"):
            rec["status"] = 200
            h.send_response(200)
            h.send_header("Content-Type", "text/plain; charset=utf-8")
            h.send_header("Content-Length", "2")
            h.end_headers()
            return h.wfile.write(b"ok")
        doc = self._discovery(path)
        if doc is not None:
            return reply(200, doc)
        if m is None:
            return reply(404, status(404, "NotFound",
                                     "the server could not find the requested resource", {}))
        if h.command != "GET":
            return reply(405, status(405, "MethodNotAllowed",
                                     f"the fake API server does not serve {h.command}", {}))
        resource, ns, name, verb = m["res"], m["ns"], m["name"], rec["verb"]
        if verb in self._forbidden.get(resource, ()):
            return reply(403, self._forbidden_status(user, verb, resource, ns, name))
        try:
            if verb == "get":
                return self._get(reply, resource, ns, name)
            if verb == "watch":
                rec["status"] = 200
                return self._watch(h, rec, resource, ns, query)
            return self._list(reply, resource, ns, query)
        except ValueError as e:
            return reply(400, status(400, "BadRequest", str(e)))

    @staticmethod
    def _forbidden_status(user, verb, resource, ns, name):
        """responsewriters.forbiddenMessage inside apierrors.NewForbidden."""
        group = RESOURCES[resource][0]
        scope = f'in the namespace "{ns}"' if ns else "at the cluster scope"
        qualified = f"{resource}.{group}" if group else resource
        what = f'{qualified} "{name}"' if name else qualified
        msg = (f'{what} is forbidden: User "{user}" cannot {verb} resource '
               f'"{resource}" in API group "{group}" {scope}')
        details = {"name": name} if name else {}
        if group:
            details["group"] = group
        details["kind"] = resource
        return status(403, "Forbidden", msg, details)

    def _discovery(self, path):
        """The legacy (unaggregated) discovery documents; kubectl falls back to them when
        the answer to its aggregated-discovery Accept header is plain application/json."""
        def resource_list(group):
            out = []
            for r, (g, v, kind, namespaced, short) in RESOURCES.items():
                if g != group:
                    continue
                d = {"name": r, "singularName": kind.lower(), "namespaced": namespaced,
                     "kind": kind, "verbs": ["get", "list", "watch"]}
                if short:
                    d["shortNames"] = short
                out.append(d)
            return out
        gv = {"groupVersion": "discovery.k8s.io/v1", "version": "v1"}
        if path == "/api":
            return {"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": [
                {"clientCIDR": "0.0.0.0/0", "serverAddress": f"{self.host}:{self.port}"}]}
        if path == "/api/v1":
            return {"kind": "APIResourceList", "groupVersion": "v1",
                    "resources": resource_list("")}
        group = {"name": "discovery.k8s.io", "versions": [gv], "preferredVersion": gv}
        if path == "/apis":
            return {"kind": "APIGroupList", "apiVersion": "v1", "groups": [group]}
        if path == "/apis/discovery.k8s.io":
            return {"kind": "APIGroup", "apiVersion": "v1", **group}
        if path == "/apis/discovery.k8s.io/v1":
            return {"kind": "APIResourceList", "apiVersion": "v1",
                    "groupVersion": "discovery.k8s.io/v1",
                    "resources": resource_list("discovery.k8s.io")}
        if path == "/version":
            return SERVER_VERSION
        return None

    def _get(self, reply, resource, ns, name):
        obj = self.get(resource, name, ns or "")
        if obj is None:
            group = RESOURCES[resource][0]
            qualified = f"{resource}.{group}" if group else resource
            details = {"name": name, **({"group": group} if group else {}), "kind": resource}
            return reply(404, status(404, "NotFound", f'{qualified} "{name}" not found',
                                     details))
        return reply(200, obj)

    def _matcher(self, ns, query):
        lsel = parse_label_selector(query.get("labelSelector", ""))
        fsel = parse_field_selector(query.get("fieldSelector", ""))
        return lambda o: ((not ns or o["metadata"].get("namespace") == ns)
                          and lsel(o) and fsel(o))

    def _state_at(self, resource, rv):
        """The objects of a resource as they were at rv (rewinding the history); the caller
        holds the lock and has checked compacted_rv <= rv <= self.rv."""
        state = dict(self._objects[resource])
        for ev in reversed(self._history[rv - self.compacted_rv:]):
            if ev.resource != resource:
                continue
            if ev.type == "ADDED":
                state.pop(ev.key, None)
            else:
                state[ev.key] = ev.prev
        return state

    def _wait_for_rv(self, rv):
        """As the watch cache: wait up to 3 s (rv_wait) for a future resourceVersion, then
        504 "Too large resource version". Lock held."""
        deadline = time.monotonic() + self.rv_wait
        while self.rv < rv and not self._stopping:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            self._cond.wait(left)
        return self.rv >= rv

    def _list(self, reply, resource, ns, query):
        """LIST semantics of the API Concepts table: resourceVersion unset -> most recent;
        "0" -> any (here the most recent); N -> not older than N (Exact with limit or with
        resourceVersionMatch=Exact); continue -> the snapshot of the token."""
        match = self._matcher(ns, query)
        limit = int(query.get("limit") or 0)
        rv_param = query.get("resourceVersion", "")
        rv_match = query.get("resourceVersionMatch", "")
        token = query.get("continue", "")
        if rv_match not in ("", "Exact", "NotOlderThan"):
            raise ValueError(f'resourceVersionMatch: Unsupported value: "{rv_match}"')
        if rv_match and not rv_param:
            raise ValueError("resourceVersionMatch: Forbidden: resourceVersionMatch is "
                             "forbidden unless resourceVersion is provided")
        if token and rv_param not in ("", "0"):
            raise ValueError("specifying resource version is not allowed when using continue")
        if rv_param == "0" and self.rv0_unpaged:
            limit = 0
        start = ""
        with self._cond:
            if token:
                decoded = decode_continue(token)
                if decoded is None:
                    raise ValueError("continue key is not valid")
                snap_rv, start = decoded
                if snap_rv == -1:
                    snap_rv = self.rv
                elif snap_rv < self.compacted_rv:
                    key = start
                    return reply(410, expired(
                        "The provided continue parameter is too old to display a consistent "
                        "list result. You can start a new list without the continue "
                        "parameter, or use the continue token in this response to retrieve "
                        "the remainder of the results. Continuing with the provided token "
                        "results in an inconsistent list - objects that were created, "
                        "modified, or deleted between the time the first chunk was returned "
                        "and now may show up in the list.",
                        continue_token=encode_continue(-1, key)))
            elif rv_param not in ("", "0"):
                try:
                    want = int(rv_param)
                except ValueError:
                    raise ValueError(f"invalid resource version: {rv_param}")
                exact = rv_match == "Exact" or (limit and rv_match != "NotOlderThan")
                if not self._wait_for_rv(want):
                    return reply(504, too_large_rv(want, self.rv), [("Retry-After", "1")])
                if exact and want < self.compacted_rv:
                    return reply(410, expired("The resourceVersion for the provided list is "
                                              "too old."))
                snap_rv = want if exact else self.rv
            else:
                snap_rv = self.rv
            live = snap_rv == self.rv
            state = self._objects[resource] if live else self._state_at(resource, snap_rv)
            keys = self._keys_from(resource, state, live, start)
            items, last, i = [], None, 0
            for i, k in enumerate(keys):
                o = state[k]
                if not match(o):
                    continue
                if limit and len(items) == limit:
                    break
                items.append(o)
                last = k
            else:
                i = len(keys)
            more = bool(limit) and i < len(keys)
            remaining = None
            if more and not query.get("labelSelector") and not query.get("fieldSelector"):
                remaining = len(keys) - i if not ns else sum(1 for k in keys[i:]
                                                             if match(state[k]))
        md = {"resourceVersion": str(snap_rv)}
        if more:
            md["continue"] = encode_continue(snap_rv, self._skey(last) + "\x00")
            if remaining is not None:
                md["remainingItemCount"] = remaining
        group, version, kind = RESOURCES[resource][:3]
        body = {"kind": kind + "List", "apiVersion": api_version(resource), "metadata": md,
                "items": [{k: v for k, v in o.items() if k not in ("kind", "apiVersion")}
                          for o in items]}
        return reply(200, body)

    def _keys_from(self, resource, state, live, start):
        """The keys of state in list order, from the etcd key start on. The live state's order
        is kept until an object comes or goes, so that a list of many pages does not sort
        every object again for each page. Lock held."""
        if not live:
            return sorted((k for k in state if self._skey(k) >= start), key=self._skey)
        if resource not in self._order:
            keys = sorted(state, key=self._skey)
            self._order[resource] = (keys, [self._skey(k) for k in keys])
        keys, skeys = self._order[resource]
        return keys[bisect.bisect_left(skeys, start):]

    @staticmethod
    def _skey(key):
        """The etcd key below the resource prefix, NAMESPACE/NAME or NAME: lists are in
        the byte order of these keys, as etcd returns a range."""
        return f"{key[0]}/{key[1]}" if key[0] else key[1]

    def _bookmark(self, resource, rv, initial_end=False):
        md = {"resourceVersion": str(rv)}
        if initial_end:
            md["annotations"] = {"k8s.io/initial-events-end": "true"}
        obj = {"kind": RESOURCES[resource][2], "apiVersion": api_version(resource),
               "metadata": md}
        return (dumps({"type": "BOOKMARK", "object": obj}) + "\n").encode()

    def _watch(self, h, rec, resource, ns, query):
        """WATCH: resourceVersion unset or "0" starts with synthetic ADDED events for the
        current state (plus, with sendInitialEvents=true, a BOOKMARK annotated
        k8s.io/initial-events-end); N replays the history after N, or, when N is older than
        the history, sends one ERROR event (410 Expired) and ends, as the cacher does.
        Then live events; BOOKMARKs on demand or periodically; the stream ends cleanly
        after timeoutSeconds, abruptly on cut_watches(), outage() and stop()."""
        match = self._matcher(ns, query)
        bookmarks = query.get("allowWatchBookmarks") in ("true", "1")
        initial_events = query.get("sendInitialEvents") in ("true", "1")
        rv_param = query.get("resourceVersion", "")
        timeout = float(query.get("timeoutSeconds") or 0)
        if timeout <= 0:    # as the apiserver: minRequestTimeout * [1, 2)
            timeout = self.watch_timeout * (1 + random.random())
        deadline = time.monotonic() + timeout
        if rv_param and not rv_param.isdigit():
            rec["status"] = 400
            return h.send_json(400, status(400, "BadRequest",
                                           f"invalid resource version: {rv_param}"))
        h.send_response(200)
        h.send_header("Audit-Id", str(uuid.uuid4()))
        h.send_header("Cache-Control", "no-cache, private")
        h.send_header("Content-Type", "application/json")
        h.send_header("Transfer-Encoding", "chunked")
        h.end_headers()
        h.wfile.flush()
        pending = []
        with self._cond:
            cut_gen, bm_gen = self._cut_gen, self._bookmark_gen
            if rv_param in ("", "0") or initial_events:
                cursor = self.rv
                for k in sorted(self._objects[resource], key=self._skey):
                    o = self._objects[resource][k]
                    if match(o):
                        pending.append((dumps({"type": "ADDED", "object": o}) + "\n").encode())
                if initial_events and bookmarks:
                    pending.append(self._bookmark(resource, cursor, initial_end=True))
            else:
                cursor = int(rv_param)
                if cursor < self.compacted_rv:
                    msg = f"too old resource version: {rv_param} ({self.compacted_rv})"
                    pending.append((dumps({"type": "ERROR", "object": expired(msg)})
                                    + "\n").encode())
                    cursor = None
        with self._cond:
            self._watching[resource] = self._watching.get(resource, 0) + 1
            self._cond.notify_all()
        rec["events"] = 0
        try:
            for line in pending:
                h.send_chunk(line)
            rec["events"] += len(pending)
            if cursor is None:
                return h.send_chunk(b"")
            next_bm = self._next_bookmark(deadline) if bookmarks else None
            while True:
                out = []
                with self._cond:
                    while True:
                        if self._stopping == "graceful":
                            cursor = None
                            break
                        if self._stopping or self._cut_gen != cut_gen:
                            raise _Abort()
                        if self._paused:
                            self._cond.wait(0.2)
                            continue
                        if cursor < self.compacted_rv:
                            msg = f"too old resource version: {cursor} ({self.compacted_rv})"
                            out.append((dumps({"type": "ERROR", "object": expired(msg)})
                                        + "\n").encode())
                            cursor = None
                            break
                        if self.rv > cursor:
                            for ev in self._history[cursor - self.compacted_rv:]:
                                line = self._event_line(ev, resource, match)
                                if line:
                                    out.append(line)
                            cursor = self.rv
                            if out:
                                break
                        now = time.monotonic()
                        if bookmarks and (self._bookmark_gen != bm_gen or
                                          (next_bm is not None and now >= next_bm)):
                            bm_gen = self._bookmark_gen
                            out.append(self._bookmark(resource, self.rv))
                            next_bm = self._next_bookmark(deadline)
                            break
                        if now >= deadline:
                            break
                        wait = deadline - now
                        if next_bm is not None:
                            wait = min(wait, max(0.01, next_bm - now))
                        self._cond.wait(wait)
                for line in out:
                    h.send_chunk(line)
                rec["events"] += len(out)
                if cursor is None or time.monotonic() >= deadline:
                    return h.send_chunk(b"")
        except _Abort:
            h.close_connection = True
            try:
                h.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        except (OSError, ssl.SSLError):
            h.close_connection = True
        finally:
            with self._cond:
                self._watching[resource] -= 1
                self._cond.notify_all()

    def _next_bookmark(self, deadline):
        """The cacher's rule: every bookmark_interval, and 2 s before the deadline."""
        if not self.bookmark_interval:
            return None
        t = time.monotonic() + self.bookmark_interval
        if deadline - 2 > time.monotonic():
            t = min(t, deadline - 2)
        return t

    @staticmethod
    def _event_line(ev, resource, match):
        """The event as this watcher sees it: filtered by namespace and selectors; an update
        that moves an object into (out of) the selection is ADDED (DELETED)."""
        if ev.resource != resource:
            return None
        now_in = match(ev.obj)
        if ev.type != "MODIFIED":
            return ev.line() if now_in else None
        was_in = match(ev.prev)
        if now_in and was_in:
            return ev.line()
        if now_in:
            return (dumps({"type": "ADDED", "object": ev.obj}) + "\n").encode()
        if was_in:
            gone = json.loads(dumps(ev.prev))
            gone["metadata"]["resourceVersion"] = str(ev.rv)
            return (dumps({"type": "DELETED", "object": gone}) + "\n").encode()
        return None


def main():
    ap = argparse.ArgumentParser(description="A fake kube-apiserver (list/watch of services, "
                                 "endpointslices, endpoints, namespaces, pods) over HTTPS.")
    ap.add_argument("--port", type=int, default=6443)
    ap.add_argument("--dir", required=True, help="where certs and kubeconfigs are written")
    ap.add_argument("--token", default=DEFAULT_TOKEN)
    ap.add_argument("--ipv6", action="store_true", help="also listen on [::1]")
    ap.add_argument("--services", type=int, default=3, help="services to create")
    ap.add_argument("--namespaces", type=int, default=1)
    ap.add_argument("--load", action="append", default=[], help="a JSON object or List")
    ap.add_argument("--churn", type=float, default=0,
                    help="every CHURN seconds relabel a service (watch traffic)")
    ap.add_argument("--bookmark-interval", type=float, default=60)
    args = ap.parse_args()
    api = FakeAPIServer(token=args.token, ipv6=args.ipv6, port=args.port,
                        directory=os.path.abspath(args.dir),
                        bookmark_interval=args.bookmark_interval)
    api.add_namespace("default")
    if args.services:
        api.bulk(args.services, args.namespaces)
    for path in args.load:
        api.load(path)
    api.start()
    kc = api.kubeconfig(os.path.join(api.dir, "kubeconfig"))
    api.kubeconfig(os.path.join(api.dir, "kubeconfig-client-cert"), auth="client-cert")
    print(f"fake kube-apiserver on {api.url}" + (f" and {api.url6}" if args.ipv6 else ""))
    print(f"kubeconfig: {kc}  (token {api.token!r}; client-cert variant beside it)")
    print(f"  kubectl --kubeconfig {kc} get svc -A", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *a: stop.set())
    signal.signal(signal.SIGINT, lambda *a: stop.set())
    n = 0
    while not stop.wait(args.churn or 3600):
        if args.churn:
            svc = api.objects("services")
            if svc:
                s = svc[n % len(svc)]
                api.modify("services", s["metadata"]["name"], s["metadata"]["namespace"],
                           labels={"churn": str(n)})
                n += 1
    api.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
