"""The DNS protocol over UDP (and the parts of it shared with TCP): listeners, EDNS, truncation,
header flags and malformed queries (README, Protocol; RFC 1035 §4.1.1, RFC 6891), and real
clients (dig).

Raw packets are built by hand with struct and sent on a UDP socket; replies are parsed by hand
(svcdns_e2e.Reply) so that even a reply dnspython would reject can be checked."""

import socket
import struct
import time

import dns.edns
import dns.flags
import dns.message
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import pytest

import svcdns_e2e as e2e
from svcdns_e2e import (AA, CD, QR, RD, TC, Z, Reply, assert_answer, assert_negative,
                        build_query, edns_option, encode_name, header, opt_rr, question,
                        records)

ECHO = "echo.default.svc.local"
ECHO_IP = "10.96.100.10"
BIG = "big.bulk.svc.local."
MID = "mid.bulk.svc.local."
BIG_N, MID_N = 120, 60

FORMERR, NOTIMP, REFUSED, NOERROR, NXDOMAIN = 1, 4, 5, 0, 3
BADVERS = 16

needs_v6 = pytest.mark.skipif(not e2e.have_ipv6_loopback(), reason="::1 unavailable")


def a_addresses(reply):
    return sorted(rd.address for _, _, rd in records(reply.msg.answer, "A"))


def assert_normal_echo_answer(reply, qid=0x1234):
    assert reply.id == qid
    assert reply.qr and reply.opcode == 0
    assert reply.rcode == NOERROR, reply
    assert reply.aa, reply
    assert reply.msg is not None, reply
    assert a_addresses(reply) == [ECHO_IP], reply.msg


# --- listeners ----------------------------------------------------------------------------


@pytest.mark.parametrize("tcp", [False, True], ids=["udp", "tcp"])
def test_ipv4_listener(server, tcp):
    assert_answer(server.query(ECHO + ".", "A", tcp=tcp), "A", [ECHO_IP])


@needs_v6
@pytest.mark.parametrize("tcp", [False, True], ids=["udp", "tcp"])
def test_ipv6_listener(server, tcp):
    assert server.v6
    r = server.query(ECHO + ".", "A", tcp=tcp, host="::1")
    assert_answer(r, "A", [ECHO_IP])
    raw = server.raw_tcp(build_query(), host="::1") if tcp else \
        server.raw_udp(build_query(), host="::1")
    assert_normal_echo_answer(Reply(raw))


@pytest.mark.parametrize("tcp", [False, True], ids=["udp", "tcp"])
def test_wildcard_listener_replies_from_the_address_asked(cluster_manifests, tcp):
    """RFC 2181 section 4: on 0.0.0.0 and [::] the reply leaves from the address the query
    went to (IP_PKTINFO), not from the one the kernel would route from: asked at 127.0.0.2,
    a reply from 127.0.0.1 is dropped by the client (dnspython raises UnexpectedSource)."""
    port = e2e.free_port()
    listen = ["--listen", f"0.0.0.0:{port}"]
    if e2e.have_ipv6_loopback():
        listen += ["--listen", f"[::]:{port}"]
    with e2e.Server(cluster_manifests, with_listen=False, extra_args=listen, workers=2,
                    port=port) as srv:
        hosts = ["127.0.0.1", "127.0.0.2", "127.0.0.53"] + (["::1"] if e2e.have_ipv6_loopback() else [])
        for host in hosts:
            for _ in range(3):  # both workers
                r = srv.query(ECHO + ".", "A", tcp=tcp, host=host)
                assert_answer(r, "A", [ECHO_IP])


# --- EDNS -----------------------------------------------------------------------------------


def test_no_opt_without_edns(server):
    r = server.query(ECHO + ".", "A", use_edns=False)
    assert r.edns == -1, f"reply has an OPT though the query had none\n{r}"
    rep = Reply(server.raw_udp(build_query()))
    assert rep.arcount == 0, rep


