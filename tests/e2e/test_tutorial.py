"""The tutorial manifests in this repository's examples/ folder (the Services chapter of a
Kubernetes tutorial, as its reader applies them; examples/README.md says what each file holds
and what the reader expects): what the reader expects from inside the cluster, with
forwarding off."""

import ipaddress
import re

import dns.rcode
import dns.reversename
import pytest

import svcdns_e2e as e2e
from svcdns_e2e import assert_answer, assert_negative, records

EXAMPLES = e2e.SOURCE / "examples"
ECHO = "echo.default.svc.local."
DEFAULT_CIDR = ipaddress.ip_network("10.96.0.0/12")


def tutorial_server(manifests=(EXAMPLES,)):
    # no --service-cidr: the default 10.96.0.0/12 assigns echo's address
    return e2e.Server(manifests, service_cidrs=None)


def echo_address(srv):
    r = srv.query(ECHO, "A")
    recs = records(r.answer, "A")
    assert r.rcode() == dns.rcode.NOERROR and len(recs) == 1, r
    return recs[0][2].address


@pytest.fixture(scope="module")
def tutorial():
    with tutorial_server() as srv:
        yield srv


def test_echo_has_one_address_in_service_cidr(tutorial):
    r = tutorial.query(ECHO, "A")
    recs = assert_answer(r, "A", [echo_address(tutorial)], name=ECHO, ttl=5)
    assert len(recs) == 1
    assert ipaddress.ip_address(recs[0][2].address) in DEFAULT_CIDR


def test_echo_address_is_stable_across_restarts(tutorial):
    first = echo_address(tutorial)
    with tutorial_server() as again:
        assert echo_address(again) == first


def test_echo_address_depends_only_on_the_service(tutorial):
    # the same Service alone (no other file loaded) gets the same address
    with tutorial_server([EXAMPLES / "simple-service.yaml"]) as alone:
        assert echo_address(alone) == echo_address(tutorial)


def test_gihyo_is_a_cname_only(tutorial):
    qname = "gihyo.default.svc.local."
    r = tutorial.query(qname, "A")
    assert_answer(r, "CNAME", ["gihyo.jp."], name=qname, ttl=5)
    assert len(r.answer) == 1


def test_echo_aaaa_is_nodata(tutorial):
    assert_negative(tutorial.query(ECHO, "AAAA"), "NOERROR")


def test_nope_is_nxdomain(tutorial):
    assert_negative(tutorial.query("nope.default.svc.local.", "A"), "NXDOMAIN")


def test_echo_srv_and_ptr(tutorial):
    addr = echo_address(tutorial)
    r = tutorial.query("_http._tcp.echo.default.svc.local.", "SRV")
    assert_answer(r, "SRV", ["0 100 80 echo.default.svc.local."])
    glue = [(o, rd.address) for o, _, rd in records(r.additional, "A")]
    assert glue == [(ECHO, addr)], r
    ptr = dns.reversename.from_address(addr).to_text()
    assert_answer(tutorial.query(ptr, "PTR"), "PTR", [ECHO])


def test_replicasets_are_not_names(tutorial):
    for name in ("echo-spring.default.svc.local.", "echo-summer.default.svc.local."):
        assert_negative(tutorial.query(name, "A"), "NXDOMAIN")


def test_duplicate_across_files_is_a_warning(tutorial):
    # simple-node-port-service.yaml and simple-service.yaml both define Service default/echo:
    # the later one (sorted path order) replaces the earlier, with a warning naming both.
    pos = r"(?:^|[\s/'\"(])%s:\d+:\d+"
    later = re.compile(pos % re.escape("simple-service.yaml"))
    earlier = re.compile(pos % re.escape("simple-node-port-service.yaml"))
    lines = [ln for ln in tutorial.stderr().splitlines()
             if later.search(ln) and earlier.search(ln)]
    assert lines, f"no line names both definitions of echo:\n{tutorial.stderr()}"
    assert any("warning" in ln.lower() for ln in lines), lines
