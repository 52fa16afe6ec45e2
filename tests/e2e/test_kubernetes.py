"""svcdns following a cluster's API server (--kubeconfig, --kubernetes): list and watch
against the fake kube-apiserver (fake_apiserver.py), through first sync, every kind of
change, restarts, outages, compaction, token rotation, TLS and RBAC failures, merging with
--manifests, and --check. README: "Running in a cluster"; zones/kube.c has the protocol.

The spec conformance tests (test_records.py, test_negative.py) also run on objects served
through the API: conftest.py's `server` fixture, source "api"."""

import contextlib
import os
import re
import subprocess
import time

import dns.edns
import dns.rcode
import pytest

import svcdns_e2e as e2e
from fake_apiserver import FakeAPIServer
from fake_upstream import FakeUpstream
from svcdns_e2e import assert_answer, assert_negative, wait_until

CHANGE_TIMEOUT = 1.0  # a change is served within 1 s of its watch event (the promise)
SYNC_TIMEOUT = 15.0
EDE_NOT_READY = 14


# --- helpers ---------------------------------------------------------------------------------


@pytest.fixture
def api():
    srv = FakeAPIServer()
    srv.add_namespace("default")
    srv.add_namespace("web")
    srv.add_service("echo", "default", cluster_ip="10.96.0.50",
                    endpoints=["10.244.0.5", "10.244.0.6"])
    srv.add_service("db", "web", headless=True, endpoints=["10.244.1.5", "10.244.1.6"],
                    ports=[{"name": "pg", "protocol": "TCP", "port": 5432}])
    srv.add_service("ext", "web", external_name="example.com")
    srv.start()
    yield srv
    srv.stop()


@contextlib.contextmanager
def svcdns(api=None, kubeconfig=None, http=True, extra=(), synced=True, **kw):
    """svcdns following api (through a token kubeconfig unless one is given), started and
    stopped around the block; with http, its --http port is srv.http_port. Waits for the
    first sync when synced."""
    args = ["--kubeconfig", kubeconfig or api.kubeconfig()]
    port = e2e.free_port() if http else None
    if http:
        args += ["--http", f"127.0.0.1:{port}"]
    with e2e.Server(extra_args=args + list(extra), label="svcdns-kube", **kw) as srv:
        srv.http_port = port
        if synced:
            srv.wait_synced(SYNC_TIMEOUT)
        yield srv


def a_records(srv, name, rdtype="A"):
    """(rcode text, sorted addresses) of name."""
    r = srv.query(name, rdtype)
    return dns.rcode.to_text(r.rcode()), sorted(rr.to_text() for rrset in r.answer
                                                 for rr in rrset if rrset.rdtype == r.question[
                                                     0].rdtype)


def wait_for(srv, name, expected, rdtype="A", timeout=5.0):
    """Waits until name answers expected ((rcode, addresses)); returns the seconds it took."""
    start = time.monotonic()
    got = wait_until(lambda: a_records(srv, name, rdtype) == expected, timeout, interval=0.01)
    assert got, (f"{name} {rdtype}: {a_records(srv, name, rdtype)} after {timeout} s, expected "
                 f"{expected}\n{srv.stderr(4000)}")
    return time.monotonic() - start


def kube_metrics(srv):
    return {k: v for k, v in e2e.metrics(srv.http_port).items()
            if k.startswith("svcdns_kubernetes_")}


def metric(srv, name, kind=None, **labels):
    key = name
    if kind is not None or labels:
        parts = ([f'kind="{kind}"'] if kind else []) + [f'{k}="{v}"' for k, v in labels.items()]
        key += "{" + ",".join(parts) + "}"
    return kube_metrics(srv).get(key, 0)


def ede_codes(resp):
    return [o.code for o in resp.options if o.otype == dns.edns.EDE]


def error_lines(srv):
    return [line for line in srv.stderr().splitlines() if " level=error " in line]


# --- first sync -------------------------------------------------------------------------------


