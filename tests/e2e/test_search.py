"""The search path end to end (DESIGN.md section 4; README, Search path: the resolv.conf of
a pod and what ndots:5 costs).

a) short names as dig and kdig send them (no search list applied), over UDP and TCP, and
   which wins when a two-label name is also a public one (a Namespace named like a TLD);
b) `svcdns --resolv-conf NS`;
c) glibc's resolver (getent ahosts) in a network namespace of its own, with the resolv.conf a
   pod gets, svcdns on 127.0.0.1:53 and NSD upstream on 127.0.0.1:5300: the number of queries
   each lookup costs, read from svcdns's query log, with and without autopath.

The harness is svcdns_e2e.py; SVCDNS_BIN is the binary under test."""

import socket
import threading

import dns.flags
import dns.rcode
import dns.rdatatype
import pytest

import svcdns_e2e as e2e
from fake_upstream import FakeUpstream
from svcdns_e2e import WWW_A, WWW_AAAA

ZONE_TTL = 5

# --- the cluster the tests serve ------------------------------------------------------------

ECHO_IP = "10.96.100.10"        # echo.default.svc.local
OTHER_ECHO_IP = "10.96.200.10"  # echo.other.svc.local
EXAMPLE_IP = "10.96.100.30"     # example.default.svc.local


def service(name, namespace, cluster_ip):
    return f"""\
apiVersion: v1
kind: Service
metadata: {{name: {name}, namespace: {namespace}}}
spec:
  clusterIP: {cluster_ip}
  ports: [{{name: http, protocol: TCP, port: 80}}]
"""


CLUSTER_MANIFEST = "---\n".join([
    service("echo", "default", ECHO_IP),
    service("example", "default", EXAMPLE_IP),
    """\
apiVersion: v1
kind: Service
metadata: {name: gihyo, namespace: default}
spec:
  type: ExternalName
  externalName: gihyo.jp
""",
    service("echo", "other", OTHER_ECHO_IP)])


def client_pod_manifest(ip="127.0.0.1", namespace="default"):
    """A Pod whose address is the client's: its namespace is the client's namespace."""
    return f"""\
apiVersion: v1
kind: Pod
metadata: {{name: client, namespace: {namespace}}}
spec:
  containers: [{{name: c, image: busybox}}]
status:
  phase: Running
  podIP: {ip}
  podIPs: [{{ip: {ip}}}]
"""


def write_manifests(directory, with_pod, pod_ip="127.0.0.1"):
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "cluster.yaml").write_text(CLUSTER_MANIFEST)
    if with_pod:
        (directory / "pod.yaml").write_text(client_pod_manifest(pod_ip))
    return directory


def svcdns(manifest_dir, *args, label, **kw):
    """svcdns on the search-path cluster, with --log-queries, forwarding nothing unless
    upstreams are given."""
    return e2e.Server([manifest_dir], extra_args=args, log_queries=True, label=label, **kw)


def dig(tool, server, name, rdtype="A", tcp=False):
    """(status, answer) of dig or kdig against server."""
    r = e2e.dig_reply(tool, server.port, name, rdtype, tcp)
    return r["status"], r["answer"]


@pytest.fixture(scope="module")
def cluster_dir(tmp_path_factory):
    return write_manifests(tmp_path_factory.mktemp("search-cluster"), with_pod=False)


@pytest.fixture(scope="module")
def cluster_with_pod_dir(tmp_path_factory):
    """The cluster plus a Pod in namespace default whose address is 127.0.0.1."""
    return write_manifests(tmp_path_factory.mktemp("search-pod"), with_pod=True)


@pytest.fixture(scope="module")
def server(cluster_dir):
    """Defaults (--namespace default, expansion and autopath on), nothing forwarded."""
    with svcdns(cluster_dir, label="defaults") as srv:
        yield srv


def last_logged(server):
    log = server.query_log()
    assert log, f"nothing in the query log\n{server.describe()}"
    return log[-1]


def assert_logged(server, name, tcp, rcode):
    """The last query svcdns logged: the client's name, the transport, the rcode."""
    entry = last_logged(server)
    assert entry.get("name") == name, entry
    assert entry.get("proto") == ("tcp" if tcp else "udp"), entry
    assert entry.get("rcode") == rcode, entry


