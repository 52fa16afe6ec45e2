"""Tests of the fake kube-apiserver itself (fake_apiserver.py): list paging, watch from a
resourceVersion, bookmarks, 410 on compacted history (watch ERROR event and continue token),
token rotation, 403, failures, outage and restart, and, where kubectl is installed, the
fake against the real client. Every test stops the servers and processes it started."""

import base64
import gzip
import http.client
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time

import pytest

from fake_apiserver import FakeAPIServer, INITIAL_RV
from svcdns_e2e import have_ipv6_loopback, wait_until

KUBECTL = shutil.which("kubectl")
needs_kubectl = pytest.mark.skipif(KUBECTL is None, reason="kubectl is not installed")


@pytest.fixture
def api():
    srv = FakeAPIServer()
    srv.add_namespace("default")
    srv.add_namespace("web")
    srv.add_service("echo", "default", endpoints=["10.244.0.5", "10.244.0.6"])
    srv.add_service("db", "web", headless=True, endpoints=["10.244.1.5"])
    srv.add_pod("db-0", "web", ip="10.244.1.5")
    srv.start()
    yield srv
    srv.stop()


# --- a small client ---------------------------------------------------------------------------
def tls_context(api, cafile=None, client_cert=False):
    ctx = ssl.create_default_context(cafile=cafile or api.ca_file)
    if client_cert:
        ctx.load_cert_chain(api.client_cert, api.client_key)
    return ctx


def get(api, path, token=None, ctx=None, port=None, host="127.0.0.1"):
    """GET path -> (status, parsed JSON body, headers)."""
    conn = http.client.HTTPSConnection(host, port or api.port, context=ctx or tls_context(api),
                                       timeout=10)
    headers = {} if token == "" else {"Authorization": f"Bearer {token or api.token}"}
    try:
        conn.request("GET", path, headers=headers)
        resp = conn.getresponse()
        body = resp.read()
        return resp.status, json.loads(body) if body.startswith(b"{") else body, resp.headers
    finally:
        conn.close()


class Watch:
    """A raw watch stream: parses the chunked framing itself, so tests see each chunk and
    whether the stream ended with the final chunk ("clean") or not ("abrupt")."""

    def __init__(self, api, path, token=None):
        raw = socket.create_connection(("127.0.0.1", api.port), timeout=10)
        self.sock = tls_context(api).wrap_socket(raw, server_hostname="127.0.0.1")
        self.sock.sendall((f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                           f"Authorization: Bearer {token or api.token}\r\n"
                           "Accept: application/json\r\n\r\n").encode())
        self.buf = b""
        head = self._until(b"\r\n\r\n")
        lines = head.decode().split("\r\n")
        self.status = int(lines[0].split()[1])
        self.headers = {k.lower(): v.strip() for k, v in
                        (line.split(":", 1) for line in lines[1:] if ":" in line)}
        self.ended = None
        self.chunks = []

    def _fill(self):
        data = self.sock.recv(65536)
        if not data:
            raise EOFError
        self.buf += data

    def _until(self, sep):
        while sep not in self.buf:
            self._fill()
        head, self.buf = self.buf.split(sep, 1)
        return head

    def _exactly(self, n):
        while len(self.buf) < n:
            self._fill()
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def next(self, timeout=5.0):
        """The next event (a dict), or None when the stream ended (self.ended tells how)."""
        if self.ended:
            return None
        self.sock.settimeout(timeout)
        try:
            size = int(self._until(b"\r\n"), 16)
            data = self._exactly(size + 2)[:-2]
        except (EOFError, ConnectionResetError, ssl.SSLError, OSError) as e:
            if isinstance(e, socket.timeout):
                raise
            self.ended = "abrupt"
            return None
        if size == 0:
            self.ended = "clean"
            return None
        self.chunks.append(data)
        assert data.endswith(b"\n") and data.count(b"\n") == 1, data
        return json.loads(data)

    def events(self, n, timeout=5.0):
        out = []
        for _ in range(n):
            ev = self.next(timeout)
            if ev is None:
                break
            out.append(ev)
        return out

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


@pytest.fixture
def watches():
    opened = []

    def open_watch(api, path, **kw):
        w = Watch(api, path, **kw)
        opened.append(w)
        return w
    yield open_watch
    for w in opened:
        w.close()