@pytest.mark.parametrize("payload", [512, 1232, 4096, 65535, 100, 0])
def test_opt_payload_is_1232(server, payload):
    rep = Reply(server.raw_udp(build_query(opt=opt_rr(payload=payload))))
    assert_normal_echo_answer(rep)
    assert rep.msg.edns == 0, f"no OPT version 0 in the reply\n{rep.msg}"
    assert rep.msg.payload == 1232, rep.msg


def test_opt_over_tcp(server):
    r = server.query(ECHO + ".", "A", tcp=True, use_edns=0, payload=4096)
    assert r.edns == 0 and r.payload == 1232, r
    r = server.query(ECHO + ".", "A", tcp=True, use_edns=False)
    assert r.edns == -1, r


def test_edns_version_1_is_badvers(server):
    rep = Reply(server.raw_udp(build_query(opt=opt_rr(version=1,
                                                      options=edns_option(100, b"x")))))
    assert rep.qr and rep.id == 0x1234
    assert rep.hdr_rcode == 0, f"header rcode {rep.hdr_rcode}, expected 0 (BADVERS low bits)"
    assert rep.msg is not None, rep
    assert rep.msg.edns == 0, f"reply OPT must be version 0\n{rep.msg}"
    assert rep.msg.rcode() == BADVERS, rep.msg
    assert rep.ancount == 0, rep.msg
    assert not rep.msg.answer


def test_two_opt_records_is_formerr(server):
    data = header(ar=2) + question() + opt_rr() + opt_rr()
    rep = Reply(server.raw_udp(data))
    assert rep.qr and rep.id == 0x1234
    assert rep.hdr_rcode == FORMERR, rep
    assert rep.ancount == 0


def test_opt_owner_not_root_is_formerr(server):
    rep = Reply(server.raw_udp(build_query(opt=opt_rr(owner=encode_name("a")))))
    assert rep.hdr_rcode == FORMERR, rep
    assert rep.ancount == 0


def test_unknown_edns_option_not_echoed(server):
    rep = Reply(server.raw_udp(build_query(opt=opt_rr(options=edns_option(100, b"abcd")))))
    assert_normal_echo_answer(rep)
    assert rep.msg.edns == 0
    assert all(o.otype != 100 for o in rep.msg.options), rep.msg.options


def cookie_query(qid=0x5151):
    """What a client sends to learn a server's cookie (RFC 7873 §5.4): no question, an OPT
    with a client cookie only; built with dnspython, which sets QDCOUNT=0."""
    q = dns.message.Message(id=qid)
    q.flags = dns.flags.RD
    q.use_edns(0, dns.flags.DO, 1232,
               options=[dns.edns.GenericOption(dns.edns.COOKIE, bytes(range(1, 9)))])
    return q


@pytest.mark.parametrize("tcp", [False, True], ids=["udp", "tcp"])
def test_cookie_query_without_question_gets_formerr_with_opt(server, tcp):
    q = cookie_query()
    wire = q.to_wire()
    assert struct.unpack("!H", wire[4:6])[0] == 0, "the query must have QDCOUNT=0"
    raw = server.raw_tcp(wire) if tcp else server.raw_udp(wire)
    rep = Reply(raw)
    assert rep.qr and rep.id == q.id, rep
    assert rep.qdcount == 0 and rep.ancount == 0, rep
    assert rep.msg is not None, rep
    assert rep.msg.rcode() == dns.rcode.FORMERR, rep.msg
    assert rep.msg.edns == 0, f"a reply to an EDNS query carries OPT (RFC 6891)\n{rep.msg}"
    assert rep.msg.ednsflags & dns.flags.DO, rep.msg
    # We keep no cookies: none comes back (an echoed client cookie alone would be wrong).
    assert all(o.otype != dns.edns.COOKIE for o in rep.msg.options), rep.msg.options


@pytest.mark.parametrize("do", [True, False])
def test_do_bit_echoed(server, do):
    r = server.query(ECHO + ".", "A", use_edns=0, want_dnssec=do)
    assert r.edns == 0
    assert bool(r.ednsflags & dns.flags.DO) == do, r