def test_first_sync_serves_every_kind(api):
    api.add_namespace("empty")
    with svcdns(api) as srv:
        assert_answer(srv.query("echo.default.svc.local.", "A"), "A", ["10.96.0.50"])
        assert_answer(srv.query("db.web.svc.local.", "A"), "A", ["10.244.1.5", "10.244.1.6"])
        r = srv.query("_pg._tcp.db.web.svc.local.", "SRV")
        assert r.rcode() == dns.rcode.NOERROR and len(r.answer) == 2, r
        r = srv.query("ext.web.svc.local.", "A")
        assert [rr.to_text() for rrset in r.answer for rr in rrset] == ["example.com."]
        # a Namespace with nothing in it exists (NODATA), one that is not there does not
        assert_negative(srv.query("empty.svc.local.", "A"), "NOERROR")
        assert_negative(srv.query("nowhere.svc.local.", "A"), "NXDOMAIN")
        assert_negative(srv.query("nope.web.svc.local.", "A"), "NXDOMAIN")
        assert_answer(srv.query("50.0.96.10.in-addr.arpa.", "PTR"), "PTR",
                      ["echo.default.svc.local."])
        assert e2e.http_get(srv.http_port, "/ready") == (200, "OK\n")
        m = kube_metrics(srv)
        assert m["svcdns_kubernetes_synced"] == 1
        assert m['svcdns_kubernetes_objects{kind="services"}'] == 3
        assert m['svcdns_kubernetes_objects{kind="endpointslices"}'] == 2
        assert m['svcdns_kubernetes_objects{kind="namespaces"}'] == 3
        assert m['svcdns_kubernetes_lists_total{kind="services"}'] == 1
        assert m['svcdns_kubernetes_last_sync_timestamp_seconds{kind="services"}'] > \
            time.time() - 60
        assert srv.wait_for_log("msg=\"synced: every kind listed, serving\"")
    # Lists in pages of 500, then watches from the list's resourceVersion with bookmarks.
    lists = api.find_requests(verb="list", resource="services")
    assert lists and lists[0]["query"].get("limit") == "500", lists
    watches = api.find_requests(verb="watch", resource="services")
    assert watches, api.request_log()
    q = watches[0]["query"]
    assert q.get("allowWatchBookmarks") == "true" and q.get("resourceVersion"), q
    assert 300 <= int(q["timeoutSeconds"]) < 600, q


def mapped_libraries(srv):
    """The shared objects srv has mapped, by file name."""
    maps = open(f"/proc/{srv.proc.pid}/maps").read()
    return {os.path.basename(line.split()[-1]) for line in maps.splitlines()
            if ".so" in line.split()[-1]}


def test_libcurl_is_opened_only_for_the_api_source(api):
    # A server of manifests never maps libcurl and what it pulls in (zones/kubehttp.c opens
    # it when an API source starts); one that follows the API does, and serves.
    with e2e.Server([e2e.SOURCE / "examples"], label="svcdns-files") as files:
        assert files.query("echo.default.svc.local.", "A").answer
        libs = mapped_libraries(files)
        assert not any(name.startswith("libcurl") for name in libs), sorted(libs)
        assert any(name.startswith("libldns") for name in libs), sorted(libs)  # maps are read
    with svcdns(api) as srv:
        assert_answer(srv.query("echo.default.svc.local.", "A"), "A", ["10.96.0.50"])
        assert any(name.startswith("libcurl") for name in mapped_libraries(srv))


def test_lists_3000_services_in_pages(api):
    api.bulk(3000, 30)
    with svcdns(api) as srv:
        assert metric(srv, "svcdns_kubernetes_objects", "services") == 3003
        assert metric(srv, "svcdns_kubernetes_objects", "endpointslices") == 3002
        for i in (0, 1234, 2999):
            ns = f"bulk-{i % 30:02d}"
            r = srv.query(f"svc-{i:05d}.{ns}.svc.local.", "A")
            assert r.rcode() == dns.rcode.NOERROR and r.answer, (i, r)
        m = re.search(r"synced: every kind listed, serving.* services=3003 .* ms=(\d+)",
                      srv.stderr())
        assert m, srv.stderr(3000)
    pages = api.find_requests(verb="list", resource="services")
    assert len(pages) == 7, api.request_log()   # 3003 Services, 500 a page
    assert all(p["query"].get("continue") for p in pages[1:]), api.request_log()


# --- changes -----------------------------------------------------------------------------------


def test_service_added_changed_and_deleted_within_a_second(api):
    with svcdns(api) as srv:
        api.add_service("new", "web", cluster_ip="10.96.0.60")
        assert wait_for(srv, "new.web.svc.local.", ("NOERROR", ["10.96.0.60"])) < CHANGE_TIMEOUT

        def port_and_ip(obj):
            obj["spec"]["ports"] = [{"name": "https", "protocol": "TCP", "port": 443}]
            obj["spec"]["clusterIP"] = "10.96.0.61"
            obj["spec"]["clusterIPs"] = ["10.96.0.61"]
        api.modify("services", "new", "web", fn=port_and_ip)
        assert wait_for(srv, "new.web.svc.local.", ("NOERROR", ["10.96.0.61"])) < CHANGE_TIMEOUT
        r = srv.query("_https._tcp.new.web.svc.local.", "SRV")
        assert r.rcode() == dns.rcode.NOERROR and r.answer, r
        api.delete("services", "new", "web")
        assert wait_for(srv, "new.web.svc.local.", ("NXDOMAIN", [])) < CHANGE_TIMEOUT
        assert_negative(srv.query("61.0.96.10.in-addr.arpa.", "PTR"), "NXDOMAIN",
                        zone="in-addr.arpa.")