# --- lists --------------------------------------------------------------------------------------
def test_list_is_a_typed_list_whose_items_have_no_kind(api):
    code, body, headers = get(api, "/api/v1/services")
    assert code == 200 and headers["Content-Type"] == "application/json"
    assert body["kind"] == "ServiceList" and body["apiVersion"] == "v1"
    assert body["metadata"] == {"resourceVersion": str(api.rv)}
    assert [i["metadata"]["name"] for i in body["items"]] == ["echo", "db"]
    for item in body["items"]:
        assert "kind" not in item and "apiVersion" not in item
        md = item["metadata"]
        assert set(md) >= {"name", "namespace", "uid", "resourceVersion", "creationTimestamp",
                           "labels", "managedFields"}
        assert int(md["resourceVersion"]) <= api.rv
    code, body, _ = get(api, "/apis/discovery.k8s.io/v1/endpointslices")
    assert body["kind"] == "EndpointSliceList" and body["apiVersion"] == "discovery.k8s.io/v1"
    es = body["items"][0]
    assert es["addressType"] == "IPv4" and es["endpoints"][0]["conditions"]["ready"] is True
    assert es["metadata"]["labels"]["kubernetes.io/service-name"] == "echo"
    code, body, _ = get(api, "/api/v1/namespaces")
    assert [n["metadata"]["name"] for n in body["items"]] == ["default", "web"]
    code, body, _ = get(api, "/api/v1/pods")
    assert body["items"][0]["status"]["podIP"] == "10.244.1.5"
    code, body, _ = get(api, "/api/v1/endpoints")
    assert code == 200 and body["kind"] == "EndpointsList" and body["items"] == []


def test_namespaced_paths_get_and_not_found(api):
    code, body, _ = get(api, "/api/v1/namespaces/web/services")
    assert code == 200 and [i["metadata"]["name"] for i in body["items"]] == ["db"]
    code, body, _ = get(api, "/api/v1/namespaces/web/services/db")
    assert code == 200 and body["kind"] == "Service" and body["spec"]["clusterIP"] == "None"
    code, body, _ = get(api, "/api/v1/namespaces/web/services/nope")
    assert code == 404 and body["reason"] == "NotFound"
    assert body["message"] == 'services "nope" not found'
    code, body, _ = get(api, "/api/v1/namespaces/web")
    assert code == 200 and body["kind"] == "Namespace"
    code, body, _ = get(api, "/api/v1/configmaps")
    assert code == 404 and body["kind"] == "Status"


def test_label_and_field_selectors(api):
    api.add_service("api", "web", labels={"tier": "front"})
    _, body, _ = get(api, "/api/v1/services?labelSelector=tier%3Dfront")
    assert [i["metadata"]["name"] for i in body["items"]] == ["api"]
    _, body, _ = get(api, "/api/v1/services?labelSelector=!tier")
    assert sorted(i["metadata"]["name"] for i in body["items"]) == ["db", "echo"]
    _, body, _ = get(api, "/api/v1/services?labelSelector=app+in+(db,api)")
    assert sorted(i["metadata"]["name"] for i in body["items"]) == ["api", "db"]
    _, body, _ = get(api, "/api/v1/services?fieldSelector=metadata.namespace%21%3Dweb")
    assert [i["metadata"]["name"] for i in body["items"]] == ["echo"]


def test_paging_3000_services_is_consistent_with_the_snapshot():
    srv = FakeAPIServer()
    try:
        srv.bulk(3000, 30)
        srv.start()
        snapshot_rv = srv.rv
        t0 = time.monotonic()
        code, page, _ = get(srv, "/api/v1/services?limit=500")
        names, pages, token = [], 1, page["metadata"]["continue"]
        names += [i["metadata"]["name"] for i in page["items"]]
        assert page["metadata"]["remainingItemCount"] == 2500
        # the cluster changes between pages: the pages still show the snapshot
        srv.add_service("zz-late", "bulk-00")
        srv.delete_service("svc-02999", "bulk-29")
        srv.modify("services", "svc-01000", "bulk-10", labels={"changed": "yes"})
        while token:
            code, page, _ = get(srv, f"/api/v1/services?limit=500&continue={token}")
            assert code == 200
            assert page["metadata"]["resourceVersion"] == str(snapshot_rv)
            names += [i["metadata"]["name"] for i in page["items"]]
            for i in page["items"]:
                if i["metadata"]["name"] == "svc-01000":
                    assert "changed" not in i["metadata"]["labels"]
            token = page["metadata"].get("continue")
            pages += 1
        elapsed = time.monotonic() - t0
        assert pages == 6 and len(names) == 3000 == len(set(names))
        assert "zz-late" not in names and "svc-02999" in names
        assert elapsed < 10, elapsed
        assert srv.count(verb="list", resource="services", limit="500") == 6
        # a fresh list sees the changes
        code, full, _ = get(srv, "/api/v1/services")
        assert len(full["items"]) == 3000 and int(full["metadata"]["resourceVersion"]) > snapshot_rv
        code, es, _ = get(srv, "/apis/discovery.k8s.io/v1/endpointslices?limit=500")
        assert es["metadata"]["remainingItemCount"] == 2999 - 500
        # over 128 KiB to a client that accepts gzip: gzipped and chunked
        conn = http.client.HTTPSConnection("127.0.0.1", srv.port, context=tls_context(srv))
        conn.request("GET", "/api/v1/services", headers={
            "Authorization": f"Bearer {srv.token}", "Accept-Encoding": "gzip"})
        resp = conn.getresponse()
        assert resp.headers["Content-Encoding"] == "gzip"
        assert resp.headers["Transfer-Encoding"] == "chunked"
        assert len(json.loads(gzip.decompress(resp.read()))["items"]) == 3000
        conn.request("GET", "/api/v1/services?limit=5", headers={
            "Authorization": f"Bearer {srv.token}", "Accept-Encoding": "gzip"})
        resp = conn.getresponse()
        assert resp.headers["Content-Encoding"] is None and resp.headers["Content-Length"]
        resp.read()
        conn.close()
    finally:
        srv.stop()