# --- a) short names from dig and kdig ---------------------------------------------------------

TOOLS = ["dig", "kdig"]
TRANSPORTS = pytest.mark.parametrize("tcp", [False, True], ids=["udp", "tcp"])


@TRANSPORTS
@pytest.mark.parametrize("tool", TOOLS)
@pytest.mark.parametrize("name", ["echo", "echo.default"], ids=["service", "service.namespace"])
def test_a_short_service_name_is_a_cname_to_the_service(server, name, tool, tcp):
    # `echo` is looked up in the client's namespace (default), `echo.default` names it
    status, answer = dig(tool, server, name, tcp=tcp)
    assert status == "NOERROR"
    assert answer == [(name + ".", ZONE_TTL, "CNAME", "echo.default.svc.local."),
                      ("echo.default.svc.local.", ZONE_TTL, "A", ECHO_IP)]
    assert_logged(server, name + ".", tcp, "NOERROR")


@TRANSPORTS
@pytest.mark.parametrize("tool", TOOLS)
def test_an_external_name_short_name_is_a_cname_to_the_service_then_to_its_target(server, tool,
                                                                                  tcp):
    status, answer = dig(tool, server, "gihyo", tcp=tcp)
    assert status == "NOERROR"
    assert answer == [("gihyo.", ZONE_TTL, "CNAME", "gihyo.default.svc.local."),
                      ("gihyo.default.svc.local.", ZONE_TTL, "CNAME", "gihyo.jp.")]


@TRANSPORTS
@pytest.mark.parametrize("tool", TOOLS)
def test_a_short_name_that_names_nothing_is_refused_when_nothing_is_forwarded(server, tool,
                                                                             tcp):
    for name in ("nothere", "echo.nowhere"):
        status, answer = dig(tool, server, name, tcp=tcp)
        assert (status, answer) == ("REFUSED", []), name
        assert_logged(server, name + ".", tcp, "REFUSED")


@TRANSPORTS
def test_the_question_keeps_the_clients_case_and_the_cname_starts_from_it(server, tcp):
    status, answer = dig("dig", server, "ECHO.Default", tcp=tcp)
    assert status == "NOERROR"
    assert answer == [("ECHO.Default.", ZONE_TTL, "CNAME", "echo.default.svc.local."),
                      ("echo.default.svc.local.", ZONE_TTL, "A", ECHO_IP)]


def test_a_bare_name_of_a_service_and_of_a_namespace_prefers_the_service(server):
    # "example" is a Service in default; "other" only a namespace (other.svc.local exists
    # with no records), which is no answer for a short name.
    status, answer = dig("dig", server, "example")
    assert status == "NOERROR"
    assert answer == [("example.", ZONE_TTL, "CNAME", "example.default.svc.local."),
                      ("example.default.svc.local.", ZONE_TTL, "A", EXAMPLE_IP)]
    assert dig("dig", server, "other") == ("REFUSED", [])


def test_a_bare_name_asked_for_a_type_it_lacks_is_the_cname_and_nodata(server):
    resp = server.query("echo", "AAAA")
    assert resp.rcode() == dns.rcode.NOERROR
    assert [(r.name.to_text(), dns.rdatatype.to_text(r.rdtype)) for r in resp.answer] == \
        [("echo.", "CNAME")]
    assert [r.rdtype for r in resp.authority] == [dns.rdatatype.SOA]


@TRANSPORTS
@pytest.mark.parametrize("tool", TOOLS)
def test_no_search_expand_answers_short_names_as_they_are(cluster_dir, tool, tcp):
    with svcdns(cluster_dir, "--no-search-expand", label="no-search-expand") as srv:
        assert dig(tool, srv, "echo", tcp=tcp) == ("REFUSED", [])
        assert dig(tool, srv, "echo.default", tcp=tcp) == ("REFUSED", [])
        status, answer = dig(tool, srv, "echo.default.svc.local", tcp=tcp)
        assert (status, answer) == ("NOERROR",
                                    [("echo.default.svc.local.", ZONE_TTL, "A", ECHO_IP)])