def test_a_service_changing_type(api):
    with svcdns(api) as srv:
        def to_external(obj):
            obj["spec"] = {"type": "ExternalName", "externalName": "www.example.org"}
        api.modify("services", "echo", "default", fn=to_external)
        wait_for(srv, "echo.default.svc.local.", ("NOERROR", []))
        r = srv.query("echo.default.svc.local.", "CNAME")
        assert [rr.to_text() for rrset in r.answer for rr in rrset] == ["www.example.org."]

        def to_cluster_ip(obj):
            obj["spec"] = {"type": "ClusterIP", "clusterIP": "10.96.0.70",
                           "clusterIPs": ["10.96.0.70"],
                           "ports": [{"name": "http", "protocol": "TCP", "port": 80}]}
        api.modify("services", "echo", "default", fn=to_cluster_ip)
        wait_for(srv, "echo.default.svc.local.", ("NOERROR", ["10.96.0.70"]))
        # a ClusterIP Service turned headless answers its ready endpoints
        api.delete("services", "echo", "default")
        api.create({"kind": "Service", "metadata": {"name": "echo", "namespace": "default"},
                    "spec": {"clusterIP": "None", "clusterIPs": ["None"],
                             "ports": [{"name": "http", "protocol": "TCP", "port": 80}]}})
        wait_for(srv, "echo.default.svc.local.", ("NOERROR", ["10.244.0.5", "10.244.0.6"]))


def test_endpoints_come_go_and_flip_readiness(api):
    with svcdns(api) as srv:
        slice_name = next(o["metadata"]["name"] for o in api.objects("endpointslices")
                          if o["metadata"]["namespace"] == "web")

        def add_endpoint(obj):
            obj["endpoints"].append({"addresses": ["10.244.1.7"], "hostname": "db-2",
                                     "conditions": {"ready": True}})
        api.modify("endpointslices", slice_name, "web", fn=add_endpoint)
        assert wait_for(srv, "db.web.svc.local.", ("NOERROR", ["10.244.1.5", "10.244.1.6",
                                                              "10.244.1.7"])) < CHANGE_TIMEOUT
        wait_for(srv, "db-2.db.web.svc.local.", ("NOERROR", ["10.244.1.7"]))

        def not_ready(obj):
            obj["endpoints"][0]["conditions"]["ready"] = False
        api.modify("endpointslices", slice_name, "web", fn=not_ready)
        assert wait_for(srv, "db.web.svc.local.", ("NOERROR", ["10.244.1.6", "10.244.1.7"])) \
            < CHANGE_TIMEOUT
        assert_negative(srv.query("10-244-1-5.db.web.svc.local.", "A"), "NXDOMAIN")

        def ready_again(obj):
            obj["endpoints"][0]["conditions"]["ready"] = True
        api.modify("endpointslices", slice_name, "web", fn=ready_again)
        wait_for(srv, "10-244-1-5.db.web.svc.local.", ("NOERROR", ["10.244.1.5"]))
        # a second slice adds to the first; deleting both leaves the headless name empty
        svc = api.get("services", "db", "web")
        second = api.add_endpointslice(svc, ["10.244.1.8"])
        wait_for(srv, "db.web.svc.local.", ("NOERROR", ["10.244.1.5", "10.244.1.6",
                                                       "10.244.1.7", "10.244.1.8"]))
        api.delete("endpointslices", second["metadata"]["name"], "web")
        api.delete("endpointslices", slice_name, "web")
        assert wait_for(srv, "db.web.svc.local.", ("NXDOMAIN", [])) < CHANGE_TIMEOUT


def test_namespaces_come_and_go(api):
    with svcdns(api) as srv:
        assert_negative(srv.query("later.svc.local.", "A"), "NXDOMAIN")
        api.add_namespace("later")
        wait_for(srv, "later.svc.local.", ("NOERROR", []))
        api.delete("namespaces", "later", "")
        wait_for(srv, "later.svc.local.", ("NXDOMAIN", []))
        # a namespace with a Service in it stays while the Service does
        api.delete("namespaces", "web", "")
        time.sleep(0.3)
        assert a_records(srv, "web.svc.local.") == ("NOERROR", [])


def test_verified_pod_records_follow_the_pods(api):
    api.add_pod("p1", "web", ip="10.244.9.1")
    api.add_pod("host", "web", ip="192.168.0.10")
    api.modify("pods", "host", "web", fn=lambda o: o["spec"].update(hostNetwork=True))
    with svcdns(api, pods="verified") as srv:
        assert a_records(srv, "10-244-9-1.web.pod.local.") == ("NOERROR", ["10.244.9.1"])
        # a Pod on the node's network says nothing of the node's address
        assert a_records(srv, "192-168-0-10.web.pod.local.")[0] == "NXDOMAIN"
        assert a_records(srv, "10-244-9-2.web.pod.local.")[0] == "NXDOMAIN"
        api.add_pod("p2", "web", ip="10.244.9.2")
        assert wait_for(srv, "10-244-9-2.web.pod.local.", ("NOERROR", ["10.244.9.2"])) \
            < CHANGE_TIMEOUT
        api.modify("pods", "p1", "web", fn=lambda o: o["status"].update(phase="Succeeded"))
        wait_for(srv, "10-244-9-1.web.pod.local.", ("NXDOMAIN", []))
        api.delete("pods", "p2", "web")
        wait_for(srv, "10-244-9-2.web.pod.local.", ("NXDOMAIN", []))
        assert metric(srv, "svcdns_kubernetes_objects", "pods") == 0