def test_unknown_edns_flag_cleared(server):
    rep = Reply(server.raw_udp(build_query(opt=opt_rr(flags=0x0080))))
    assert_normal_echo_answer(rep)
    assert rep.msg.ednsflags & 0x7FFF == 0, hex(rep.msg.ednsflags)


# --- truncation -------------------------------------------------------------------------------


def test_truncated_without_edns(server):
    data = server.raw_udp(build_query(BIG))
    rep = Reply(data)
    assert rep.rcode == NOERROR, rep
    assert rep.tc, f"TC not set on an answer of {BIG_N} A records over UDP/512\n{rep}"
    assert rep.ancount == 0, f"truncated answer must have an empty answer section: {rep}"
    assert len(data) <= 512
    assert rep.arcount == 0, "no OPT without EDNS"


@pytest.mark.parametrize("payload", [4096, 1232, 65535])
def test_truncated_with_edns(server, payload):
    data = server.raw_udp(build_query(BIG, opt=opt_rr(payload=payload)))
    rep = Reply(data)
    assert rep.rcode == NOERROR, rep
    assert rep.tc, rep
    assert rep.ancount == 0, rep
    assert len(data) <= 1232, f"{len(data)} octets over UDP"
    assert rep.msg is not None and rep.msg.edns == 0, "the OPT stays on a truncated reply"


def test_big_answer_over_tcp(server):
    r = server.query(BIG, "A", tcp=True)
    assert not r.flags & dns.flags.TC
    want = [f"10.244.100.{i}" for i in range(1, BIG_N + 1)]
    assert_answer(r, "A", want)


def test_mid_answer_fits_1232(server):
    # 60 A records: ~1000 octets. Over 512 (TC without EDNS), under 1232 (whole with EDNS).
    rep = Reply(server.raw_udp(build_query(MID, opt=opt_rr(payload=1232))))
    assert not rep.tc, rep
    assert rep.ancount == MID_N, rep
    assert a_addresses(rep) == sorted(f"10.244.101.{i}" for i in range(1, MID_N + 1))
    for payload in (None, 512, 100):
        opt = None if payload is None else opt_rr(payload=payload)
        data = server.raw_udp(build_query(MID, opt=opt))
        rep = Reply(data)
        assert rep.tc and rep.ancount == 0, f"payload {payload}: {rep}"
        assert len(data) <= 512


def test_dnspython_falls_back_to_tcp(server):
    # a client's normal path: TC over UDP, then the whole answer over TCP
    q = dns.message.make_query(BIG, "A")
    r, used_tcp = dns.query.udp_with_fallback(q, "127.0.0.1", port=server.port, timeout=2)
    assert used_tcp
    assert len(records(r.answer, "A")) == BIG_N


# --- header and flags ------------------------------------------------------------------------


@pytest.mark.parametrize("qid", [0, 1, 0xBEEF, 0xFFFF])
def test_id_copied(server, qid):
    assert_normal_echo_answer(Reply(server.raw_udp(build_query(qid=qid))), qid=qid)


@pytest.mark.parametrize("rd", [True, False])
def test_rd_copied(server, rd):
    rep = Reply(server.raw_udp(build_query(flags=RD if rd else 0)))
    assert_normal_echo_answer(rep)
    assert rep.rd == rd


@pytest.mark.parametrize("cd", [True, False])
def test_cd_copied(server, cd):
    rep = Reply(server.raw_udp(build_query(flags=RD | (CD if cd else 0))))
    assert_normal_echo_answer(rep)
    assert rep.cd == cd


def test_z_bit_cleared(server):
    rep = Reply(server.raw_udp(build_query(flags=RD | Z)))
    assert_normal_echo_answer(rep)
    assert not rep.z, "Z must be 0 in a reply"


def test_tc_in_query_answered(server):
    rep = Reply(server.raw_udp(build_query(flags=RD | TC)))
    assert_normal_echo_answer(rep)
    assert not rep.tc


def test_aa_in_query_answered(server):
    assert_normal_echo_answer(Reply(server.raw_udp(build_query(flags=RD | AA))))


def test_qr_set_is_dropped(server):
    assert server.raw_udp(build_query(flags=QR | RD), timeout=1.0) is None


