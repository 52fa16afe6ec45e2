"""Negative answers (DESIGN.md section 3; README, What it answers; RFC 2308, RFC 8020):
NXDOMAIN for names that do not exist, NODATA for names that exist without the asked type; both
AA with exactly the apex SOA in AUTHORITY. REFUSED outside the served zones (forwarding off)."""

import dns.flags
import dns.rcode
import pytest

from svcdns_e2e import assert_negative, records

# The spec conformance runs on the files and again on the same objects from an API server.
SERVER_SOURCES = ("manifests", "api")

TTL = 5

NXDOMAIN_NAMES = [
    "nope.default.svc.local.",
    "nosuch.svc.local.",               # unknown namespace
    "echo.nosuch.svc.local.",          # ... and anything below it
    "a.b.nosuch.svc.local.",
    "_http._tcp.echo.nosuch.svc.local.",
    "foo.local.",                      # under the zone, neither svc nor pod
    "a.b.c.local.",
    "x.svc.x.local.",
    "x.echo.default.svc.local.",       # below a ClusterIP service, not an endpoint
    "a.b.c.echo.default.svc.local.",
    "x.web-0.headless.default.svc.local.",
    "x.gihyo.default.svc.local.",      # below an ExternalName
    "nope.empty.svc.local.",
    "nosuch.pod.local.",
    "x.dns-version.local.",
]

NODATA = [
    # (name, type): the name exists, the type does not
    ("echo.default.svc.local.", "AAAA"),
    ("echo.default.svc.local.", "TXT"),
    ("echo.default.svc.local.", "MX"),
    ("echo.default.svc.local.", "CNAME"),
    ("echo.default.svc.local.", "PTR"),
    ("echo.default.svc.local.", "SOA"),
    ("echo.default.svc.local.", "TYPE666"),
    ("headless.default.svc.local.", "TXT"),
    ("web-0.headless.default.svc.local.", "AAAA"),
    ("fd00--7.headless.default.svc.local.", "A"),
    ("_http._tcp.echo.default.svc.local.", "A"),
    ("dns-version.local.", "A"),
    ("local.", "A"),
    ("local.", "TXT"),
    ("svc.local.", "A"),               # empty non-terminals
    ("svc.local.", "SRV"),
    ("default.svc.local.", "A"),
    ("empty.svc.local.", "A"),         # Namespace object with no services
    ("web.svc.local.", "A"),           # namespace of Pods only
    ("infra.svc.local.", "A"),         # namespace of a JSON List
    ("bulk.svc.local.", "AAAA"),
    ("pod.local.", "A"),
    ("default.pod.local.", "A"),
    ("_tcp.echo.default.svc.local.", "SRV"),
]


@pytest.mark.parametrize("tcp", [False, True], ids=["udp", "tcp"])
@pytest.mark.parametrize("qname", NXDOMAIN_NAMES)
def test_nxdomain(server, qname, tcp):
    r = server.query(qname, "A", tcp=tcp)
    soa = assert_negative(r, "NXDOMAIN", soa_ttl=TTL)
    assert soa.mname.to_text() == "ns.dns.local."
    assert soa.rname.to_text() == "hostmaster.local."
    assert soa.minimum == TTL


@pytest.mark.parametrize("qname,rdtype", NODATA)
def test_nodata(server, qname, rdtype):
    r = server.query(qname, rdtype)
    soa = assert_negative(r, "NOERROR", soa_ttl=TTL)
    assert soa.mname.to_text() == "ns.dns.local."


def test_nodata_over_tcp(server):
    assert_negative(server.query("echo.default.svc.local.", "AAAA", tcp=True), "NOERROR")


def test_negative_soa_is_the_apex_soa(server):
    apex = records(server.query("local.", "SOA").answer)[0][2]
    for qname, rdtype in (("nope.default.svc.local.", "A"), ("echo.default.svc.local.", "TXT")):
        soa = assert_negative(server.query(qname, rdtype),
                              "NXDOMAIN" if qname.startswith("nope") else "NOERROR")
        assert soa.to_text() == apex.to_text()


def test_negative_echoes_question_case(server):
    qname = "NoPe.DeFault.SVC.local."
    r = server.query(qname, "A")
    assert_negative(r, "NXDOMAIN")
    assert r.question[0].name.to_text() == qname


def test_nxdomain_has_no_additional(server):
    r = server.query("nope.default.svc.local.", "A")
    assert not r.additional, r


@pytest.mark.parametrize("qname", ["example.com.", "gihyo.jp.", "com.", "localhost.",
                                   "local.example.", "svc.local.example."])
def test_out_of_zone_is_refused(server, qname):
    r = server.query(qname, "A")
    assert r.rcode() == dns.rcode.REFUSED, r
    assert not r.answer, r


def test_root_is_refused(server):
    r = server.query(".", "NS")
    assert r.rcode() == dns.rcode.REFUSED, r
    assert not r.answer, r


def test_reverse_negative_soa_owner(server):
    r = server.query("1.2.0.192.in-addr.arpa.", "PTR")
    assert_negative(r, "NXDOMAIN", zone="in-addr.arpa.")
    assert r.flags & dns.flags.AA