def test_an_object_the_decoder_refuses_is_logged_and_left_out(api):
    api.create({"kind": "Service", "metadata": {"name": "bad", "namespace": "web"},
                "spec": {"clusterIP": "10.96.0.300", "ports": [{"port": 80}]}})
    with svcdns(api) as srv:
        assert a_records(srv, "bad.web.svc.local.")[0] == "NXDOMAIN"
        assert a_records(srv, "echo.default.svc.local.") == ("NOERROR", ["10.96.0.50"])
        assert srv.wait_for_log('kind=services object="web/bad" error="')
        assert "10.96.0.300" in srv.stderr() and "not served" in srv.stderr()
        # fixed by a watch event, it is served; broken again, it goes
        api.modify("services", "bad", "web",
                   fn=lambda o: o["spec"].update(clusterIP="10.96.0.30", clusterIPs=["10.96.0.30"]))
        wait_for(srv, "bad.web.svc.local.", ("NOERROR", ["10.96.0.30"]))
        api.modify("services", "bad", "web",
                   fn=lambda o: o["spec"].update(clusterIP="x", clusterIPs=["x"]))
        wait_for(srv, "bad.web.svc.local.", ("NXDOMAIN", []))


def test_pods_are_watched_only_when_a_rule_needs_them(api):
    api.add_pod("p1", "web", ip="10.244.9.1")
    with svcdns(api, extra=["--no-autopath"]) as srv:
        assert 'kind="pods"' not in " ".join(kube_metrics(srv))
    assert api.count(resource="pods") == 0, api.request_log()
    api.reset_requests()
    with svcdns(api, extra=["--no-autopath", "--pods", "verified"]):
        pass
    assert api.count(verb="list", resource="pods") == 1
    api.reset_requests()
    with svcdns(api):  # autopath (on by default) needs each client's namespace
        pass
    assert api.count(verb="list", resource="pods") == 1


def test_autopath_knows_a_client_by_its_pod_from_the_api(api):
    # the client's address, 127.0.0.7, is a Pod's in namespace web
    api.add_pod("client", "web", ip="127.0.0.7")
    with svcdns(api) as srv:
        r = srv.query("echo.default.web.svc.local.", "A", source="127.0.0.7")
        assert [rr.to_text() for rrset in r.answer for rr in rrset] == \
            ["echo.default.svc.local.", "10.96.0.50"], r
        # another client is no Pod: the plain NXDOMAIN of the asked name
        r = srv.query("echo.default.web.svc.local.", "A", source="127.0.0.8")
        assert r.rcode() == dns.rcode.NXDOMAIN, r


def test_a_burst_of_changes_is_applied(api):
    names = api.bulk(300, 3, prefix="burst")
    with svcdns(api) as srv:
        slices = {o["metadata"]["labels"]["kubernetes.io/service-name"]: o["metadata"]["name"]
                  for o in api.objects("endpointslices")}
        start = time.monotonic()
        for i in range(300):
            name = f"burst-{i:05d}"
            api.modify("endpointslices", slices[name], names[i % 3],
                       fn=lambda o, i=i: o["endpoints"][0].update(
                           addresses=[f"10.250.{i // 250}.{i % 250}"]))
        for i in range(0, 300, 7):
            api.delete_service(f"burst-{i:05d}", names[i % 3])
        last = f"burst-{299:05d}"
        wait_for(srv, f"10-250-1-49.{last}.{names[299 % 3]}.svc.local.",
                 ("NOERROR", ["10.250.1.49"]))
        took = time.monotonic() - start
        wait_for(srv, f"burst-{294:05d}.{names[0]}.svc.local.", ("NXDOMAIN", []))
        for i in (1, 150, 298):
            ip = f"10.250.{i // 250}.{i % 250}"
            assert a_records(srv, f"{ip.replace('.', '-')}.burst-{i:05d}.{names[i % 3]}"
                                  f".svc.local.") == ("NOERROR", [ip])
        # 300 changed slices and 43 deleted ones; the slices' watch may trail the services'
        assert wait_until(lambda: metric(srv, "svcdns_kubernetes_events_total",
                                         "endpointslices") == 343, 10), kube_metrics(srv)
        assert took < 30, took


# --- the API server restarting, going away, forgetting --------------------------------------