@pytest.mark.parametrize("data", [b"", b"\x12", b"\x12\x34\x01\x00\x00", b"\x00" * 11],
                         ids=["empty", "1-octet", "5-octets", "11-octets"])
def test_runt_is_dropped(server, data):
    assert server.raw_udp(data, timeout=1.0) is None


@pytest.mark.parametrize("opcode,with_question", [(15, False), (2, True), (4, True), (5, True),
                                                  (1, True)])
def test_unknown_opcode_is_notimp(server, opcode, with_question):
    flags = (opcode << 11) | RD
    data = build_query(flags=flags) if with_question else header(qid=0x4242, flags=opcode << 11,
                                                                   qd=0)
    rep = Reply(server.raw_udp(data))
    assert rep.qr
    assert rep.id == (0x1234 if with_question else 0x4242)
    assert rep.opcode == opcode, f"opcode {rep.opcode} not copied"
    assert rep.hdr_rcode == NOTIMP, rep
    assert rep.ancount == 0 and rep.nscount == 0, rep


def formerr(server, data, what):
    t0 = time.monotonic()
    raw = server.raw_udp(data, timeout=1.0)
    elapsed = time.monotonic() - t0
    assert raw is not None, f"{what}: no reply (expected FORMERR)"
    rep = Reply(raw)
    assert rep.qr, rep
    assert rep.id == struct.unpack("!H", data[:2])[0], rep
    assert rep.hdr_rcode == FORMERR, f"{what}: {rep}"
    assert rep.ancount == 0, rep
    assert elapsed < 1.0
    return rep


def long_name_wire():
    label = b"\x3f" + b"a" * 63
    return label * 5 + b"\x00"  # 321 octets


FORMERR_CASES = {
    "qdcount-0": header(qd=0),
    "qdcount-2": header(qd=2) + question() + question("dual.default.svc.local"),
    "ancount-1": header(an=1) + question()
    + b"\xc0\x0c" + struct.pack("!HHIH", 1, 1, 5, 4) + bytes([10, 96, 100, 10]),
    "nscount-1": header(ns=1) + question()
    + b"\xc0\x0c" + struct.pack("!HHIH", 1, 1, 5, 4) + bytes([10, 96, 100, 10]),
    "qdcount-1-no-question": header(qd=1),
    "cut-in-name": header() + b"\x04echo\x07defa",
    "cut-qtype": header() + encode_name(ECHO) + b"\x00",
    "cut-qclass": header() + encode_name(ECHO) + b"\x00\x01\x00",
    "label-type-0x40": header() + b"\x04echo\x41x\x00" + struct.pack("!HH", 1, 1),
    "label-type-0x80": header() + b"\x04echo\x81x\x00" + struct.pack("!HH", 1, 1),
    "name-over-255": header() + long_name_wire() + struct.pack("!HH", 1, 1),
    "pointer-to-itself": header() + b"\xc0\x0c" + struct.pack("!HH", 1, 1),
    "pointer-forward": header() + b"\xc0\x12" + struct.pack("!HH", 1, 1) + b"\x03abc\x00",
    "pointer-into-header": header() + b"\xc0\x02" + struct.pack("!HH", 1, 1),
    "pointer-past-end": header() + b"\xc0\xff" + struct.pack("!HH", 1, 1),
    "label-pointer-loop": header() + b"\x01a\xc0\x0c" + struct.pack("!HH", 1, 1),
    "arcount-without-data": header(ar=5) + question(),
    "qtype-opt": build_query(qtype=41),
}


@pytest.mark.parametrize("case", sorted(FORMERR_CASES))
def test_malformed_is_formerr(server, case):
    formerr(server, FORMERR_CASES[case], case)


def test_trailing_garbage_is_ignored(server):
    assert_normal_echo_answer(Reply(server.raw_udp(build_query() + b"\xde\xad\xbe\xef")))


def test_class_42_is_refused(server):
    rep = Reply(server.raw_udp(build_query(qclass=42)))
    assert rep.qr and rep.hdr_rcode == REFUSED, rep
    assert rep.ancount == 0