def test_continue_token_is_base64_json_of_rv_and_start(api):
    _, page, _ = get(api, "/api/v1/services?limit=1")
    token = page["metadata"]["continue"]
    assert "=" not in token
    decoded = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    assert decoded == {"v": "meta.k8s.io/v1", "rv": api.rv, "start": "default/echo\x00"}
    _, last, _ = get(api, f"/api/v1/services?limit=1&continue={token}")
    assert [i["metadata"]["name"] for i in last["items"]] == ["db"]
    assert "continue" not in last["metadata"] and "remainingItemCount" not in last["metadata"]
    code, body, _ = get(api, "/api/v1/services?limit=1&continue=garbage")
    assert code == 400 and body["reason"] == "BadRequest"


def test_pages_follow_etcd_key_order(api):
    api.add_namespace("web-2")
    api.add_service("a", "web-2")
    api.add_service("b", "web")
    names, token = [], ""
    while True:
        _, page, _ = get(api, "/api/v1/services?limit=1" + (f"&continue={token}" if token else ""))
        names += [f'{i["metadata"]["namespace"]}/{i["metadata"]["name"]}' for i in page["items"]]
        token = page["metadata"].get("continue")
        if not token:
            break
    # "web-2/a" < "web/b" in byte order ('-' < '/')
    assert names == ["default/echo", "web-2/a", "web/b", "web/db"]


def test_continue_token_of_a_compacted_rv_is_410_expired(api):
    _, page, _ = get(api, "/api/v1/services?limit=1")
    token = page["metadata"]["continue"]
    api.add_service("newer", "web")
    api.compact()
    code, body, _ = get(api, f"/api/v1/services?limit=1&continue={token}")
    assert code == 410
    assert body["kind"] == "Status" and body["status"] == "Failure"
    assert body["reason"] == "Expired" and body["code"] == 410
    assert body["message"].startswith(
        "The provided continue parameter is too old to display a consistent list result. "
        "You can start a new list without the continue parameter")
    # the token in the 410 continues at the latest state (an inconsistent list)
    code, rest, _ = get(api, f"/api/v1/services?limit=5&continue={body['metadata']['continue']}")
    assert code == 200 and [i["metadata"]["name"] for i in rest["items"]] == ["db", "newer"]
    assert rest["metadata"]["resourceVersion"] == str(api.rv)


def test_list_resource_version_semantics(api):
    old_rv = api.rv
    api.add_service("later", "default")
    # Exact (limit + RV): the state at RV
    _, body, _ = get(api, f"/api/v1/services?limit=10&resourceVersion={old_rv}")
    assert body["metadata"]["resourceVersion"] == str(old_rv)
    assert "later" not in [i["metadata"]["name"] for i in body["items"]]
    _, body, _ = get(api, f"/api/v1/services?resourceVersion={old_rv}&resourceVersionMatch=Exact")
    assert body["metadata"]["resourceVersion"] == str(old_rv)
    # NotOlderThan (RV without limit) and RV=0: the latest
    for q in (f"resourceVersion={old_rv}", "resourceVersion=0", "resourceVersion=0&limit=500"):
        _, body, _ = get(api, f"/api/v1/services?{q}")
        assert body["metadata"]["resourceVersion"] == str(api.rv)
        assert "later" in [i["metadata"]["name"] for i in body["items"]]
    # a future RV: 504 Too large resource version (after rv_wait)
    api.rv_wait = 0.2
    code, body, headers = get(api, f"/api/v1/services?resourceVersion={api.rv + 10}")
    assert code == 504 and body["reason"] == "Timeout"
    assert body["message"] == \
        f"Timeout: Too large resource version: {api.rv + 10}, current: {api.rv}"
    assert body["details"]["causes"][0]["reason"] == "ResourceVersionTooLarge"
    assert headers["Retry-After"] == "1"
    # an exact RV below the compaction: 410
    api.compact()
    code, body, _ = get(api, f"/api/v1/services?limit=10&resourceVersion={old_rv}")
    assert code == 410 and body["reason"] == "Expired"
    assert body["message"] == "The resourceVersion for the provided list is too old."
    code, body, _ = get(api, "/api/v1/services?resourceVersionMatch=Exact")
    assert code == 400