@TRANSPORTS
@pytest.mark.parametrize("tool", TOOLS)
def test_namespace_sets_where_short_names_of_unknown_clients_are_looked_up(cluster_dir, tool,
                                                                          tcp):
    with svcdns(cluster_dir, "--namespace", "other", label="namespace-other") as srv:
        status, answer = dig(tool, srv, "echo", tcp=tcp)
        assert status == "NOERROR"
        assert answer == [("echo.", ZONE_TTL, "CNAME", "echo.other.svc.local."),
                          ("echo.other.svc.local.", ZONE_TTL, "A", OTHER_ECHO_IP)]
        # service.namespace names the namespace itself
        status, answer = dig(tool, srv, "echo.default", tcp=tcp)
        assert answer[-1] == ("echo.default.svc.local.", ZONE_TTL, "A", ECHO_IP)


def test_a_pods_short_names_are_looked_up_in_the_pods_namespace(tmp_path):
    # The Pod at 127.0.0.1 is in namespace other; --namespace says default.
    d = tmp_path / "m"
    write_manifests(d, with_pod=False)
    (d / "pod.yaml").write_text(client_pod_manifest("127.0.0.1", "other"))
    with svcdns(d, label="pod-in-other") as srv:
        status, answer = dig("dig", srv, "echo")
        assert answer[0] == ("echo.", ZONE_TTL, "CNAME", "echo.other.svc.local.")
        # from an address no Pod has, the default namespace
        resp = srv.query("echo", source="127.0.0.2")
        assert resp.answer[0][0].target.to_text() == "echo.default.svc.local."


# --- a') autopath without an upstream: cluster candidates only --------------------------------


def test_autopath_answers_a_pods_first_walk_step_with_the_service_it_reaches(
        cluster_with_pod_dir):
    with svcdns(cluster_with_pod_dir, label="autopath") as srv:
        resp = srv.query("echo.default.default.svc.local")  # from 127.0.0.1: the Pod
        assert resp.rcode() == dns.rcode.NOERROR
        assert [(r.name.to_text(), dns.rdatatype.to_text(r.rdtype), r[0].to_text())
                for r in resp.answer] == [
            ("echo.default.default.svc.local.", "CNAME", "echo.default.svc.local."),
            ("echo.default.svc.local.", "A", ECHO_IP)]
        # a client no Pod has: the plain authoritative NXDOMAIN
        resp = srv.query("echo.default.default.svc.local", source="127.0.0.2")
        assert resp.rcode() == dns.rcode.NXDOMAIN
        assert resp.flags & dns.flags.AA and not resp.answer
        assert [r.rdtype for r in resp.authority] == [dns.rdatatype.SOA]
        # with nothing forwarded, a name outside the cluster cannot exist: plain NXDOMAIN
        resp = srv.query("www.example.test.default.svc.local")
        assert resp.rcode() == dns.rcode.NXDOMAIN and not resp.answer
        assert resp.authority[0].name.to_text() == "local."


@TRANSPORTS
def test_a_walk_step_whose_upstream_fails_is_the_asked_names_nxdomain_not_servfail(
        cluster_with_pod_dir, tcp):
    # The only upstream is a closed port on 127.0.0.1: forwarding X ends in SERVFAIL, and the
    # client must see the authoritative NXDOMAIN of the name it asked, so that its own walk
    # goes on (a SERVFAIL would stop musl's, and end glibc's search early).
    dead = e2e.free_port()
    with svcdns(cluster_with_pod_dir, upstreams=[f"127.0.0.1:{dead}"],
                label="dead-upstream") as srv:
        r = e2e.dig_reply("dig", srv.port, "WWW.example.test.default.svc.local", tcp=tcp)
        assert r["status"] == "NXDOMAIN", r["text"]
        assert "aa" in r["flags"] and not r["answer"], r["text"]
        assert [(o, t) for o, _, t, _ in r["authority"]] == [("local.", "SOA")], r["text"]
        assert "WWW.example.test.default.svc.local." in r["text"]
        entry = srv.query_log()[-1]
        assert (entry["name"], entry["rcode"]) == ("www.example.test.default.svc.local.",
                                                   "NXDOMAIN"), entry


