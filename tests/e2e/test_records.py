"""Positive answers of the cluster zone and the reverse zones (DESIGN.md section 3).

Data: tests/e2e/data/cluster/ (default.yaml, pods.yaml, namespaces.yaml, infra.json) plus the
generated bulk namespace; kubectl-list.yaml in its own server."""

import time

import dns.flags
import dns.rcode
import dns.rdatatype
import dns.reversename
import pytest

import svcdns_e2e as e2e
from svcdns_e2e import assert_answer, assert_negative, records

# The spec conformance runs on the files and again on the same objects from an API server.
SERVER_SOURCES = ("manifests", "api")

TTL = 5

ECHO = "echo.default.svc.local."
ECHO_IP = "10.96.100.10"
DUAL = "dual.default.svc.local."
DUAL_V4, DUAL_V6 = "10.96.100.20", "fd00:10:96::20"
HEADLESS = "headless.default.svc.local."
HEADLESS_READY_V4 = ["10.244.2.1", "10.244.2.2", "10.244.2.4"]
HEADLESS_READY_V6 = ["fd00::7"]
# target label of each ready headless endpoint
HEADLESS_TARGETS = {
    "web-0.headless.default.svc.local.": ("A", "10.244.2.1"),
    "10-244-2-2.headless.default.svc.local.": ("A", "10.244.2.2"),
    "10-244-2-4.headless.default.svc.local.": ("A", "10.244.2.4"),
    "fd00--7.headless.default.svc.local.": ("AAAA", "fd00::7"),
}


def ptr_name(ip):
    return dns.reversename.from_address(ip).to_text()


# --- 1. ClusterIP A/AAAA ---------------------------------------------------------------------


def test_clusterip_a(server):
    r = server.query(ECHO, "A")
    assert_answer(r, "A", [ECHO_IP], name=ECHO, ttl=TTL)


def test_clusterip_a_over_tcp(server):
    r = server.query(ECHO, "A", tcp=True)
    assert_answer(r, "A", [ECHO_IP], name=ECHO, ttl=TTL)


def test_clusterip_answer_flags(server):
    r = server.query(ECHO, "A")
    assert r.flags & dns.flags.QR
    assert r.flags & dns.flags.AA
    assert not r.flags & dns.flags.TC
    assert r.flags & dns.flags.RD, "RD of the query must be copied"
    assert not r.authority, f"a positive answer carries no authority records\n{r}"


def test_dual_stack_a_and_aaaa(server):
    assert_answer(server.query(DUAL, "A"), "A", [DUAL_V4], name=DUAL, ttl=TTL)
    assert_answer(server.query(DUAL, "AAAA"), "AAAA", [DUAL_V6], name=DUAL, ttl=TTL)


def test_clusterip_without_endpoints_answers(server):
    # dual has no EndpointSlice at all
    assert_answer(server.query(DUAL, "A"), "A", [DUAL_V4])


def test_aaaa_of_v4_only_service_is_nodata(server):
    assert_negative(server.query(ECHO, "AAAA"), "NOERROR", soa_ttl=TTL)


@pytest.mark.parametrize("qname", ["EcHo.DeFaUlT.sVc.LoCaL.", "ECHO.DEFAULT.SVC.LOCAL."])
def test_case_insensitive_and_echoed(server, qname):
    r = server.query(qname, "A")
    # owner names keep the question's case, and the question is echoed as sent
    assert_answer(r, "A", [ECHO_IP], name=qname)
    assert r.question[0].name.to_text() == qname


# --- 2. headless ---------------------------------------------------------------------------


def test_headless_a_is_ready_endpoints(server):
    # 10.244.2.3 is ready:false; 10.244.2.4 has no conditions (counts as ready)
    assert_answer(server.query(HEADLESS, "A"), "A", HEADLESS_READY_V4, name=HEADLESS, ttl=TTL)


