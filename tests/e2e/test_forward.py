"""Forwarding and caching end to end: svcdns in front of a real NSD upstream, and in front of
fake_upstream.py, which misbehaves on command (the first label of the name).

What is checked: answers relayed with the client's ID and case, RA set and AA clear; NXDOMAIN
and NODATA with the upstream's SOA; a large answer truncated over UDP and whole over TCP; an
ExternalName followed upstream; SERVFAIL with an Extended DNS Error inside 2.5 s for every
upstream fault, or the second upstream's answer; TC retried over TCP; FORMERR to EDNS retried
without; no spoofed reply accepted; source ports and IDs random; the cache (one upstream query
per name, TTL countdown, the entry bound, serve-stale); --max-concurrent; the loop check."""

import os
import re
import socket
import struct
import threading
import time
import urllib.error
import urllib.request

import dns.edns
import dns.flags
import dns.message
import dns.query
import dns.rcode
import dns.rdatatype
import pytest

import svcdns_e2e as e2e
from fake_upstream import FakeUpstream
from svcdns_e2e import WWW_A, WWW_AAAA

EDE_STALE, EDE_NO_REACHABLE, EDE_NETWORK = 3, 22, 23


# ----------------------------------------------------------------------------------------
# Upstreams


@pytest.fixture(scope="module")
def nsd():
    with e2e.Nsd() as n:
        yield n


@pytest.fixture
def fake():
    up = FakeUpstream().start()
    yield up
    up.stop()


EXT_MANIFEST = """apiVersion: v1
kind: Service
metadata:
  name: ext
  namespace: default
spec:
  type: ExternalName
  externalName: www.example.test
"""


@pytest.fixture(scope="module")
def ext_manifest(tmp_path_factory):
    p = tmp_path_factory.mktemp("ext") / "ext.yaml"
    p.write_text(EXT_MANIFEST)
    return p


def forwarder(upstreams, *extra, manifests=(), workers=1, port=None, nofile=None, env=None):
    """A svcdns that forwards to these upstreams (ADDR:PORT strings)."""
    return e2e.Server([e2e.CLUSTER_DATA, *manifests], upstreams=upstreams, workers=workers,
                      extra_args=extra, port=port, label="forward", nofile=nofile, env=env)


@pytest.fixture(scope="module")
def via_nsd(nsd, ext_manifest):
    srv = forwarder([nsd.addr], manifests=[ext_manifest]).start()
    yield srv
    srv.stop()


# ----------------------------------------------------------------------------------------
# Helpers


def ede_codes(resp):
    return [o.code for o in resp.options if isinstance(o, dns.edns.EDEOption)]


def texts(resp, rdtype):
    return e2e.rr_texts(resp.answer, rdtype)


def query(port, name, rdtype="A", tcp=False, timeout=4.0, use_edns=0, want_dnssec=False,
          qid=None):
    msg = dns.message.make_query(name, rdtype, use_edns=use_edns, want_dnssec=want_dnssec)
    if qid is not None:
        msg.id = qid
    start = time.monotonic()
    if tcp:
        resp = dns.query.tcp(msg, "127.0.0.1", port=port, timeout=timeout)
    else:
        resp = dns.query.udp(msg, "127.0.0.1", port=port, timeout=timeout, ignore_trailing=True)
    return resp, time.monotonic() - start