def test_a_walk_step_the_forwarder_refuses_is_the_asked_names_nxdomain_not_refused(
        cluster_with_pod_dir):
    # --max-concurrent 1 and an upstream that never answers (the fake upstream's `silent`
    # names): the first walk step parks upstream, and the forwarder REFUSES the second.
    # Neither name exists under the cluster suffix, so both must be its authoritative
    # NXDOMAIN, never a SERVFAIL, a REFUSED or a timeout (README, Search path: when the
    # upstream fails or refuses, the reply is the plain NXDOMAIN of the asked name), and not
    # "CNAME X" with the forwarder's REFUSED.
    with FakeUpstream() as up, \
            svcdns(cluster_with_pod_dir, "--max-concurrent", "1", "--upstream-timeout", "300",
                   upstreams=[up.addr], label="max-concurrent") as srv:
        first = {}
        t = threading.Thread(target=lambda: first.update(
            e2e.dig_reply("dig", srv.port, "silent-1.example.test.default.svc.local")))
        t.start()
        try:
            # parked upstream now
            assert e2e.wait_until(lambda: up.queries("silent-1.example.test."),
                                  e2e.START_TIMEOUT), up.queries()
            r = e2e.dig_reply("dig", srv.port, "silent-2.example.test.default.svc.local")
        finally:
            t.join(timeout=10)
        for reply in (first, r):
            assert reply["status"] == "NXDOMAIN", reply["text"]
            assert "aa" in reply["flags"] and not reply["answer"], reply["text"]
            assert [(o, ty) for o, _, ty, _ in reply["authority"]] == [("local.", "SOA")], \
                reply["text"]


def test_no_autopath_answers_a_pods_walk_step_by_step(cluster_with_pod_dir):
    with svcdns(cluster_with_pod_dir, "--no-autopath", label="no-autopath") as srv:
        resp = srv.query("echo.default.default.svc.local")
        assert resp.rcode() == dns.rcode.NXDOMAIN and not resp.answer


# --- a'') two-label names and public DNS -------------------------------------------------------

# A Namespace named like a TLD, with Services named like public domains under it: the upstream
# (the fake one) answers every name, except that a first label naming a fault makes it fail.
TLD_NAMESPACE = """\
apiVersion: v1
kind: Namespace
metadata: {name: com}
"""
TLD_SERVICES = {"google": "10.96.50.1", "nxdomain": "10.96.50.2", "refused": "10.96.50.3",
                "servfail": "10.96.50.4", "silent": "10.96.50.5"}
PUBLIC_A = "192.0.2.1"  # what the fake upstream answers for any other name


@pytest.fixture(scope="module")
def tld_dir(tmp_path_factory):
    d = write_manifests(tmp_path_factory.mktemp("search-tld"), with_pod=False)
    (d / "com.yaml").write_text("---\n".join(
        [TLD_NAMESPACE] + [service(n, "com", ip) for n, ip in TLD_SERVICES.items()]))
    return d


@pytest.fixture(scope="module")
def tld_upstream():
    with FakeUpstream() as up:
        yield up


@pytest.fixture(scope="module")
def tld_server(tld_dir, tld_upstream):
    with svcdns(tld_dir, upstreams=[tld_upstream.addr], label="tld") as srv:
        yield srv


def answer_of(resp):
    return [(r.name.to_text(), dns.rdatatype.to_text(r.rdtype), r[0].to_text())
            for r in resp.answer]


@TRANSPORTS
def test_a_public_two_label_name_is_the_upstreams_not_a_namespaces(tld_server, tld_upstream,
                                                                     tcp):
    # Namespace com, Service google: google.com. asked as it is, from any client, is the
    # public name.
    resp = tld_server.query("Google.COM.", tcp=tcp)
    assert resp.rcode() == dns.rcode.NOERROR
    assert answer_of(resp) == [("Google.COM.", "A", PUBLIC_A)], resp
    assert tld_upstream.queries("google.com.")
    assert_logged(tld_server, "google.com.", tcp, "NOERROR")
    # NODATA is the upstream's too: the name exists in public DNS.
    resp = tld_server.query("google.com.", "SRV", tcp=tcp)
    assert resp.rcode() == dns.rcode.NOERROR and not resp.answer, resp
    assert resp.authority[0].name.to_text() == "com.", resp