def test_rv0_unpaged_option_ignores_limit_like_the_watch_cache():
    srv = FakeAPIServer(rv0_unpaged=True)
    try:
        for i in range(5):
            srv.add_service(f"s{i}")
        srv.start()
        _, body, _ = get(srv, "/api/v1/services?limit=2&resourceVersion=0")
        assert len(body["items"]) == 5 and "continue" not in body["metadata"]
        _, body, _ = get(srv, "/api/v1/services?limit=2")
        assert len(body["items"]) == 2 and body["metadata"]["continue"]
    finally:
        srv.stop()


# --- watches ------------------------------------------------------------------------------------
def test_watch_from_rv_replays_history_then_streams_live(api, watches):
    rv0 = api.rv
    api.add_service("a", "default")
    api.modify("services", "a", "default", labels={"v": "2"})
    api.delete("services", "a", "default")
    w = watches(api, f"/api/v1/services?watch=true&resourceVersion={rv0}")
    assert w.status == 200
    assert w.headers["content-type"] == "application/json"
    assert w.headers["transfer-encoding"] == "chunked"
    evs = w.events(3)
    assert [e["type"] for e in evs] == ["ADDED", "MODIFIED", "DELETED"]
    assert [int(e["object"]["metadata"]["resourceVersion"]) for e in evs] == \
        [rv0 + 1, rv0 + 2, rv0 + 3]
    for e in evs:
        assert e["object"]["kind"] == "Service" and e["object"]["apiVersion"] == "v1"
    assert evs[2]["object"]["metadata"]["labels"]["v"] == "2"   # the last state
    # live: an endpointslice change is not a services event; a service change is
    api.add_endpointslice(api.get("services", "echo"), ["10.244.0.9"])
    svc = api.add_service("b", "web")
    ev = w.next()
    assert ev["type"] == "ADDED" and ev["object"]["metadata"]["name"] == "b"
    assert ev["object"]["metadata"]["resourceVersion"] == svc["metadata"]["resourceVersion"]
    assert api.count(verb="watch", resource="services", resourceVersion=str(rv0)) == 1


def test_watch_without_rv_starts_with_the_current_state(api, watches):
    for path in ("/api/v1/services?watch=1", "/api/v1/services?watch=true&resourceVersion=0"):
        w = watches(api, path)
        evs = w.events(2)
        assert [(e["type"], e["object"]["metadata"]["name"]) for e in evs] == \
            [("ADDED", "echo"), ("ADDED", "db")]


def test_watch_send_initial_events_ends_with_the_initial_events_end_bookmark(api, watches):
    w = watches(api, "/api/v1/namespaces?watch=1&sendInitialEvents=true&allowWatchBookmarks=true"
                     "&resourceVersionMatch=NotOlderThan")
    evs = w.events(3)
    assert [e["type"] for e in evs] == ["ADDED", "ADDED", "BOOKMARK"]
    assert evs[2]["object"]["metadata"] == {
        "resourceVersion": str(api.rv), "annotations": {"k8s.io/initial-events-end": "true"}}


def test_watch_namespace_and_selector_filtering(api, watches):
    rv = api.rv
    w = watches(api, f"/api/v1/namespaces/web/services?watch=true&resourceVersion={rv}"
                     "&labelSelector=tier%3Dfront")
    api.add_service("x", "default", labels={"tier": "front"})      # other namespace
    api.add_service("y", "web")                                   # not selected
    api.modify("services", "y", "web", labels={"tier": "front"})  # moves in: ADDED
    api.modify("services", "y", "web", labels={"tier": "back"})   # moves out: DELETED
    evs = w.events(2)
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in evs] == \
        [("ADDED", "y"), ("DELETED", "y")]
    assert evs[1]["object"]["metadata"]["resourceVersion"] == str(api.rv)