def parallel(fn, items):
    """Runs fn(item) for every item at once; returns the results in order."""
    out = [None] * len(items)
    errors = []

    def run(i, item):
        try:
            out[i] = fn(item)
        except Exception as e:  # noqa: BLE001
            errors.append((item, e))
    threads = [threading.Thread(target=run, args=(i, it)) for i, it in enumerate(items)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors, errors
    return out


def burst(port, names, rdtype="A", timeout=5.0):
    """Sends one UDP query per name from one socket, all at once; returns {name: reply}."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        ids = {}
        for i, name in enumerate(names):
            m = dns.message.make_query(name, rdtype, use_edns=0)
            m.id = i + 1
            ids[m.id] = name
            s.sendto(m.to_wire(), ("127.0.0.1", port))
        out = {}
        deadline = time.monotonic() + timeout
        while len(out) < len(names) and time.monotonic() < deadline:
            try:
                data = s.recv(65535)
            except socket.timeout:
                break
            r = dns.message.from_wire(data)
            out[ids[r.id]] = r
        return out


# ----------------------------------------------------------------------------------------
# A real upstream: NSD


@pytest.mark.parametrize("rdtype,want", [
    ("A", [WWW_A]),
    ("AAAA", [WWW_AAAA]),
    ("MX", ["10 mail.example.test."]),
    ("TXT", ['"hello from nsd"']),
])
def test_forwards_record_types(via_nsd, rdtype, want):
    resp, _ = query(via_nsd.port, "WwW.Example.TEST.", rdtype, use_edns=0, qid=0x4242)
    assert resp.rcode() == dns.rcode.NOERROR, resp
    assert resp.id == 0x4242
    assert resp.flags & dns.flags.RA and not resp.flags & dns.flags.AA, resp
    assert resp.question[0].name.to_text() == "WwW.Example.TEST."
    assert texts(resp, rdtype) == want, resp
    assert resp.edns == 0 and resp.payload == 1232


def test_no_opt_for_a_client_without_edns(via_nsd):
    resp, _ = query(via_nsd.port, "www.example.test.", "A", use_edns=False)
    assert resp.edns < 0, resp
    assert texts(resp, "A") == [WWW_A]


def test_follows_upstream_cname(via_nsd):
    resp, _ = query(via_nsd.port, "alias.example.test.", "A")
    assert [rr.rdtype for rr in resp.answer] == [dns.rdatatype.CNAME, dns.rdatatype.A], resp
    assert texts(resp, "A") == [WWW_A]


def test_nxdomain_relayed_with_upstream_soa(via_nsd):
    resp, _ = query(via_nsd.port, "nosuch.example.test.", "A")
    assert resp.rcode() == dns.rcode.NXDOMAIN, resp
    assert not resp.answer
    soa = e2e.records(resp.authority, "SOA")
    assert len(soa) == 1 and soa[0][0] == "example.test.", resp
    assert soa[0][1] <= 60  # min(SOA TTL 3600, MINIMUM 60), RFC 2308
    assert not resp.flags & dns.flags.AA


def test_nodata_relayed_with_upstream_soa(via_nsd):
    resp, _ = query(via_nsd.port, "mail.example.test.", "TXT")
    assert resp.rcode() == dns.rcode.NOERROR and not resp.answer, resp
    soa = e2e.records(resp.authority, "SOA")
    assert len(soa) == 1 and soa[0][0] == "example.test.", resp


def test_large_answer_truncated_over_udp_whole_over_tcp(via_nsd):
    resp, _ = query(via_nsd.port, "big.example.test.", "A", use_edns=0)
    assert resp.flags & dns.flags.TC, f"{e2e.BIG_COUNT} A records cannot fit 1232 octets of UDP"
    assert not resp.answer
    resp, _ = query(via_nsd.port, "big.example.test.", "A", tcp=True)
    assert not resp.flags & dns.flags.TC
    assert len(texts(resp, "A")) == e2e.BIG_COUNT, resp


def test_external_name_followed_upstream(via_nsd):
    resp, _ = query(via_nsd.port, "ext.default.svc.local.", "A")
    assert resp.rcode() == dns.rcode.NOERROR, resp
    cname = e2e.records(resp.answer, "CNAME")
    assert cname and cname[0][2].target.to_text() == "www.example.test.", resp
    assert resp.answer[0].rdtype == dns.rdatatype.CNAME, "the CNAME comes first"
    assert texts(resp, "A") == [WWW_A], resp


def test_cluster_names_do_not_reach_upstream(via_nsd):
    resp, _ = query(via_nsd.port, "nosuch.default.svc.local.", "A")
    assert resp.rcode() == dns.rcode.NXDOMAIN and resp.flags & dns.flags.AA, resp


# ----------------------------------------------------------------------------------------
# An upstream cannot speak for the cluster zone

ECHO_A = "10.96.100.10"  # echo.default.svc.local in data/cluster/default.yaml
INJECT_MANIFEST = """apiVersion: v1
kind: Service
metadata:
  name: evil
  namespace: default
spec:
  type: ExternalName
  externalName: inject-ext.example.test
"""


@pytest.fixture
def via_injector(fake, tmp_path):
    p = tmp_path / "evil.yaml"
    p.write_text(INJECT_MANIFEST)
    with forwarder([fake.addr], manifests=[p]) as srv:
        yield srv


def assert_chain_into_echo(resp, first):
    """first CNAME echo.default.svc.local, then echo's own address: never the upstream's."""
    assert resp.rcode() == dns.rcode.NOERROR, resp
    assert e2e.rr_texts(resp.answer + resp.additional, "A") == [ECHO_A], resp
    owners = [(rr.name.to_text().lower(), dns.rdatatype.to_text(rr.rdtype)) for rr in resp.answer]
    assert owners[:len(first)] == first, resp
    assert owners[len(first):] == [("echo.default.svc.local.", "A")], resp
    assert not resp.flags & dns.flags.AA, resp


@pytest.mark.parametrize("fault", ["inject", "injectnx"])
def test_upstream_records_for_a_cluster_name_are_replaced_by_the_clusters(via_injector, fault):
    name = f"{fault}-direct.example.test."
    resp, _ = query(via_injector.port, name)
    assert_chain_into_echo(resp, [(name, "CNAME")])
    # And for a type the cluster name does not have: NODATA from the cluster zone, not the
    # upstream's AAAA.
    resp, _ = query(via_injector.port, name, "AAAA")
    assert resp.rcode() == dns.rcode.NOERROR, resp
    assert not e2e.rr_texts(resp.answer, "AAAA"), resp
    assert e2e.records(resp.authority, "SOA")[0][0] == "local.", resp


def test_an_external_name_whose_target_cnames_back_into_the_cluster(via_injector):
    resp, _ = query(via_injector.port, "evil.default.svc.local.")
    assert_chain_into_echo(resp, [("evil.default.svc.local.", "CNAME"),
                                  ("inject-ext.example.test.", "CNAME")])


def test_a_chain_into_the_cluster_is_never_cached_with_the_upstreams_data(via_injector, fake):
    for tcp in (False, True, False):
        resp, _ = query(via_injector.port, "inject-cached.example.test.", tcp=tcp)
        assert_chain_into_echo(resp, [("inject-cached.example.test.", "CNAME")])
    # Each query was answered from the cluster's data, none from a cache entry of the
    # upstream's reply.
    assert len(fake.queries("inject-cached")) == 3


# ----------------------------------------------------------------------------------------
# Upstream faults, one upstream


FAULTS = ["silent", "garbage", "short", "wrongid", "wrongq", "servfail", "refused", "slow",
          "spoofnever"]


def test_every_fault_gives_servfail_with_ede_in_time(fake):
    with forwarder([fake.addr]) as srv:
        names = [f"{f}-1.example.test." for f in FAULTS]
        results = parallel(lambda n: query(srv.port, n, timeout=6), names)
        for name, (resp, took) in zip(names, results):
            assert resp.rcode() == dns.rcode.SERVFAIL, f"{name}: {resp}"
            codes = ede_codes(resp)
            assert codes and codes[0] in (EDE_NO_REACHABLE, EDE_NETWORK), f"{name}: {resp}"
            assert took < 2.5, f"{name}: SERVFAIL after {took:.2f} s"
        by_name = dict(zip(names, results))
        assert ede_codes(by_name["silent-1.example.test."][0]) == [EDE_NO_REACHABLE]
        assert ede_codes(by_name["servfail-1.example.test."][0]) == [EDE_NETWORK]
        # Refused and SERVFAIL answers fail over at once; silence waits for the deadline.
        assert by_name["servfail-1.example.test."][1] < 1.0


def test_silent_upstream_servfail_latency(fake):
    with forwarder([fake.addr]) as srv:
        resp, took = query(srv.port, "silent-a.example.test.", timeout=6)
        # Two 1 s tries (a new port and ID each) fill the 2 s request deadline.
        assert resp.rcode() == dns.rcode.SERVFAIL
        assert 1.8 <= took < 2.5, took
        assert len(fake.queries("silent-a")) == 2


@pytest.mark.parametrize("fault", FAULTS)
def test_second_upstream_answers_when_first_fails(fault):
    bad = FakeUpstream().start()
    good = FakeUpstream(honor_labels=False).start()
    try:
        with forwarder([bad.addr, good.addr]) as srv:
            resp, took = query(srv.port, f"{fault}-2.example.test.", timeout=6)
            assert resp.rcode() == dns.rcode.NOERROR, resp
            assert texts(resp, "A") == ["192.0.2.1"], resp
            assert took < 2.5
            assert good.queries(f"{fault}-2"), "the second upstream was never asked"
    finally:
        bad.stop()
        good.stop()


def test_tc_is_retried_over_tcp(fake):
    with forwarder([fake.addr]) as srv:
        resp, _ = query(srv.port, "tc-1.example.test.", tcp=True)
        assert len(texts(resp, "A")) == 50, resp
        assert [q["proto"] for q in fake.queries("tc-1")] == ["udp", "tcp"]


def test_formerr_to_edns_is_retried_without_edns(fake):
    with forwarder([fake.addr]) as srv:
        resp, _ = query(srv.port, "formerr-edns-1.example.test.", use_edns=0)
        assert resp.rcode() == dns.rcode.NOERROR and texts(resp, "A") == ["192.0.2.1"], resp
        assert resp.edns == 0, "the client still gets its OPT"
        assert [q["edns"] for q in fake.queries("formerr-edns-1")] == [True, False]
        # Remembered: the next query goes without OPT straight away.
        query(srv.port, "formerr-edns-2.example.test.")
        assert [q["edns"] for q in fake.queries("formerr-edns-2")] == [False]


def test_upstream_query_carries_our_edns(fake):
    with forwarder([fake.addr]) as srv:
        query(srv.port, "edns-a.example.test.", use_edns=False)
        query(srv.port, "edns-b.example.test.", use_edns=0, want_dnssec=True)
        a, = fake.queries("edns-a")
        b, = fake.queries("edns-b")
        assert a["edns"] and a["payload"] == 1232 and not a["do"]
        assert b["edns"] and b["do"]
        assert a["name"] == "edns-a.example.test."


def test_no_spoofed_reply_accepted(fake):
    with forwarder([fake.addr]) as srv:
        resp, took = query(srv.port, "spoof-1.example.test.", timeout=6)
        assert resp.rcode() == dns.rcode.NOERROR, resp
        assert texts(resp, "A") == ["192.0.2.1"], f"a spoofed reply got through: {resp}"
        assert "6.6.6.6" not in resp.to_text()
        # Nothing of the spoofs was cached either.
        resp, _ = query(srv.port, "spoof-1.example.test.")
        assert texts(resp, "A") == ["192.0.2.1"]


def test_source_ports_and_ids_are_random(fake):
    with forwarder([fake.addr]) as srv:
        names = [f"delay-{i}.example.test." for i in range(200)]
        replies = burst(srv.port, names, timeout=8)
        assert len(replies) == 200
        log = fake.queries("delay-")
        assert len(log) == 200
        ports = {q["src_port"] for q in log}
        ids = {q["id"] for q in log}
        assert len(ports) >= 199, f"{len(ports)} distinct source ports in 200 queries"
        assert len(ids) >= 199, f"{len(ids)} distinct IDs in 200 queries"
        # Not a counter: consecutive queries' ports and IDs are not neighbours.
        seq = [q["src_port"] for q in sorted(log, key=lambda q: q["t"])]
        steps = sum(1 for a, b in zip(seq, seq[1:]) if abs(a - b) <= 2)
        assert steps < 20, f"{steps} of 199 consecutive ports are neighbours"


def test_max_concurrent_gives_refused(fake):
    with forwarder([fake.addr], "--max-concurrent", "5") as srv:
        names = [f"silent-{i}.example.test." for i in range(10)]
        replies = burst(srv.port, names, timeout=5)
        rcodes = sorted(dns.rcode.to_text(r.rcode()) for r in replies.values())
        assert len(replies) == 10
        assert rcodes.count("REFUSED") == 5, rcodes
        assert rcodes.count("SERVFAIL") == 5, rcodes


# ----------------------------------------------------------------------------------------
# The cache


@pytest.mark.parametrize("workers", [1, 2])
def test_repeated_name_costs_one_upstream_query(fake, workers):
    with forwarder([fake.addr], workers=workers) as srv:
        for _ in range(6):
            # New sockets: with two workers, SO_REUSEPORT spreads them over both.
            resp, _ = query(srv.port, "cached.example.test.")
            assert texts(resp, "A") == ["192.0.2.1"]
        assert len(fake.queries("cached")) == 1


def test_ttl_counts_down(fake):
    with forwarder([fake.addr]) as srv:
        first, _ = query(srv.port, "ttl100-count.example.test.")
        assert first.answer[0].ttl == 100
        time.sleep(2.2)
        later, _ = query(srv.port, "ttl100-count.example.test.")
        assert 96 <= later.answer[0].ttl <= 98, later
        assert len(fake.queries("ttl100-count")) == 1


def test_negative_answer_cached(fake):
    with forwarder([fake.addr]) as srv:
        for _ in range(3):
            resp, _ = query(srv.port, "nxdomain-1.example.test.")
            assert resp.rcode() == dns.rcode.NXDOMAIN
            assert e2e.records(resp.authority, "SOA")[0][1] <= 60
        assert len(fake.queries("nxdomain-1")) == 1


def test_eviction_keeps_the_entry_bound(fake):
    with forwarder([fake.addr], "--cache-size", "3", "--log-level", "debug") as srv:
        names = [f"evict-{i}.example.test." for i in range(10)]
        for _ in range(2):
            for n in names:
                resp, _ = query(srv.port, n)
                assert texts(resp, "A") == ["192.0.2.1"]
        # At most 3 of the 10 survive the first round, so at least 7 are asked again.
        assert len(fake.queries("evict-")) >= 17
        entries = [int(m) for m in re.findall(r"module=cache insert .*entries=(\d+)",
                                              srv.stderr())]
        assert entries and max(entries) <= 3, entries


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


def metric_value(http_port, name):
    with urllib.request.urlopen(f"http://127.0.0.1:{http_port}/metrics", timeout=3) as r:
        for line in r.read().decode().splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
    raise AssertionError(f"no {name} in /metrics")


def test_cache_memory_bounds_what_large_answers_take(fake, tmp_path):
    # Anyone who controls a domain can make its answers large: 1,500 names of 11 KB each,
    # truncated over UDP and fetched over TCP, would hold 17 MB if the cache kept them all.
    # cache-memory (here from the config file) bounds what they take.
    config = tmp_path / "svcdns.yaml"
    config.write_text("cache-memory: 1M\n")
    http_port = e2e.free_port()
    # In the ASan build, freed memory would wait in ASan's quarantine (256 MB) instead of
    # being reused, and RSS would measure that; without it, RSS measures svcdns.
    asan = {"ASAN_OPTIONS": os.environ.get("ASAN_OPTIONS", "") + ":quarantine_size_mb=0"}
    with forwarder([fake.addr], "--config", config, "--http", f"127.0.0.1:{http_port}",
                   env=asan) as srv:
        def ask(name):
            # Only the header is read: dnspython would take longer to parse 700 records than
            # svcdns and the fake upstream take to make them.
            reply = e2e.raw_tcp(srv.port, e2e.build_query(name), timeout=10)
            assert reply and struct.unpack("!H", reply[6:8])[0] == 700, name
        for i in range(40):  # warm up: request slots, buffers, the heap's first pages
            ask(f"bigtc-w{i:04d}.example.test.")
        before = rss_kib(srv.proc.pid)
        names = [f"bigtc-{i:04d}.example.test." for i in range(1500)]
        parallel(lambda chunk: [ask(n) for n in chunk], [names[k::4] for k in range(4)])
        grown = rss_kib(srv.proc.pid) - before
        held = metric_value(http_port, "svcdns_cache_bytes")
        assert 0 < held <= 1 << 20, held
        assert metric_value(http_port, "svcdns_cache_evictions_total") > 1000
        assert grown < 6 * 1024, f"RSS grew by {grown} KiB for a 1 MiB cache"
        # The most recent answers are still there: no upstream query for them.
        asked = len(fake.queries("bigtc-1499"))
        ask("bigtc-1499.example.test.")
        assert len(fake.queries("bigtc-1499")) == asked


def test_an_answer_too_large_for_an_entry_is_cached_as_what_udp_gets(fake):
    http_port = e2e.free_port()
    with forwarder([fake.addr], "--http", f"127.0.0.1:{http_port}") as srv:
        for _ in range(3):
            resp, _ = query(srv.port, "hugetc-1.example.test.")
            assert resp.flags & dns.flags.TC and not resp.answer, resp
        # One fetch over TCP for the three: the first one's, then the truncation is cached.
        assert len(fake.queries("hugetc-1", proto="tcp")) == 1
        assert metric_value(http_port, "svcdns_cache_oversized_total") == 1
        assert metric_value(http_port, "svcdns_cache_bytes") < 4096
        # A TCP client wants the whole answer: it is fetched again, not kept.
        for _ in range(2):
            resp, _ = query(srv.port, "hugetc-1.example.test.", tcp=True)
            assert len(texts(resp, "A")) == 1500, resp
        assert len(fake.queries("hugetc-1", proto="tcp")) == 3


@pytest.mark.parametrize("value", ["10X", "1K", "100G", "-1M", ""])
def test_bad_cache_memory_is_a_clear_error(value):
    p = e2e.run_cli(["--manifests", str(e2e.CLUSTER_DATA), "--check", "--cache-memory", value])
    assert p.returncode == 1, f"exit {p.returncode}\n{p.stderr}"
    assert "--cache-memory" in p.stderr and "64M" in p.stderr, p.stderr


def test_serve_stale_when_upstream_dies():
    up = FakeUpstream().start()
    try:
        with forwarder([up.addr], "--serve-stale", "1h") as srv:
            resp, _ = query(srv.port, "ttl2-stale.example.test.")
            assert texts(resp, "A") == ["192.0.2.1"]
            up.stop()
            time.sleep(3)
            resp, took = query(srv.port, "ttl2-stale.example.test.", timeout=6)
            assert resp.rcode() == dns.rcode.NOERROR, resp
            assert texts(resp, "A") == ["192.0.2.1"]
            assert resp.answer[0].ttl == 30
            assert ede_codes(resp) == [EDE_STALE], resp
            assert took < 2.5
            # A name never seen gets SERVFAIL.
            resp, _ = query(srv.port, "never-seen.example.test.", timeout=6)
            assert resp.rcode() == dns.rcode.SERVFAIL
    finally:
        up.stop()


# ----------------------------------------------------------------------------------------
# Loops


class LoopForwarder:
    """A forwarder that sends every query to svcdns, as a node's stub resolver would when
    svcdns's resolv.conf points at it. Counts what it relays."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.target = None
        self.relayed = 0
        self.lock = threading.Lock()
        self.stopped = False
        self.thread = threading.Thread(target=self.run, daemon=True)

    def start(self, target_port):
        self.target = target_port
        self.thread.start()
        return self

    def relay(self, data, src):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.settimeout(3)
            s.sendto(data, ("127.0.0.1", self.target))
            try:
                reply = s.recv(65535)
            except OSError:
                return
        try:
            self.sock.sendto(reply, src)
        except OSError:
            pass

    def run(self):
        self.sock.settimeout(0.2)
        while not self.stopped:
            try:
                data, src = self.sock.recvfrom(65535)
            except socket.timeout:
                continue
            except OSError:
                return
            with self.lock:
                self.relayed += 1
            threading.Thread(target=self.relay, args=(data, src), daemon=True).start()

    def stop(self):
        self.stopped = True
        self.thread.join(2)
        self.sock.close()


def test_loop_through_another_forwarder_is_detected():
    port = e2e.free_port()
    loop = LoopForwarder().start(port)
    srv = forwarder([f"127.0.0.1:{loop.port}"], port=port)
    try:
        srv.start()
        assert srv.wait_for_log("forwarding loop", 5), srv.stderr()
        line = next(l for l in srv.stderr().splitlines() if "forwarding loop" in l)
        assert f"127.0.0.1:{loop.port}" in line
        assert "resolvConf" in line and "--upstream" in line
        # The looping upstream is no longer used: an outside name fails fast, and nothing
        # keeps bouncing between the two servers.
        resp, took = query(port, "anything.example.test.", timeout=4)
        assert resp.rcode() == dns.rcode.SERVFAIL and took < 0.5, resp
        before = loop.relayed
        time.sleep(1.5)
        assert loop.relayed == before, "queries keep looping"
        assert before <= 10, f"{before} queries relayed: traffic amplification"
    finally:
        srv.stop()
        loop.stop()


def http_status(port, path):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=3) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