@pytest.mark.parametrize("fault", ["nxdomain", "refused", "servfail", "silent"])
def test_a_two_label_name_the_upstream_does_not_have_is_the_clusters(tld_server, tld_upstream,
                                                                      fault):
    # NXDOMAIN, REFUSED, SERVFAIL or no reply at all (after the upstream deadline).
    resp = tld_server.query(f"{fault}.com.", timeout=5)
    assert resp.rcode() == dns.rcode.NOERROR, resp
    assert answer_of(resp) == [(f"{fault}.com.", "CNAME", f"{fault}.com.svc.local."),
                               (f"{fault}.com.svc.local.", "A", TLD_SERVICES[fault])], resp
    assert tld_upstream.queries(f"{fault}.com."), "the upstream was asked first"


def test_a_single_label_name_is_the_clusters_at_once(tld_server, tld_upstream):
    resp = tld_server.query("echo")
    assert answer_of(resp) == [("echo.", "CNAME", "echo.default.svc.local."),
                               ("echo.default.svc.local.", "A", ECHO_IP)], resp
    assert not tld_upstream.queries("echo."), "a single label is never asked upstream"


def test_without_an_upstream_a_two_label_name_is_the_clusters(tld_dir):
    with svcdns(tld_dir, label="tld-no-upstream") as srv:
        resp = srv.query("google.com.")
        assert answer_of(resp) == [("google.com.", "CNAME", "google.com.svc.local."),
                                   ("google.com.svc.local.", "A", TLD_SERVICES["google"])], resp


def test_an_authoritative_only_upstream_refuses_and_the_cluster_answers(cluster_dir):
    # NSD serves example.test only: it REFUSES echo.default., which is then the cluster's.
    with e2e.Nsd() as nsd, svcdns(cluster_dir, upstreams=[nsd.addr], label="nsd") as srv:
        status, answer = dig("dig", srv, "echo.default")
        assert status == "NOERROR"
        assert answer == [("echo.default.", ZONE_TTL, "CNAME", "echo.default.svc.local."),
                          ("echo.default.svc.local.", ZONE_TTL, "A", ECHO_IP)]
        status, answer = dig("dig", srv, "www.example.test")
        assert status == "NOERROR" and [a[3] for a in answer] == [WWW_A]


# --- b) --resolv-conf -------------------------------------------------------------------------


def test_resolv_conf_prints_a_pods_resolv_conf_and_exits_0():
    p = e2e.run_cli(["--resolv-conf", "default"])
    assert p.returncode == 0, p.stderr
    assert p.stderr == ""
    lines = [l for l in p.stdout.splitlines() if not l.startswith("#")]
    assert lines == ["search default.svc.local svc.local local",
                     "nameserver 127.0.0.1",
                     "options ndots:5"]


def test_resolv_conf_follows_cluster_domain_nameserver_and_listen():
    p = e2e.run_cli(["--resolv-conf", "prod", "--cluster-domain", "cluster.local",
                    "--nameserver", "10.96.0.10"])
    assert p.returncode == 0, p.stderr
    assert "search prod.svc.cluster.local svc.cluster.local cluster.local\n" in p.stdout
    assert "\nnameserver 10.96.0.10\n" in p.stdout
    assert p.stdout.endswith("options ndots:5\n")
    # without --nameserver: the first --listen address, without its port
    p = e2e.run_cli(["--resolv-conf", "web", "--listen", "[::1]:5353", "--listen",
                    "127.0.0.1:53"])
    assert p.returncode == 0, p.stderr
    assert "\nnameserver ::1\n" in p.stdout


def test_resolv_conf_neither_loads_manifests_nor_binds(tmp_path):
    # a manifest that does not parse and a --listen port in use change nothing
    bad = tmp_path / "bad.yaml"
    bad.write_text("kind: Service\n  metadata: [\n")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
        u.bind(("127.0.0.1", 0))
        port = u.getsockname()[1]
        p = e2e.run_cli(["--resolv-conf", "default", "--manifests", str(bad), "--listen",
                        f"127.0.0.1:{port}"])
    assert p.returncode == 0, p.stderr
    assert "nameserver 127.0.0.1\n" in p.stdout


def test_resolv_conf_refuses_a_name_that_is_no_namespace():
    p = e2e.run_cli(["--resolv-conf", "a.b"])
    assert p.returncode != 0
    assert p.stdout == ""
    assert "--resolv-conf" in p.stderr and "a.b" in p.stderr


# --- c) glibc in a network namespace ---------------------------------------------------------