def test_bookmarks_on_demand_carry_only_the_resource_version(api, watches):
    w = watches(api, f"/apis/discovery.k8s.io/v1/endpointslices?watch=true"
                     f"&resourceVersion={api.rv}&allowWatchBookmarks=true")
    no_bm = watches(api, f"/apis/discovery.k8s.io/v1/endpointslices?watch=true"
                         f"&resourceVersion={api.rv}")
    assert api.wait_for_watches(2, "endpointslices")
    api.add_namespace("other")   # bumps the RV, not an endpointslices event
    api.send_bookmarks()
    ev = w.next()
    assert ev == {"type": "BOOKMARK", "object": {
        "kind": "EndpointSlice", "apiVersion": "discovery.k8s.io/v1",
        "metadata": {"resourceVersion": str(api.rv)}}}
    with pytest.raises(socket.timeout):
        no_bm.next(timeout=0.5)


def test_periodic_bookmarks_and_the_one_before_the_deadline(watches):
    srv = FakeAPIServer(bookmark_interval=0.3)
    try:
        srv.start()
        w = watches(srv, f"/api/v1/services?watch=true&resourceVersion={srv.rv}"
                         "&allowWatchBookmarks=true&timeoutSeconds=30")
        evs = w.events(2, timeout=3)
        assert [e["type"] for e in evs] == ["BOOKMARK", "BOOKMARK"]
        w2 = watches(srv, f"/api/v1/services?watch=true&resourceVersion={srv.rv}"
                          "&allowWatchBookmarks=true&timeoutSeconds=2")
        assert w2.next(timeout=3)["type"] == "BOOKMARK"
    finally:
        srv.stop()


def test_watch_ends_cleanly_after_timeout_seconds(api, watches):
    t0 = time.monotonic()
    w = watches(api, f"/api/v1/services?watch=true&resourceVersion={api.rv}&timeoutSeconds=1")
    assert w.next(timeout=5) is None and w.ended == "clean"
    assert 0.9 < time.monotonic() - t0 < 5


def test_watch_from_a_compacted_rv_gets_an_error_event_410(api, watches):
    old = api.rv - 1
    api.add_service("c", "default")
    api.compact()
    w = watches(api, f"/api/v1/services?watch=true&resourceVersion={old}"
                     "&allowWatchBookmarks=true")
    assert w.status == 200
    ev = w.next()
    assert ev == {"type": "ERROR", "object": {
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": f"too old resource version: {old} ({api.compacted_rv})",
        "reason": "Expired", "code": 410}}
    assert w.next() is None and w.ended == "clean"
    # from the compaction point on, it works
    ok = watches(api, f"/api/v1/services?watch=true&resourceVersion={api.compacted_rv}")
    api.add_service("d", "default")
    assert ok.next()["object"]["metadata"]["name"] == "d"


def test_history_limit_compacts_like_the_watch_cache(watches):
    srv = FakeAPIServer(history_limit=5)
    try:
        srv.start()
        rv = srv.rv
        for i in range(10):
            srv.add_service(f"s{i}")
        assert srv.compacted_rv == srv.rv - 5
        w = watches(srv, f"/api/v1/services?watch=true&resourceVersion={rv}")
        assert w.next()["type"] == "ERROR"
    finally:
        srv.stop()


def test_cut_watches_closes_streams_abruptly(api, watches):
    ws = [watches(api, f"/api/v1/services?watch=true&resourceVersion={api.rv}")
          for _ in range(3)]
    assert api.wait_for_watches(3)
    api.cut_watches()
    for w in ws:
        assert w.next() is None and w.ended == "abrupt"
    assert wait_until(lambda: api.open_watches == 0, 5)


def test_concurrent_watches_all_see_every_event(api, watches):
    ws = [watches(api, f"/api/v1/services?watch=true&resourceVersion={api.rv}")
          for _ in range(8)]
    lister = threading.Thread(target=lambda: [get(api, "/api/v1/services") for _ in range(20)])
    lister.start()
    for i in range(5):
        api.add_service(f"n{i}", "web")
    lister.join()
    for w in ws:
        assert [e["object"]["metadata"]["name"] for e in w.events(5)] == \
            [f"n{i}" for i in range(5)]


# --- auth and faults ----------------------------------------------------------------------------
def test_missing_or_wrong_token_is_401_status(api):
    for token in ("", "wrong"):
        code, body, _ = get(api, "/api/v1/services", token=token)
        assert code == 401
        assert body == {"kind": "Status", "apiVersion": "v1", "metadata": {},
                        "status": "Failure", "message": "Unauthorized",
                        "reason": "Unauthorized", "code": 401}