def test_the_loop_check_name_sent_by_a_client_turns_nothing_off(fake):
    # Anyone who sees one upstream query knows the probe name; sending it back to svcdns once
    # the check is over must not mark the upstream looping (forwarding off, /ready 503).
    http_port = e2e.free_port()
    with forwarder([fake.addr], "--http", f"127.0.0.1:{http_port}") as srv:
        assert e2e.wait_until(lambda: fake.queries(proto="udp") and any(
            "svcdns-loop-check" in q["name"] for q in fake.queries()), 5), fake.queries()
        probe = next(q["name"] for q in fake.queries() if "svcdns-loop-check" in q["name"])
        time.sleep(0.5)  # the fake's answer ended the check
        for qid in range(1, 7):
            resp, _ = query(srv.port, probe, "HINFO", qid=qid)
            assert resp.rcode() == dns.rcode.NXDOMAIN, resp
        assert "forwarding loop" not in srv.stderr(), srv.stderr()
        resp, _ = query(srv.port, "after-probe.example.test.")
        assert texts(resp, "A") == ["192.0.2.1"], resp
        assert http_status(http_port, "/ready") == 200
        # Never forwarded: the names under svcdns-loop-check. are svcdns's own.
        assert len([q for q in fake.queries() if q["name"] == probe]) == 1