def test_headless_aaaa(server):
    assert_answer(server.query(HEADLESS, "AAAA"), "AAAA", HEADLESS_READY_V6, ttl=TTL)


def test_headless_without_ready_endpoints_is_nxdomain(server):
    assert_negative(server.query("empty-headless.default.svc.local.", "A"), "NXDOMAIN")


def test_headless_from_v1_endpoints(server):
    # notReadyAddresses are not served
    assert_answer(server.query("legacy.infra.svc.local.", "A"), "A",
                  ["10.244.4.1", "10.244.4.2"], ttl=TTL)


# --- 3. endpoint names -----------------------------------------------------------------------


@pytest.mark.parametrize("qname,rdtype,ip", [
    ("web-0.headless.default.svc.local.", "A", "10.244.2.1"),
    ("10-244-2-2.headless.default.svc.local.", "A", "10.244.2.2"),
    ("10-244-2-4.headless.default.svc.local.", "A", "10.244.2.4"),
    ("fd00--7.headless.default.svc.local.", "AAAA", "fd00::7"),
    ("ldap-0.legacy.infra.svc.local.", "A", "10.244.4.1"),
    ("10-244-4-2.legacy.infra.svc.local.", "A", "10.244.4.2"),
    # ClusterIP services with EndpointSlices get endpoint names too (CoreDNS does)
    ("echo-0.echo.default.svc.local.", "A", "10.244.1.5"),
    ("10-244-1-7.echo.default.svc.local.", "A", "10.244.1.7"),
])
def test_endpoint_names(server, qname, rdtype, ip):
    assert_answer(server.query(qname, rdtype), rdtype, [ip], name=qname, ttl=TTL)


@pytest.mark.parametrize("qname", [
    "web-3.headless.default.svc.local.",       # not ready, with hostname
    "10-244-2-3.headless.default.svc.local.",  # not ready, by address
    "echo-2.echo.default.svc.local.",          # not ready, ClusterIP service
    "10-244-1-9.echo.default.svc.local.",
    "ldap-2.legacy.infra.svc.local.",          # Endpoints notReadyAddresses
    "10-244-4-3.legacy.infra.svc.local.",
    "10-244-1-5.echo.default.svc.local.",      # has a hostname: named by it, not its address
    "10-244-3-1.empty-headless.default.svc.local.",
])
def test_not_ready_endpoints_have_no_name(server, qname):
    assert_negative(server.query(qname, "A"), "NXDOMAIN")


def test_endpoint_name_case_echo(server):
    qname = "WEB-0.Headless.Default.Svc.Local."
    assert_answer(server.query(qname, "A"), "A", ["10.244.2.1"], name=qname)


# --- 4. SRV ---------------------------------------------------------------------------------


def srv_tuples(resp):
    return sorted((rd.priority, rd.weight, rd.port, rd.target.to_text().lower())
                  for _, _, rd in records(resp.answer, "SRV"))


def additional_addrs(resp):
    """{(owner lower, type, address)} of the A/AAAA records in ADDITIONAL."""
    out = set()
    for owner, _, rd in records(resp.additional):
        if rd.rdtype in (dns.rdatatype.A, dns.rdatatype.AAAA):
            out.add((owner.lower(), dns.rdatatype.to_text(rd.rdtype), rd.address))
    return out


def test_srv_clusterip(server):
    qname = "_http._tcp.echo.default.svc.local."
    r = server.query(qname, "SRV")
    recs = assert_answer(r, "SRV", ["0 100 80 echo.default.svc.local."], name=qname, ttl=TTL)
    assert len(recs) == 1
    assert additional_addrs(r) == {(ECHO, "A", ECHO_IP)}


def test_srv_clusterip_udp_port(server):
    r = server.query("_dns._udp.echo.default.svc.local.", "SRV")
    assert_answer(r, "SRV", ["0 100 53 echo.default.svc.local."])
    assert additional_addrs(r) == {(ECHO, "A", ECHO_IP)}