def test_token_rotation(api):
    old = api.token
    kc = api.kubeconfig(auth="token-file")
    sa_dir, env = api.serviceaccount_dir()
    assert env == {"KUBERNETES_SERVICE_HOST": "127.0.0.1",
                   "KUBERNETES_SERVICE_PORT": str(api.port)}
    api.set_token("rotated-token")
    assert get(api, "/api/v1/services", token=old)[0] == 401
    assert get(api, "/api/v1/services", token="rotated-token")[0] == 200
    assert api.count(status=401) == 1
    for path in (os.path.join(api.dir, "token"), os.path.join(sa_dir, "token")):
        with open(path) as f:
            assert f.read() == "rotated-token"
    with open(kc) as f:
        assert "tokenFile:" in f.read()
    for name in ("ca.crt", "namespace"):
        assert os.path.exists(os.path.join(sa_dir, name))


def test_client_certificate_auth(api):
    ctx = tls_context(api, client_cert=True)
    code, body, _ = get(api, "/api/v1/namespaces", token="", ctx=ctx)
    assert code == 200 and body["kind"] == "NamespaceList"
    assert api.find_requests(verb="list")[-1]["user"] == api.user


def test_forbidden_mode_gives_the_rbac_message(api):
    api.forbid("services")
    code, body, _ = get(api, "/api/v1/services")
    assert code == 403 and body["reason"] == "Forbidden" and body["code"] == 403
    assert body["message"] == (
        'services is forbidden: User "system:serviceaccount:kube-system:svcdns" cannot list '
        'resource "services" in API group "" at the cluster scope')
    assert body["details"] == {"kind": "services"}
    code, body, _ = get(api, "/api/v1/namespaces/web/services?watch=true")
    assert code == 403 and body["message"].endswith(
        'cannot watch resource "services" in API group "" in the namespace "web"')
    assert get(api, "/api/v1/pods")[0] == 200
    api.allow("services")
    assert get(api, "/api/v1/services")[0] == 200


def test_failure_mode_500_and_503(api):
    api.fail(503, count=2)
    for _ in range(2):
        code, body, _ = get(api, "/api/v1/services")
        assert code == 503 and body["reason"] == "ServiceUnavailable"
    assert get(api, "/api/v1/services")[0] == 200
    api.fail(500, resources=["endpointslices"])
    code, body, _ = get(api, "/apis/discovery.k8s.io/v1/endpointslices")
    assert code == 500 and body["reason"] == "InternalError"
    assert get(api, "/api/v1/services")[0] == 200
    api.fail(None)
    assert get(api, "/apis/discovery.k8s.io/v1/endpointslices")[0] == 200
    api.fail(429, retry_after=2)      # every request, discovery too
    code, body, headers = get(api, "/api")
    assert code == 429 and body["reason"] == "TooManyRequests"
    assert headers["Retry-After"] == "2" and body["details"] == {"retryAfterSeconds": 2}
    api.fail(None)


def test_stall_holds_answers_back(api):
    api.stall()
    result = []
    t = threading.Thread(target=lambda: result.append(get(api, "/api/v1/services")[0]))
    t.start()
    time.sleep(0.5)
    assert result == []
    api.unstall()
    t.join(5)
    assert result == [200]
    api.stall(0.3)
    t0 = time.monotonic()
    assert get(api, "/api/v1/services")[0] == 200 and time.monotonic() - t0 >= 0.25


def test_paused_watches_deliver_nothing_until_resumed(api, watches):
    w = watches(api, f"/api/v1/services?watch=true&resourceVersion={api.rv}&timeoutSeconds=1")
    assert api.wait_for_watches(1)
    api.pause_watches()
    api.add_service("quiet", "web")
    with pytest.raises(socket.timeout):
        w.next(timeout=1.5)        # not even the end at timeoutSeconds
    api.resume_watches()
    assert w.next()["object"]["metadata"]["name"] == "quiet"
    assert w.next() is None and w.ended == "clean"


def test_wrong_ca_certificate_is_refused(api):
    api.swap_cert("other")
    with pytest.raises(ssl.SSLCertVerificationError):
        get(api, "/api/v1/services")
    assert get(api, "/api/v1/services", ctx=tls_context(api, cafile=api.other_ca_file))[0] == 200
    api.swap_cert("main")
    assert get(api, "/api/v1/services")[0] == 200