def test_own_address_as_upstream_is_refused():
    port = e2e.free_port()
    with forwarder([f"127.0.0.1:{port}"], port=port) as srv:
        assert e2e.wait_until(lambda: "own listen address" in srv.stderr()
                              or "forwarding loop" in srv.stderr(), 5, interval=0.05), \
            srv.stderr()
        resp, took = query(port, "anything.example.test.", timeout=4)
        assert resp.rcode() in (dns.rcode.SERVFAIL, dns.rcode.REFUSED) and took < 0.5, resp


# ----------------------------------------------------------------------------------------
# The open file limit (issue 11, item 2)


def log_fields(srv, marker):
    """The key=value fields of the first log line holding marker."""
    line = next(l for l in srv.stderr().splitlines() if marker in l)
    return dict(re.findall(r"(\w+)=(\S+)", line))


def test_forwarding_survives_idle_tcp_clients_under_a_low_open_file_limit(fake):
    """ulimit -n 300 and 290 idle TCP clients: every forwarded query used to get SERVFAIL
    ("too many open files": accept had taken every descriptor, so no upstream socket could
    be opened). svcdns now caps TCP clients from the limit, keeping descriptors for the
    upstreams, and logs the figures."""
    e2e.raise_open_files(1024)
    with forwarder([f"127.0.0.1:{fake.port}"], workers=2, nofile=(300, 300)) as srv:
        idle = []
        try:
            for _ in range(290):
                idle.append(socket.create_connection(("127.0.0.1", srv.port), timeout=5))
            time.sleep(0.3)
            names = [f"fd{i}.example.test." for i in range(40)]
            replies = burst(srv.port, names)
            rcodes = {n: dns.rcode.to_text(replies[n].rcode()) if n in replies else "no reply"
                      for n in names}
            assert set(rcodes.values()) == {"NOERROR"}, rcodes
            for tcp in (False, True):
                resp, _ = query(srv.port, "tcp-fd.example.test.", tcp=tcp)
                assert resp.rcode() == dns.rcode.NOERROR, resp
                assert texts(resp, "A") == ["192.0.2.1"], resp
            assert srv.open_fds() < 300, f"{srv.open_fds()} descriptors open"
        finally:
            for s in idle:
                s.close()
        f = log_fields(srv, " reserved=")
        assert f["open_files"] == "300" and "raised_from" not in f, f
        assert 8 <= int(f["tcp_clients_per_worker"]) < 150, f
        assert int(f["upstream_sockets"]) >= 100, f
        assert "the open file limit allows no more" in srv.stderr()


def test_the_soft_open_file_limit_is_raised_to_the_hard_one(fake):
    with forwarder([f"127.0.0.1:{fake.port}"], nofile=(300, 4096)) as srv:
        f = log_fields(srv, " reserved=")
        assert f["open_files"] == "4096" and f["raised_from"] == "300", f
        assert f["tcp_clients_per_worker"] == "1024", f
        assert srv.query("www.example.test.", "A").rcode() == dns.rcode.NOERROR


def test_an_open_file_limit_too_low_to_serve_is_refused_at_start(fake):
    srv = forwarder([f"127.0.0.1:{fake.port}"], workers=2, nofile=(40, 40))
    with pytest.raises(e2e.ServerError):
        srv.start()
    assert srv.returncode == 1, srv.returncode
    err = srv.stderr()
    assert "open file limit is 40" in err and "needs at least" in err, err