# How each scenario's svcdns runs inside the namespace.
SCENARIOS = {
    # a Pod in default at 127.0.0.1, the client's address: autopath knows where walks start
    "autopath": {"pod": True, "args": []},
    "no-autopath": {"pod": True, "args": ["--no-autopath"]},
    # no Pod has 127.0.0.1: short names use --namespace default, no autopath
    "unknown-client": {"pod": False, "args": []},
}

# name -> (addresses getent prints, canonical name), or None when the lookup must fail.
LOOKUPS = {
    "echo": ({ECHO_IP}, "echo.default.svc.local"),
    "echo.default": ({ECHO_IP}, "echo.default.svc.local"),
    "echo.default.svc.local": ({ECHO_IP}, "echo.default.svc.local"),
    "www.example.test": ({WWW_A, WWW_AAAA}, "www.example.test"),
    "nothere.example.test": None,
}

# Queries svcdns receives per lookup. glibc sends A and AAAA together for each name it tries
# and, as the name has fewer dots than ndots:5, tries the search list first:
# NAME.default.svc.local, NAME.svc.local, NAME.local, then NAME itself; it stops at the first
# name that answers (NXDOMAIN goes on; NODATA would too, but none of these gets one).
QUERY_COUNTS = {
    "autopath": {
        "echo": 2,                    # echo.default.svc.local answers at once
        # echo.default.default.svc.local is the first step of a walk from a Pod in default:
        # autopath answers it with CNAME echo.default.svc.local + A, so the walk ends there.
        "echo.default": 2,
        # the first step's answer is the walk's end: X itself, echo.default.svc.local
        "echo.default.svc.local": 2,
        # ...and www.example.test, from NSD, behind a CNAME from the first step
        "www.example.test": 2,
        # every candidate is NXDOMAIN: the first step gets the plain NXDOMAIN and glibc walks
        # on by itself: 4 names x (A, AAAA)
        "nothere.example.test": 8,
    },
    "no-autopath": {
        "echo": 2,
        "echo.default": 4,            # echo.default.default.svc.local NX, then the service
        "echo.default.svc.local": 8,  # 3 NX search names, then the name as asked
        "www.example.test": 8,        # 3 NX search names, then upstream
        "nothere.example.test": 8,
    },
    "unknown-client": {
        "echo": 2,
        "echo.default": 4,
        "echo.default.svc.local": 8,
        "www.example.test": 8,
        "nothere.example.test": 8,
    },
}

SEARCH = ["default.svc.local", "svc.local", "local"]


def walk(name):
    """The names glibc asks for NAME (fewer dots than ndots), in order."""
    return [f"{name}.{suffix}." for suffix in SEARCH] + [name + "."]


MEASURED = {}  # scenario -> lookup -> count, printed at the end of the module


@pytest.fixture(scope="module")
def netns_with_upstream():
    """A fresh network namespace: the resolv.conf of a pod in default (made by svcdns
    --resolv-conf), hosts with localhost only, hosts lookups from files then DNS; NSD
    serving example.test on 127.0.0.1:5300. Skipped where this machine cannot make a
    network namespace (not root)."""
    p = e2e.run_cli(["--resolv-conf", "default"])
    assert p.returncode == 0, p.stderr
    resolv_conf = p.stdout
    assert "nameserver 127.0.0.1\n" in resolv_conf and "options ndots:5\n" in resolv_conf
    files = {
        "resolv.conf": resolv_conf,
        "hosts": "127.0.0.1 localhost\n::1 localhost ip6-localhost\n",
        "nsswitch.conf": "hosts: files dns\n",
    }
    with e2e.network_namespace(files) as ns, e2e.Nsd(netns=ns) as nsd:
        yield ns, nsd
    if MEASURED:
        print("\nqueries per getent lookup (svcdns query log):")
        for scenario, counts in MEASURED.items():
            print(f"  {scenario}: " + ", ".join(f"{k}={v}" for k, v in counts.items()))


@pytest.fixture(scope="module", params=list(SCENARIOS))
def resolving(request, netns_with_upstream, tmp_path_factory):
    """svcdns on 127.0.0.1:53 in the namespace, forwarding to NSD; one scenario at a time
    (pytest ends one parameter's instance before it starts the next)."""
    ns, nsd = netns_with_upstream
    scenario = SCENARIOS[request.param]
    d = write_manifests(tmp_path_factory.mktemp(f"netns-{request.param}"),
                        with_pod=scenario["pod"])
    with svcdns(d, *scenario["args"], upstreams=[nsd.addr], netns=ns,
                label=request.param) as srv:
        yield request.param, ns, srv