def test_axfr_over_udp_is_notimp(server):
    rep = Reply(server.raw_udp(build_query("local", qtype=252)))
    assert rep.qr and rep.hdr_rcode == NOTIMP, rep
    assert rep.ancount == 0


def test_axfr_over_tcp_is_refused(server):
    rep = Reply(server.raw_tcp(build_query("local", qtype=252)))
    assert rep.qr and rep.hdr_rcode == REFUSED, rep
    assert rep.ancount == 0


def test_chaos_version_bind(server):
    r = server.query("version.bind.", "TXT", rdclass="CH")
    assert r.rcode() == dns.rcode.NOERROR, r
    txts = records(r.answer, "TXT")
    assert txts, r
    text = b"".join(txts[0][2].strings).decode()
    assert text.startswith("svcdns"), text


def test_unknown_qtype_is_nodata(server):
    rep = Reply(server.raw_udp(build_query(qtype=666)))
    assert_negative(rep.msg, "NOERROR")


def test_still_answers_after_garbage(server):
    junk = list(FORMERR_CASES.values()) + [
        b"", b"\x00", b"\xff" * 11, b"\xff" * 12, b"\xff" * 512, bytes(range(256)) * 4,
        build_query(flags=QR), header(flags=15 << 11, qd=0),
        build_query(opt=opt_rr(version=255)), header(ar=2) + question() + opt_rr() + opt_rr(),
        header(qd=0xFFFF) + question(),
        header(ar=1) + question() + b"\x00" + struct.pack("!HHIH", 41, 1232, 0, 60) + b"ab",
    ]
    for i in range(3):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            for data in junk:
                s.sendto(data, ("127.0.0.1", server.port))
        time.sleep(0.05)
    for data in junk[:5]:
        try:
            server.raw_tcp(data, timeout=0.5)
        except OSError:
            pass
    assert server.alive(), "svcdns died on malformed input"
    assert_answer(server.query(ECHO + ".", "A"), "A", [ECHO_IP])
    assert_answer(server.query(ECHO + ".", "A", tcp=True), "A", [ECHO_IP])


# --- real clients ----------------------------------------------------------------------------


def dig(server, *args, host="127.0.0.1"):
    return e2e.dig(server.port, *args, host=host)


def dig_flags(out):
    return e2e.parse_dig(out)["flags"]


def test_dig_short(server):
    assert dig(server, ECHO, "A", "+short").split() == [ECHO_IP]


def test_dig_tcp_short(server):
    assert dig(server, "+tcp", ECHO, "A", "+short").split() == [ECHO_IP]


@needs_v6
def test_dig_ipv6(server):
    assert dig(server, ECHO, "A", "+short", host="::1").split() == [ECHO_IP]


def test_dig_nodata(server):
    out = dig(server, ECHO, "AAAA")
    assert "status: NOERROR" in out, out
    assert "ANSWER: 0," in out, out
    assert ";; AUTHORITY SECTION:" in out, out
    auth = out.split(";; AUTHORITY SECTION:", 1)[1].strip().splitlines()[0].split()
    assert auth[0] == "local." and auth[2] == "IN" and auth[3] == "SOA", out
    assert "aa" in dig_flags(out)


def test_dig_nxdomain(server):
    out = dig(server, "nope.default.svc.local", "A")
    assert "status: NXDOMAIN" in out, out
    assert ";; AUTHORITY SECTION:" in out, out


def test_dig_norec(server):
    out = dig(server, "+norec", ECHO, "A")
    flags = dig_flags(out)
    assert "aa" in flags and "rd" not in flags, flags
    assert "status: NOERROR" in out
    ans = out.split(";; ANSWER SECTION:", 1)[1].strip().splitlines()[0].split()
    assert ans[0] == ECHO + "." and ans[3] == "A" and ans[4] == ECHO_IP, out


def test_dig_srv(server):
    out = dig(server, "_http._tcp." + ECHO, "SRV", "+short")
    assert out.split() == ["0", "100", "80", ECHO + "."], out