def test_request_counters(api):
    api.reset_requests()
    get(api, "/api/v1/services?limit=500&resourceVersion=0")
    get(api, "/api/v1/services?limit=500")
    get(api, "/api/v1/pods")
    assert api.count(verb="list", resource="services") == 2
    assert api.count(verb="list", resource="svc", limit="500", resourceVersion="0") == 1
    assert api.count(verb="list", status=200) == 3
    assert api.requests[0]["path"] == "/api/v1/services"
    assert api.request_log().splitlines()[0] == (
        "GET /api/v1/services?limit=500&resourceVersion=0 -> 200 (list services, "
        "user 'system:serviceaccount:kube-system:svcdns')")
    code, body, _ = get(api, "/api/v1/services?watch=true&resourceVersion=abc")
    assert code == 400 and body["message"] == "invalid resource version: abc"
    code, body, _ = get(api, "/api/v1/services?labelSelector=a%3D%3D%3Db")
    assert code == 400 and body["reason"] == "BadRequest"


# --- outage and restart -------------------------------------------------------------------------
def test_outage_refuses_connections_and_restart_keeps_state(api, watches):
    port, rv = api.port, api.rv
    w = watches(api, f"/api/v1/services?watch=true&resourceVersion={rv}")
    assert api.wait_for_watches(1, "services")
    api.outage()
    assert w.next() is None and w.ended == "abrupt"
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    api.recover()
    assert api.port == port and api.rv == rv
    code, body, _ = get(api, "/api/v1/services")
    assert code == 200 and body["metadata"]["resourceVersion"] == str(rv)
    assert len(body["items"]) == 2
    # a restarted watch cache has no history: resuming from an older RV is 410 ...
    w2 = watches(api, f"/api/v1/services?watch=true&resourceVersion={rv - 1}")
    assert w2.next()["type"] == "ERROR"
    # ... and from the current RV it works
    w3 = watches(api, f"/api/v1/services?watch=true&resourceVersion={rv}")
    api.add_service("after", "default")
    assert w3.next()["object"]["metadata"]["name"] == "after"


def test_graceful_restart_ends_watches_cleanly(api, watches):
    w = watches(api, f"/api/v1/services?watch=true&resourceVersion={api.rv}")
    assert api.wait_for_watches(1)
    api.restart(graceful=True)
    assert w.next() is None and w.ended == "clean"
    assert get(api, "/api/v1/services")[0] == 200


def test_restart_keeping_history_and_losing_state(api, watches):
    rv = api.rv
    api.add_service("x", "default")
    api.restart(keep_history=True)
    w = watches(api, f"/api/v1/services?watch=true&resourceVersion={rv}")
    assert w.next()["object"]["metadata"]["name"] == "x"
    port = api.port
    api.restart(keep_state=False, down_for=0.2)
    assert api.port == port and api.rv == INITIAL_RV
    code, body, _ = get(api, "/api/v1/services")
    assert body["items"] == [] and body["metadata"]["resourceVersion"] == str(INITIAL_RV)


def test_stop_ends_every_thread():
    before = threading.active_count()
    srv = FakeAPIServer(bookmark_interval=1, ipv6=socket.has_ipv6).start()
    w = Watch(srv, "/api/v1/services?watch=true")
    get(srv, "/api/v1/services")
    srv.stop()
    assert w.next() is None
    w.close()
    assert wait_until(lambda: threading.active_count() == before, 5), threading.enumerate()
    assert not os.path.exists(srv.dir)


def test_ipv6_listener():
    if not have_ipv6_loopback():
        pytest.skip("no ::1 on this machine")
    srv = FakeAPIServer(ipv6=True).start()
    try:
        code, body, _ = get(srv, "/api/v1/namespaces", host="::1")
        assert code == 200
        if KUBECTL:
            out = kubectl(srv, srv.kubeconfig(server=srv.url6), "get", "ns", "-o", "name")
            assert out.stdout == "" and srv.count(verb="list", resource="namespaces") == 2
    finally:
        srv.stop()