@pytest.mark.parametrize("name", list(LOOKUPS))
def test_glibc_resolves_through_the_search_list_with_the_expected_number_of_queries(resolving,
                                                                                    name):
    scenario, ns, srv = resolving
    before = len(srv.query_log())
    rc, addrs, canon = e2e.getent_ahosts(ns, name)
    queries = srv.query_log()[before:]
    MEASURED.setdefault(scenario, {})[name] = len(queries)
    shown = "\n".join(f"  {q.get('name')} type={q.get('type')} rcode={q.get('rcode')} "
                      f"client={q.get('client')}" for q in queries)

    expected = LOOKUPS[name]
    if expected is None:
        assert rc == 2, f"getent ahosts {name}: exit {rc} (expected 2, not found)"
    else:
        assert rc == 0, f"getent ahosts {name}: exit {rc}\nqueries:\n{shown}\n{srv.describe()}"
        assert (addrs, canon) == expected, f"getent ahosts {name}\nqueries:\n{shown}"

    want = QUERY_COUNTS[scenario][name]
    assert len(queries) == want, \
        f"{scenario}: getent ahosts {name} cost {len(queries)} queries, expected {want}:\n{shown}"
    # Each name glibc tried, once for A and once for AAAA, in the order of the walk, all
    # from the client's address.
    names = [q.get("name") for q in queries]
    tried = walk(name)
    assert sorted(names) == sorted(n for n in tried[:want // 2] for _ in (1, 2)), shown
    assert sorted(q.get("type") for q in queries) == sorted(["1", "28"] * (want // 2)), shown
    assert {q.get("client", "").rsplit(":", 1)[0] for q in queries} == {"127.0.0.1"}, shown
    rcodes = [q.get("rcode") for q in queries]
    if expected is None:
        assert set(rcodes) == {"NXDOMAIN"}, shown
    else:
        # misses are NXDOMAIN, the last name tried answers
        last = tried[want // 2 - 1]
        assert {q.get("rcode") for q in queries if q.get("name") == last} == {"NOERROR"}, shown
        assert {q.get("rcode") for q in queries if q.get("name") != last} <= {"NXDOMAIN"}, shown


def test_the_first_walk_step_for_an_upstream_name_is_answered_with_the_walks_result(resolving):
    # What glibc got in the test above, asked directly: dig in the namespace, from 127.0.0.1.
    scenario, ns, srv = resolving
    r = e2e.dig_reply("dig", 53, "www.example.test.default.svc.local", netns=ns)
    if scenario == "autopath":
        assert r["status"] == "NOERROR", r["text"]
        assert r["answer"] == [
            ("www.example.test.default.svc.local.", ZONE_TTL, "CNAME", "www.example.test."),
            ("www.example.test.", 300, "A", WWW_A)], r["text"]
    else:
        # the client's namespace is unknown or autopath is off: the plain NXDOMAIN
        assert r["status"] == "NXDOMAIN" and "aa" in r["flags"] and not r["answer"], r["text"]
        assert [(o, t) for o, _, t, _ in r["authority"]] == [("local.", "SOA")], r["text"]


def test_a_walk_that_ends_in_nxdomain_upstream_is_the_clusters_nxdomain_for_the_asked_name(
        resolving):
    # Every candidate is NXDOMAIN (nothere.example.test is not in NSD's zone): the reply is
    # the authoritative NXDOMAIN of the asked name with the cluster SOA, in every scenario.
    scenario, ns, srv = resolving
    for tcp in (False, True):
        r = e2e.dig_reply("dig", 53, "Nothere.Example.test.default.svc.local", tcp=tcp, netns=ns)
        assert r["status"] == "NXDOMAIN", r["text"]
        assert "aa" in r["flags"] and not r["answer"], r["text"]
        assert [(o, t) for o, _, t, _ in r["authority"]] == [("local.", "SOA")], r["text"]
        assert "Nothere.Example.test.default.svc.local." in r["text"]  # the question's case