def test_srv_dual_stack_glue(server):
    r = server.query("_https._tcp.dual.default.svc.local.", "SRV")
    assert_answer(r, "SRV", ["0 100 443 dual.default.svc.local."])
    assert additional_addrs(r) == {(DUAL, "A", DUAL_V4), (DUAL, "AAAA", DUAL_V6)}


def test_srv_headless(server):
    qname = "_http._tcp.headless.default.svc.local."
    r = server.query(qname, "SRV")
    assert r.rcode() == dns.rcode.NOERROR and r.flags & dns.flags.AA, r
    n = len(HEADLESS_TARGETS)
    expected = sorted((0, 100 // n, 8080, t) for t in HEADLESS_TARGETS)
    assert srv_tuples(r) == expected, r
    for owner, ttl, _ in records(r.answer):
        assert owner == qname and ttl == TTL, r
    want_glue = {(t, typ, ip) for t, (typ, ip) in HEADLESS_TARGETS.items()}
    assert additional_addrs(r) == want_glue, r


def test_srv_headless_v1_endpoints(server):
    r = server.query("_ldap._tcp.legacy.infra.svc.local.", "SRV")
    assert srv_tuples(r) == [(0, 50, 1389, "10-244-4-2.legacy.infra.svc.local."),
                             (0, 50, 1389, "ldap-0.legacy.infra.svc.local.")], r
    assert additional_addrs(r) == {
        ("ldap-0.legacy.infra.svc.local.", "A", "10.244.4.1"),
        ("10-244-4-2.legacy.infra.svc.local.", "A", "10.244.4.2")}, r


def test_srv_at_bare_service_name(server):
    r = server.query(ECHO, "SRV")
    assert r.rcode() == dns.rcode.NOERROR and r.flags & dns.flags.AA, r
    assert srv_tuples(r) == [(0, 50, 53, ECHO), (0, 50, 80, ECHO)], r
    assert additional_addrs(r) == {(ECHO, "A", ECHO_IP)}


def test_srv_at_bare_headless_name(server):
    r = server.query(HEADLESS, "SRV")
    n = len(HEADLESS_TARGETS)
    assert srv_tuples(r) == sorted((0, 100 // n, 8080, t) for t in HEADLESS_TARGETS), r


@pytest.mark.parametrize("qname", ["_tcp.echo.default.svc.local.",
                                   "_udp.echo.default.svc.local.",
                                   "_tcp.headless.default.svc.local."])
@pytest.mark.parametrize("rdtype", ["SRV", "A"])
def test_srv_proto_label_is_empty_non_terminal(server, qname, rdtype):
    assert_negative(server.query(qname, rdtype), "NOERROR")


@pytest.mark.parametrize("qname", ["_nope._tcp.echo.default.svc.local.",
                                   "_http._udp.echo.default.svc.local.",  # http is TCP
                                   "_dns._tcp.echo.default.svc.local.",   # dns is UDP
                                   "_http._sctp.echo.default.svc.local.",
                                   "_nope._tcp.headless.default.svc.local."])
def test_srv_unknown_port_is_nxdomain(server, qname):
    assert_negative(server.query(qname, "SRV"), "NXDOMAIN")


# --- 5. PTR ---------------------------------------------------------------------------------


@pytest.mark.parametrize("ip,target", [
    (ECHO_IP, ECHO),
    (DUAL_V4, DUAL),
    (DUAL_V6, DUAL),
    ("10.244.2.1", "web-0.headless.default.svc.local."),
    ("10.244.2.2", "10-244-2-2.headless.default.svc.local."),
    ("fd00::7", "fd00--7.headless.default.svc.local."),
    ("10.244.1.5", "echo-0.echo.default.svc.local."),
    ("10.244.1.7", "10-244-1-7.echo.default.svc.local."),
    ("10.244.4.1", "ldap-0.legacy.infra.svc.local."),
])
def test_ptr(server, ip, target):
    qname = ptr_name(ip)
    r = server.query(qname, "PTR")
    assert_answer(r, "PTR", [target], name=qname, ttl=TTL)


@pytest.mark.parametrize("ip,zone", [
    ("192.0.2.1", "in-addr.arpa."),
    ("10.96.100.11", "in-addr.arpa."),
    ("10.244.2.3", "in-addr.arpa."),   # a not-ready endpoint has no name
    ("2001:db8::1", "ip6.arpa."),
    ("fd00:10:96::21", "ip6.arpa."),
])
def test_ptr_unknown_address_is_nxdomain(server, ip, zone):
    assert_negative(server.query(ptr_name(ip), "PTR"), "NXDOMAIN", zone=zone)


# --- 6. ExternalName ------------------------------------------------------------------------


@pytest.mark.parametrize("rdtype", ["A", "AAAA", "TXT", "MX", "SRV", "CNAME"])
def test_externalname_cname(server, rdtype):
    qname = "gihyo.default.svc.local."
    r = server.query(qname, rdtype)
    assert_answer(r, "CNAME", ["gihyo.jp."], name=qname, ttl=TTL)


def test_externalname_to_cluster_service_chases_target(server):
    qname = "alias.default.svc.local."
    r = server.query(qname, "A")
    assert r.rcode() == dns.rcode.NOERROR and r.flags & dns.flags.AA, r
    recs = records(r.answer)
    got = [(o.lower(), dns.rdatatype.to_text(rd.rdtype), rd.to_text()) for o, _, rd in recs]
    assert got == [(qname, "CNAME", ECHO), (ECHO, "A", ECHO_IP)], r


def test_externalname_cname_loop_terminates(server):
    for tcp in (False, True):
        t0 = time.monotonic()
        r = server.query("loop-a.default.svc.local.", "A", tcp=tcp)
        elapsed = time.monotonic() - t0
        assert elapsed < 1.0, f"answer took {elapsed:.2f} s"
        assert r.rcode() == dns.rcode.NOERROR, r
        recs = records(r.answer)
        assert recs, r
        assert all(rd.rdtype == dns.rdatatype.CNAME for _, _, rd in recs), r
        assert 1 <= len(recs) <= 10, f"{len(recs)} CNAMEs\n{r}"
        owner, _, first = recs[0]
        assert owner.lower() == "loop-a.default.svc.local."
        assert first.target.to_text().lower() == "loop-b.default.svc.local."


def test_below_externalname_is_nxdomain(server):
    assert_negative(server.query("x.gihyo.default.svc.local.", "A"), "NXDOMAIN")


# --- 7. Pods (--pods insecure, the default) -------------------------------------------------


@pytest.mark.parametrize("qname,rdtype,ip", [
    ("10-244-5-10.web.pod.local.", "A", "10.244.5.10"),
    ("1-2-3-4.default.pod.local.", "A", "1.2.3.4"),       # any address, existing namespace
    ("1-2-3-4.empty.pod.local.", "A", "1.2.3.4"),         # Namespace object only
    ("10-0-0-1.infra.pod.local.", "A", "10.0.0.1"),
    ("fd00--5-10.web.pod.local.", "AAAA", "fd00::5:10"),
])
def test_pod_insecure(server, qname, rdtype, ip):
    assert_answer(server.query(qname, rdtype), rdtype, [ip], name=qname, ttl=TTL)


@pytest.mark.parametrize("qname", [
    "1-2-3-4.nosuch.pod.local.",      # namespace does not exist
    "1-2-3.default.pod.local.",       # three octets
    "300-1-1-1.default.pod.local.",   # octet out of range
    "1-2-3-4-5.default.pod.local.",
    "a-b-c-d.default.pod.local.",
    "x.1-2-3-4.default.pod.local.",
])
def test_pod_insecure_bad_names(server, qname):
    assert_negative(server.query(qname, "A"), "NXDOMAIN")


@pytest.mark.parametrize("qname", ["pod.local.", "web.pod.local.", "default.pod.local.",
                                   "empty.pod.local."])
def test_pod_empty_non_terminals(server, qname):
    assert_negative(server.query(qname, "A"), "NOERROR")


@pytest.fixture(scope="module")
def verified_server(cluster_manifests):
    with e2e.Server(cluster_manifests, pods="verified") as srv:
        yield srv


def test_pod_verified(verified_server):
    srv = verified_server
    assert_answer(srv.query("10-244-5-10.web.pod.local.", "A"), "A", ["10.244.5.10"])
    assert_answer(srv.query("10-244-5-11.web.pod.local.", "A"), "A", ["10.244.5.11"])
    assert_answer(srv.query("fd00--5-10.web.pod.local.", "AAAA"), "AAAA", ["fd00::5:10"])


@pytest.mark.parametrize("qname", [
    "10-244-5-99.web.pod.local.",    # no Pod has it
    "10-244-5-10.default.pod.local.",  # a Pod has it, in another namespace
    "1-2-3-4.default.pod.local.",
])
def test_pod_verified_unknown(verified_server, qname):
    assert_negative(verified_server.query(qname, "A"), "NXDOMAIN")


def test_pod_disabled(cluster_manifests):
    with e2e.Server(cluster_manifests, pods="disabled") as srv:
        for qname in ("10-244-5-10.web.pod.local.", "1-2-3-4.default.pod.local."):
            assert_negative(srv.query(qname, "A"), "NXDOMAIN")
        # services still answer
        assert_answer(srv.query(ECHO, "A"), "A", [ECHO_IP])


# --- 8, 9. dns-version, SOA, NS ----------------------------------------------------------------


def test_dns_version(server):
    qname = "dns-version.local."
    r = server.query(qname, "TXT")
    recs = assert_answer(r, "TXT", ['"1.1.0"'], name=qname, ttl=28800)
    assert recs[0][2].strings == (b"1.1.0",)


def test_soa(server):
    r = server.query("local.", "SOA")
    assert r.rcode() == dns.rcode.NOERROR and r.flags & dns.flags.AA, r
    recs = records(r.answer)
    assert len(recs) == 1 and recs[0][2].rdtype == dns.rdatatype.SOA, r
    owner, ttl, soa = recs[0]
    assert owner == "local." and ttl == TTL, r
    assert soa.mname.to_text() == "ns.dns.local."
    assert soa.rname.to_text() == "hostmaster.local."
    assert (soa.refresh, soa.retry, soa.expire, soa.minimum) == (7200, 1800, 86400, TTL)


def test_ns(server):
    assert_answer(server.query("local.", "NS"), "NS", ["ns.dns.local."], name="local.",
                  ttl=TTL)


# --- 11. ANY ------------------------------------------------------------------------------


@pytest.mark.parametrize("tcp", [False, True])
def test_any_at_service(server, tcp):
    r = server.query(ECHO, "ANY", tcp=tcp)
    assert r.rcode() == dns.rcode.NOERROR and r.flags & dns.flags.AA, r
    assert (ECHO, ECHO_IP) in {(o, rd.to_text()) for o, _, rd in records(r.answer, "A")}, r
    assert not records(r.answer, "AAAA"), r


def rrset_types(r):
    return sorted({dns.rdatatype.to_text(rrset.rdtype) for rrset in r.answer})


def test_any_over_udp_gets_one_rrset(server):
    """RFC 8482: over UDP, ANY gets one RRset (the first of A, AAAA, SRV), so a small forged
    query cannot draw every record of a name; an alias still answers with its CNAME."""
    for name, a in ((DUAL, [DUAL_V4]), (HEADLESS, HEADLESS_READY_V4)):
        r = server.query(name, "ANY")
        assert r.rcode() == dns.rcode.NOERROR and r.flags & dns.flags.AA, r
        assert rrset_types(r) == ["A"], r
        assert sorted(rd.to_text() for _, _, rd in records(r.answer, "A")) == sorted(a), r
        assert not r.additional, r
    r = server.query("local.", "ANY")
    assert rrset_types(r) == ["NS"], r
    r = server.query("gihyo.default.svc.local.", "ANY")
    assert rrset_types(r) == ["CNAME"], r


def test_any_over_tcp_gets_every_rrset(server):
    r = server.query(HEADLESS, "ANY", tcp=True)
    assert r.rcode() == dns.rcode.NOERROR and r.flags & dns.flags.AA, r
    assert rrset_types(r) == ["A", "AAAA", "SRV"], r
    assert len(records(r.answer, "SRV")) == len(HEADLESS_TARGETS), r
    assert rrset_types(server.query(DUAL, "ANY", tcp=True)) == ["A", "AAAA", "SRV"]
    assert rrset_types(server.query("local.", "ANY", tcp=True)) == ["NS", "SOA"]


# --- 12. another cluster domain, another TTL -------------------------------------------------


@pytest.fixture(scope="module")
def cluster_local_server(cluster_manifests):
    with e2e.Server(cluster_manifests, cluster_domain="cluster.local", ttl=30) as srv:
        yield srv


def test_cluster_domain_cluster_local(cluster_local_server):
    qname = "echo.default.svc.cluster.local."
    assert_answer(cluster_local_server.query(qname, "A"), "A", [ECHO_IP], name=qname, ttl=30)


def test_cluster_domain_soa_and_negative(cluster_local_server):
    r = cluster_local_server.query("cluster.local.", "SOA")
    soa = records(r.answer, "SOA")
    assert len(soa) == 1 and soa[0][1] == 30, r
    rd = soa[0][2]
    assert rd.mname.to_text() == "ns.dns.cluster.local."
    assert rd.rname.to_text() == "hostmaster.cluster.local."
    assert (rd.refresh, rd.retry, rd.expire, rd.minimum) == (7200, 1800, 86400, 30)
    assert_negative(cluster_local_server.query("nope.default.svc.cluster.local.", "A"),
                    "NXDOMAIN", zone="cluster.local.", soa_ttl=30)
    r = cluster_local_server.query("dns-version.cluster.local.", "TXT")
    assert_answer(r, "TXT", ['"1.1.0"'], ttl=28800)


@pytest.mark.parametrize("qname", ["x.local.", "echo.default.svc.local.", "local."])
def test_cluster_domain_other_names_out_of_zone(cluster_local_server, qname):
    r = cluster_local_server.query(qname, "A")
    assert r.rcode() == dns.rcode.REFUSED, r
    assert not r.answer


# --- a kubectl `get -o yaml` List ----------------------------------------------------------


@pytest.fixture(scope="module")
def list_server():
    with e2e.Server([e2e.DATA / "kubectl-list.yaml"]) as srv:
        yield srv


@pytest.mark.parametrize("qname,ip", [
    ("cart.shop.svc.local.", "10.96.50.10"),
    ("kubernetes.default.svc.local.", "10.96.0.1"),
    ("kube-dns.kube-system.svc.local.", "10.96.0.10"),
    ("10-244-6-1.cart.shop.svc.local.", "10.244.6.1"),
])
def test_kubectl_list(list_server, qname, ip):
    assert_answer(list_server.query(qname, "A"), "A", [ip])


def test_kubectl_list_srv_and_namespaces(list_server):
    r = list_server.query("_dns-tcp._tcp.kube-dns.kube-system.svc.local.", "SRV")
    assert_answer(r, "SRV", ["0 100 53 kube-dns.kube-system.svc.local."])
    assert_negative(list_server.query("staging.svc.local.", "A"), "NOERROR")
    assert_negative(list_server.query("10-244-6-2.cart.shop.svc.local.", "A"), "NXDOMAIN")