def test_an_api_server_restart_mid_stream(api):
    with svcdns(api) as srv:
        assert api.wait_for_watches(4)
        # the restarted server keeps its objects but not the watch history (a new watch
        # cache): a watch from before the last change (services', after a Namespace came)
        # gets 410 and svcdns lists again
        api.add_namespace("bump")
        wait_for(srv, "bump.svc.local.", ("NOERROR", []))
        api.restart(down_for=0.5)
        assert a_records(srv, "echo.default.svc.local.") == ("NOERROR", ["10.96.0.50"])
        api.add_service("after", "web", cluster_ip="10.96.0.80")
        wait_for(srv, "after.web.svc.local.", ("NOERROR", ["10.96.0.80"]), timeout=15)
        assert metric(srv, "svcdns_kubernetes_watch_restarts_total", "services") >= 1
        assert metric(srv, "svcdns_kubernetes_relists_total", "services") >= 1
        assert all("status=0" in e for e in error_lines(srv)), error_lines(srv)


def test_an_outage_keeps_the_data_and_the_changes_made_meanwhile_come_after(api):
    with svcdns(api) as srv:
        assert api.wait_for_watches(4)
        api.outage()
        api.add_service("meanwhile", "web", cluster_ip="10.96.0.81")
        api.delete_service("echo", "default")
        api.modify("services", "db", "web", labels={"changed": "yes"})
        # svcdns answers from its last data throughout the outage
        for _ in range(3):
            assert a_records(srv, "echo.default.svc.local.") == ("NOERROR", ["10.96.0.50"])
            assert e2e.http_get(srv.http_port, "/ready")[0] == 200
            time.sleep(0.5)
        api.recover(keep_history=True)
        wait_for(srv, "meanwhile.web.svc.local.", ("NOERROR", ["10.96.0.81"]), timeout=40)
        wait_for(srv, "echo.default.svc.local.", ("NXDOMAIN", []))
        # the history was kept: the watches resumed, nothing was listed again
        assert metric(srv, "svcdns_kubernetes_relists_total", "services") == 0
        assert metric(srv, "svcdns_kubernetes_api_errors_total", "services", code=0) >= 1
        assert srv.wait_for_log("msg=\"the API server answers again\"")


def test_an_outage_with_the_history_compacted_lists_again_and_drops_the_deleted(api):
    api.add_service("doomed", "web", cluster_ip="10.96.0.82")
    with svcdns(api) as srv:
        assert a_records(srv, "doomed.web.svc.local.") == ("NOERROR", ["10.96.0.82"])
        assert api.wait_for_watches(4)
        api.outage()
        api.delete_service("doomed", "web")
        api.add_service("born", "web", cluster_ip="10.96.0.83")
        api.delete("namespaces", "default", "")
        api.delete_service("echo", "default")
        api.recover(keep_history=False)   # only a new list shows the deletes
        wait_for(srv, "doomed.web.svc.local.", ("NXDOMAIN", []), timeout=40)
        wait_for(srv, "born.web.svc.local.", ("NOERROR", ["10.96.0.83"]))
        wait_for(srv, "echo.default.svc.local.", ("NXDOMAIN", []))
        wait_for(srv, "default.svc.local.", ("NXDOMAIN", []))
        assert metric(srv, "svcdns_kubernetes_relists_total", "services") >= 1
        assert srv.wait_for_log("watch history expired: listing again")
    relist = api.find_requests(verb="list", resource="services")
    assert len(relist) >= 2 and "continue" not in relist[-1]["query"], api.request_log()


def test_started_while_the_api_server_is_down():
    down = FakeAPIServer(port=e2e.free_port())
    down.add_namespace("default")
    down.add_service("late", "default", cluster_ip="10.96.0.90")
    kc = down.kubeconfig()
    with FakeUpstream() as up, \
            svcdns(kubeconfig=kc, synced=False, upstreams=[up.addr]) as srv:
        # cluster names: SERVFAIL (EDE 14), never an NXDOMAIN a pod would cache
        for name in ("late.default.svc.local.", "nothere.default.svc.local.", "local."):
            r = srv.query(name, "A", use_edns=0)
            assert r.rcode() == dns.rcode.SERVFAIL, r
            assert ede_codes(r) == [EDE_NOT_READY], r
        # other names are forwarded as usual
        r = srv.query("www.example.test.", "A")
        assert r.rcode() == dns.rcode.NOERROR and r.answer, r
        status, body = e2e.http_get(srv.http_port, "/ready")
        assert status == 503 and "waiting for the first list of" in body, body
        assert metric(srv, "svcdns_kubernetes_synced") == 0
        time.sleep(1.5)
        down.start()
        try:
            srv.wait_synced(40)
            assert a_records(srv, "late.default.svc.local.") == ("NOERROR", ["10.96.0.90"])
            assert_negative(srv.query("nothere.default.svc.local.", "A"), "NXDOMAIN")
            assert e2e.http_get(srv.http_port, "/ready")[0] == 200
            assert metric(srv, "svcdns_kubernetes_synced") == 1
            # the connection errors were logged once per kind, not at every retry
            errors = [e for e in error_lines(srv) if "kind=services" in e]
            assert len(errors) == 1 and "status=0" in errors[0], errors
        finally:
            srv.stop()
            down.stop()