def test_command_line(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, os.path.abspath(__file__).replace(
        "test_fake_apiserver.py", "fake_apiserver.py"), "--port", str(port), "--dir",
        str(tmp_path), "--services", "4", "--namespaces", "2"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        assert f"https://127.0.0.1:{port}" in line, line + proc.stderr.read()
        for name in ("kubeconfig", "kubeconfig-client-cert", "ca.crt", "server.crt",
                     "client.crt"):
            assert (tmp_path / name).exists()
        ctx = ssl.create_default_context(cafile=str(tmp_path / "ca.crt"))
        conn = http.client.HTTPSConnection("127.0.0.1", port, context=ctx, timeout=5)
        conn.request("GET", "/api/v1/services", headers={
            "Authorization": "Bearer svcdns-test-token"})
        body = json.loads(conn.getresponse().read())
        conn.close()
        assert len(body["items"]) == 4
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0


# --- the real client: kubectl -------------------------------------------------------------------
def kubectl(api, kubeconfig, *args, timeout=30, check=True):
    cmd = [KUBECTL, "--kubeconfig", kubeconfig, "--cache-dir", os.path.join(api.dir, "cache"),
           *args]
    env = {k: v for k, v in os.environ.items() if k != "KUBECONFIG"}
    env["HOME"] = api.dir
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    if check:
        assert p.returncode == 0, p.stderr
    return p


@needs_kubectl
def test_kubectl_get_svc_json(api):
    out = json.loads(kubectl(api, api.kubeconfig(), "get", "svc", "-A", "-o", "json").stdout)
    assert [(i["kind"], i["metadata"]["namespace"], i["metadata"]["name"]) for i in out["items"]] \
        == [("Service", "default", "echo"), ("Service", "web", "db")]
    assert out["items"][1]["spec"]["clusterIP"] == "None"
    # kubectl reads discovery, then lists with limit=500
    assert api.count(verb="list", resource="services", limit="500") == 1
    assert api.count(verb="discovery") >= 1


@needs_kubectl
def test_kubectl_get_endpointslices_and_raw(api):
    out = kubectl(api, api.kubeconfig(), "get", "endpointslices", "-A").stdout
    lines = out.splitlines()
    assert lines[0].split()[:2] == ["NAMESPACE", "NAME"]
    assert sorted(line.split()[0] for line in lines[1:]) == ["default", "web"]
    raw = json.loads(kubectl(api, api.kubeconfig(), "get", "--raw",
                             "/api/v1/services?limit=1").stdout)
    assert raw["kind"] == "ServiceList" and raw["metadata"]["continue"]
    assert "kind" not in raw["items"][0]


@needs_kubectl
@pytest.mark.parametrize("auth,ca", [("token", "data"), ("token-file", "file"),
                                     ("client-cert", "file"), ("client-cert-data", "data")])
def test_kubectl_with_each_kubeconfig_variant(api, auth, ca):
    out = kubectl(api, api.kubeconfig(auth=auth, ca=ca), "get", "ns", "-o", "name").stdout
    assert out.split() == ["namespace/default", "namespace/web"]


@needs_kubectl
def test_kubectl_sees_401_403_and_a_wrong_ca(api):
    p = kubectl(api, api.kubeconfig(token="wrong"), "get", "svc", "-A", check=False)
    # client-go words a 401 this way; the server answered the Status of the real one
    assert p.returncode != 0 and "You must be logged in to the server" in p.stderr
    assert api.count(status=401) >= 1 and api.count(status=200) == 0
    api.forbid("services")
    p = kubectl(api, api.kubeconfig(), "get", "svc", "-A", check=False)
    assert p.returncode != 0
    assert ('services is forbidden: User "system:serviceaccount:kube-system:svcdns" cannot '
            'list resource "services" in API group "" at the cluster scope') in p.stderr
    api.allow()
    api.swap_cert("other")
    p = kubectl(api, api.kubeconfig(), "get", "svc", "-A", check=False)
    assert p.returncode != 0 and "certificate signed by unknown authority" in p.stderr


@needs_kubectl
def test_kubectl_watch_sees_added_then_modified(api):
    kc = api.kubeconfig()
    env = {k: v for k, v in os.environ.items() if k != "KUBECONFIG"}
    env["HOME"] = api.dir
    proc = subprocess.Popen([KUBECTL, "--kubeconfig", kc, "--cache-dir",
                             os.path.join(api.dir, "cache"), "get", "svc", "-A", "-w",
                             "--output-watch-events", "--request-timeout=30s"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    lines = []
    reader = threading.Thread(target=lambda: lines.extend(iter(proc.stdout.readline, "")),
                              daemon=True)
    reader.start()
    try:
        assert api.wait_for_watches(1, "services", timeout=20), api.request_log()
        watch_req = api.find_requests(verb="watch", resource="services")[-1]
        list_req = api.find_requests(verb="list", resource="services")[-1]
        assert watch_req["query"]["resourceVersion"] == str(api.rv)  # the list's RV
        assert list_req["query"].get("limit") == "500"
        api.add_service("fresh", "web")
        api.modify("services", "fresh", "web", labels={"v": "2"})

        def seen():
            rows = [ln.split() for ln in lines]
            return (["ADDED", "web", "fresh"] in [r[:3] for r in rows] and
                    ["MODIFIED", "web", "fresh"] in [r[:3] for r in rows])
        assert wait_until(seen, 15), lines
        rows = [ln.split()[:3] for ln in lines]
        assert rows.index(["ADDED", "web", "fresh"]) < rows.index(["MODIFIED", "web", "fresh"])
        assert rows[0][0] == "EVENT"
    finally:
        proc.kill()
        proc.wait(10)
        proc.stdout.close()
        proc.stderr.close()
        reader.join(5)