def test_a_compacted_continue_token_starts_the_list_again():
    class Compacting(FakeAPIServer):
        """Compacts the history right before the first continued services list is served."""
        compacted = False

        def _list(self, reply, resource, ns, query):
            if resource == "services" and query.get("continue") and not self.compacted:
                self.compacted = True
                self.add_namespace("bump")
                self.compact()
            return super()._list(reply, resource, ns, query)

    api = Compacting()
    api.bulk(1200, 4)
    api.start()
    try:
        with svcdns(api) as srv:
            assert metric(srv, "svcdns_kubernetes_objects", "services") == 1200
            assert metric(srv, "svcdns_kubernetes_api_errors_total", "services", code=410) == 1
        pages = api.find_requests(verb="list", resource="services")
        assert [p["status"] for p in pages] == [200, 410, 200, 200, 200], api.request_log()
        assert "continue" not in pages[2]["query"]
    finally:
        api.stop()


def test_bookmarks_move_the_resource_version_a_watch_resumes_from(api):
    with svcdns(api) as srv:
        assert api.wait_for_watches(4)
        # changes elsewhere move the cluster's resourceVersion; services see only bookmarks
        for i in range(5):
            api.add_namespace(f"other-{i}")
        time.sleep(0.3)
        api.send_bookmarks()
        rv = api.rv
        time.sleep(0.5)
        api.compact()             # the history before the bookmark is gone...
        api.cut_watches()         # ...and the watch resumes after it: no 410, no relist
        assert api.wait_for_requests(2, verb="watch", resource="services", timeout=10)
        time.sleep(0.5)
        watches = api.find_requests(verb="watch", resource="services")
        assert int(watches[-1]["query"]["resourceVersion"]) >= rv, api.request_log()
        assert metric(srv, "svcdns_kubernetes_relists_total", "services") == 0


def test_server_errors_back_off_and_recover(api):
    api.fail(503, resources=["services"], retry_after=1)
    with svcdns(api, synced=False) as srv:
        assert api.wait_for_requests(2, verb="list", resource="services", status=503)
        first, second = api.find_requests(verb="list", resource="services", status=503)[:2]
        assert second["time"] - first["time"] >= 0.9   # Retry-After: 1
        assert a_records(srv, "echo.default.svc.local.")[0] == "SERVFAIL"
        api.fail(None)
        srv.wait_synced(40)
        assert metric(srv, "svcdns_kubernetes_api_errors_total", "services", code=503) >= 2
        assert len([e for e in error_lines(srv) if "status=503" in e]) == 1


# --- credentials and TLS -------------------------------------------------------------------------


def test_a_forbidden_kind_is_reported_once_with_the_rbac_rule(api):
    api.forbid("endpointslices")
    with svcdns(api, synced=False) as srv:
        assert api.wait_for_requests(3, verb="list", resource="endpointslices", status=403,
                                     timeout=20)
        errors = [e for e in error_lines(srv) if "status=403" in e]
        assert len(errors) == 1, errors
        assert "apiGroups: ['discovery.k8s.io'], resources: ['endpointslices'], verbs: " \
               "['list', 'watch']" in errors[0], errors[0]
        assert "cannot list resource" in errors[0], errors[0]
        status, body = e2e.http_get(srv.http_port, "/ready")
        assert status == 503 and "endpointslices" in body and "services" not in body, body
        api.allow()
        srv.wait_synced(40)


def test_client_certificates_files_and_inline(api):
    for inline in (False, True):
        with svcdns(api, kubeconfig=api.kubeconfig_client_cert(inline=inline)) as srv:
            assert a_records(srv, "echo.default.svc.local.") == ("NOERROR", ["10.96.0.50"])
        users = {r["user"] for r in api.requests if r["verb"] in ("list", "watch")}
        assert users == {"system:serviceaccount:kube-system:svcdns"}, users
        api.reset_requests()


def test_inline_ca_and_tls_server_name(api, tmp_path):
    with svcdns(api, kubeconfig=api.kubeconfig_ca_data()) as srv:
        assert a_records(srv, "echo.default.svc.local.") == ("NOERROR", ["10.96.0.50"])
    # the certificate names localhost, not 127.0.0.1's other names: tls-server-name picks it
    kc = pathlib_text(api.kubeconfig()).replace(
        f'    server: "{api.url}"\n',
        f'    server: "{api.url}"\n    tls-server-name: localhost\n')
    (tmp_path / "kc").write_text(kc)
    with svcdns(api, kubeconfig=str(tmp_path / "kc")) as srv:
        assert a_records(srv, "echo.default.svc.local.") == ("NOERROR", ["10.96.0.50"])
    (tmp_path / "bad").write_text(kc.replace("tls-server-name: localhost",
                                             "tls-server-name: somewhere.else"))
    p = e2e.run_cli(["--check", "--kubeconfig", tmp_path / "bad", "--upstream", "none"])
    assert p.returncode == 1 and "status=0" in p.stderr, p.stderr


def pathlib_text(path):
    with open(path) as f:
        return f.read()


def test_a_server_certificate_from_another_ca_is_refused(api):
    api.swap_cert("other")
    with svcdns(api, synced=False) as srv:
        assert wait_until(lambda: error_lines(srv), 10), srv.stderr()
        err = error_lines(srv)[0]
        assert "status=0" in err and re.search(r"certificate|SSL", err), err
        assert a_records(srv, "echo.default.svc.local.")[0] == "SERVFAIL"
        # nothing was ever sent to a server svcdns could not verify
        assert not [r for r in api.requests if r["verb"] in ("list", "watch")]
        api.swap_cert("main")
        srv.wait_synced(40)
    # insecure-skip-tls-verify accepts it, with a warning
    api.swap_cert("other")
    with svcdns(api, kubeconfig=api.kubeconfig(ca="insecure")) as srv:
        assert srv.wait_for_log("insecure-skip-tls-verify")
        assert a_records(srv, "echo.default.svc.local.") == ("NOERROR", ["10.96.0.50"])


def test_a_rotated_token_file_is_read_again(api):
    kc = api.kubeconfig(auth="token-file")
    with svcdns(api, kubeconfig=kc) as srv:
        api.set_token("rotated-token")    # the old token gets 401 from now on
        api.cut_watches()                 # new requests: they must carry the new token
        assert api.wait_for_requests(2, verb="watch", resource="services", timeout=10)
        api.add_service("after-rotation", "web", cluster_ip="10.96.0.91")
        wait_for(srv, "after-rotation.web.svc.local.", ("NOERROR", ["10.96.0.91"]))
        assert api.count(status=401) == 0, api.request_log()
        assert srv.wait_for_log("msg=\"the token changed\"")
        # a token the server refuses: reported once (401), and svcdns keeps serving
        with open(os.path.join(api.dir, "token"), "w") as f:
            f.write("wrong-token\n")
        api.cut_watches()
        assert api.wait_for_requests(3, status=401, timeout=20)
        errors = [e for e in error_lines(srv) if "status=401" in e]
        assert len(errors) >= 1 and "does not accept the credentials" in errors[0], errors
        assert len({e.split("kind=")[1].split()[0] for e in errors}) == len(errors)
        assert a_records(srv, "echo.default.svc.local.") == ("NOERROR", ["10.96.0.50"])
        with open(os.path.join(api.dir, "token"), "w") as f:
            f.write("rotated-token\n")
        api.add_service("after-fix", "web", cluster_ip="10.96.0.92")
        wait_for(srv, "after-fix.web.svc.local.", ("NOERROR", ["10.96.0.92"]), timeout=40)


# --- in-cluster credentials --------------------------------------------------------------------

def test_in_cluster_credentials_and_token_rotation(api):
    if os.geteuid() != 0:
        pytest.skip("a private mount namespace needs root")
    sa_dir, env = api.serviceaccount_dir()
    wrapper = e2e.in_cluster_wrapper(sa_dir)
    with e2e.Server(extra_args=["--kubernetes"], wrapper=wrapper, env=env,
                    label="svcdns-in-cluster") as srv:
        srv.wait_synced(SYNC_TIMEOUT)
        assert a_records(srv, "echo.default.svc.local.") == ("NOERROR", ["10.96.0.50"])
        api.set_token("projected-token-2")   # kubelet rewrites the projected token
        api.cut_watches()
        api.add_service("rotated", "web", cluster_ip="10.96.0.93")
        wait_for(srv, "rotated.web.svc.local.", ("NOERROR", ["10.96.0.93"]))
        assert api.count(status=401) == 0, api.request_log()


def test_kubernetes_outside_a_pod_is_a_clear_error():
    env = {k: v for k, v in os.environ.items() if not k.startswith("KUBERNETES_SERVICE_")}
    p = subprocess.run([e2e.BIN, "--check", "--kubernetes", "--upstream", "none"],
                       capture_output=True, text=True, env=env, timeout=30)
    assert p.returncode == 1
    assert "KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT are not set" in p.stderr


# --- with manifests, and --check -----------------------------------------------------------------


def test_merged_with_manifests_the_api_wins_with_a_warning(api, tmp_path):
    m = tmp_path / "m.yaml"
    m.write_text("""apiVersion: v1
kind: Service
metadata: {name: echo, namespace: default}
spec: {clusterIP: 10.96.1.1, ports: [{port: 80}]}
---
apiVersion: v1
kind: Service
metadata: {name: local-only, namespace: files}
spec: {clusterIP: 10.96.1.2, ports: [{port: 80}]}
""")
    with svcdns(api, extra=["--manifests", m]) as srv:
        assert a_records(srv, "echo.default.svc.local.") == ("NOERROR", ["10.96.0.50"])
        assert a_records(srv, "local-only.files.svc.local.") == ("NOERROR", ["10.96.1.2"])
        assert wait_until(lambda: re.search(
            r"level=warn module=zones at=\"\S*m\.yaml:3:\d+\" msg=\"Service default/echo is "
            r"also defined by the Kubernetes API, which wins", srv.stderr()), 5), srv.stderr()
        # gone from the API, the manifest's definition is served again
        api.delete_service("echo", "default")
        wait_for(srv, "echo.default.svc.local.", ("NOERROR", ["10.96.1.1"]))
        # and a reload of the manifests keeps the API's objects
        api.add_service("echo", "default", cluster_ip="10.96.0.51")
        wait_for(srv, "echo.default.svc.local.", ("NOERROR", ["10.96.0.51"]))
        srv.proc.send_signal(1)  # SIGHUP
        assert srv.wait_for_log("trigger=sighup")
        assert a_records(srv, "echo.default.svc.local.") == ("NOERROR", ["10.96.0.51"])
        assert a_records(srv, "local-only.files.svc.local.") == ("NOERROR", ["10.96.1.2"])


def test_check_lists_once_and_prints_the_summary(api):
    p = e2e.run_cli(["--check", "--kubeconfig", api.kubeconfig(), "--upstream", "none"])
    assert p.returncode == 0, p.stderr
    assert re.search(r"^kubernetes ok: https://127\.0\.0\.1:\d+ \(context fake\); 2 namespaces, "
                     r"3 services, 2 endpoint slices, 0 pods listed; \d+ records under local$",
                     p.stdout, re.M), p.stdout
    assert api.count(verb="watch") == 0, api.request_log()
    assert api.count(verb="list") == 4
    # --dump lists once too, then prints the zone
    p = e2e.run_cli(["--dump", "--kubeconfig", api.kubeconfig(), "--upstream", "none"])
    assert p.returncode == 0, p.stderr
    assert re.search(r"^echo\.default\.svc\.local\.\s+5\s+IN\s+A\s+10\.96\.0\.50$", p.stdout,
                     re.M), p.stdout


def test_check_fails_clearly_when_the_api_server_is_unreachable(api, tmp_path):
    kc = tmp_path / "kc"
    kc.write_text(pathlib_text(api.kubeconfig()).replace(
        f"127.0.0.1:{api.port}", f"127.0.0.1:{e2e.free_port()}"))
    start = time.monotonic()
    p = e2e.run_cli(["--check", "--kubeconfig", kc, "--upstream", "none"])
    assert p.returncode == 1
    assert time.monotonic() - start < 20
    assert "status=0" in p.stderr and "could not list the API server" in p.stderr, p.stderr


@pytest.mark.parametrize("mutate,expected", [
    (lambda t: t.replace("current-context: fake", "current-context: gone"),
     '"gone" names no entry of contexts'),
    (lambda t: t.replace("current-context: fake\n", ""), "current-context is not set"),
    (lambda t: t.replace("certificate-authority:", "certificate-authority: /nonexistent #"),
     "cannot read /nonexistent"),
])
def test_an_unusable_kubeconfig_is_a_startup_error(api, tmp_path, mutate, expected):
    kc = tmp_path / "kc"
    kc.write_text(mutate(pathlib_text(api.kubeconfig())))
    p = e2e.run_cli(["--kubeconfig", kc, "--upstream", "none", "--listen", "127.0.0.1:0"])
    assert p.returncode == 1
    assert expected in p.stderr, p.stderr
    assert api.count() == 0


def test_kubernetes_and_kubeconfig_exclude_each_other(api):
    p = e2e.run_cli(["--check", "--kubernetes", "--kubeconfig", api.kubeconfig()])
    assert p.returncode == 1 and "give one of them" in p.stderr, p.stderr


def test_config_file_keys(api, tmp_path):
    cfg = tmp_path / "svcdns.yaml"
    cfg.write_text(f"kubeconfig: {api.kubeconfig()}\nupstream: none\n")
    p = e2e.run_cli(["--check", "--config", cfg])
    assert p.returncode == 0 and "kubernetes ok:" in p.stdout, p.stderr
    cfg.write_text("kubernetes: true\nupstream: none\n")
    env_free = {k: v for k, v in os.environ.items() if not k.startswith("KUBERNETES_SERVICE_")}
    p = subprocess.run([e2e.BIN, "--check", "--config", str(cfg)], capture_output=True,
                       text=True, env=env_free, timeout=30)
    assert p.returncode == 1 and "KUBERNETES_SERVICE_HOST" in p.stderr, p.stderr
