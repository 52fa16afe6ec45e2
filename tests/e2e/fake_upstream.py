"""A scripted, misbehaving upstream DNS server for the forwarder tests (UDP and TCP on one
127.0.0.1 port). The first label of the query name picks what it does:

  silent        never answers                     slow          answers after 3 s
  delay         answers after 0.3 s               wrongid       answers with another ID
  wrongq        answers another question          garbage       40 random bytes
  short         a 7-byte datagram                 servfail      SERVFAIL
  refused       REFUSED                           tc            TC=1 over UDP, 50 A over TCP
  formerr-edns  FORMERR if the query has OPT, else the answer
  spoof         10,000 replies with a wrong ID or a wrong question (answer 6.6.6.6), then the
                real answer 0.3 s later;  spoofnever: the same without the real answer
  nxdomain      NXDOMAIN + SOA                    nodata        NOERROR, no answer, SOA
  bigtc         like tc, with 700 A records over TCP (11 KB)
  hugetc        like tc, with 1,500 A records over TCP (24 KB)
  inject        a CNAME to echo.default.svc.local plus records for it (A 6.6.6.6, AAAA
                2001:db8::666): an upstream asserting data for a cluster name
  injectnx      the same CNAME, with NXDOMAIN: an upstream denying a cluster name
  ttlN[-...]    the normal answer with TTL N (e.g. ttl2-stale.example.test)
  anything else the normal answer: A 192.0.2.1, AAAA 2001:db8::1, MX, TXT; TTL 300

Labels are matched up to the first '-' digit run too, so "silent-3" is "silent". Every query
received is logged (time, transport, source port, ID, name, type, EDNS, DO) in .log and, with
--log FILE, as one JSON line each. With honor_labels=False every query gets the normal answer
(a second, healthy upstream).

In a test:  up = FakeUpstream().start(); ... up.port ...; up.stop()
Standalone: /usr/bin/python3 fake_upstream.py --port 5399 [--log queries.jsonl]"""

import argparse
import heapq
import json
import os
import random
import re
import selectors
import socket
import struct
import sys
import threading
import time

import dns.edns
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset

SOA_TEXT = "ns.example.test. hostmaster.example.test. 1 7200 1800 86400 60"
BEHAVIOURS = ("silent", "slow", "delay", "wrongid", "wrongq", "garbage", "short", "servfail",
              "refused", "tc", "formerr-edns", "spoofnever", "spoof", "nxdomain", "nodata",
              "injectnx", "inject", "bigtc", "hugetc")
BIG_COUNTS = {"bigtc": 700, "hugetc": 1500}
INJECT_TARGET = "echo.default.svc.local."
INJECT_A, INJECT_AAAA = "6.6.6.6", "2001:db8::666"
SPOOF_COUNT = 10000


def behaviour_of(qname):
    """The behaviour named by the first label, and the TTL for ttlN labels."""
    labels = qname.to_text().lower().split(".")
    first = labels[0] if labels else ""
    m = re.match(r"ttl(\d+)(-|$)", first)
    if m:
        return "normal", int(m.group(1))
    for b in BEHAVIOURS:
        if first == b or re.match(re.escape(b) + r"-", first):
            return b, 300
    return "normal", 300


def zone_of(qname):
    """The parent of the name's first label (or the name itself at the top)."""
    try:
        return qname.parent()
    except dns.name.NoParent:
        return qname


class FakeUpstream:
    def __init__(self, host="127.0.0.1", port=0, honor_labels=True, log_path=None):
        self.host = host
        self.port = port
        self.honor_labels = honor_labels
        self.log_path = log_path
        self.log = []
        self._lock = threading.Lock()
        self._sel = selectors.DefaultSelector()
        self._timers = []  # (when, seq, fn)
        self._seq = 0
        self._stop = False
        self._thread = None
        self._wake_r, self._wake_w = socket.socketpair()
        self._big = {}  # (behaviour, question length, type) -> a reply's wire, to patch

    # --- lifecycle ----------------------------------------------------------------------
    def start(self):
        for _ in range(50):
            self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            self.udp.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
            self.udp.bind((self.host, self.port))
            port = self.udp.getsockname()[1]
            self.tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            self.tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                self.tcp.bind((self.host, port))
            except OSError:
                self.udp.close()
                self.tcp.close()
                if self.port:
                    raise
                continue
            self.port = port
            break
        self.tcp.listen(64)
        self.udp.setblocking(False)
        self.tcp.setblocking(False)
        self._sel.register(self.udp, selectors.EVENT_READ, self._on_udp)
        self._sel.register(self.tcp, selectors.EVENT_READ, self._on_accept)
        self._sel.register(self._wake_r, selectors.EVENT_READ, None)
        self._thread = threading.Thread(target=self._run, name=f"fake-upstream-{self.port}",
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self):
        """Closes the sockets: from now on queries to the port get ICMP port unreachable."""
        if self._thread is None:
            return
        self._stop = True
        self._wake_w.send(b"x")
        self._thread.join(5)
        self._thread = None
        for key in list(self._sel.get_map().values()):
            try:
                key.fileobj.close()
            except OSError:
                pass
        self._sel.close()
        self._wake_w.close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
        return False

    @property
    def addr(self):
        return f"{self.host}:{self.port}"

    # --- the query log ------------------------------------------------------------------
    def queries(self, name_prefix=None, proto=None):
        with self._lock:
            out = list(self.log)
        if name_prefix is not None:
            out = [q for q in out if q["name"].startswith(name_prefix.lower())]
        if proto is not None:
            out = [q for q in out if q["proto"] == proto]
        return out

    def _record(self, proto, src, msg):
        q = msg.question[0]
        entry = {"t": time.time(), "proto": proto, "src_port": src[1], "id": msg.id,
                 "name": q.name.to_text().lower(), "type": dns.rdatatype.to_text(q.rdtype),
                 "edns": msg.edns >= 0, "do": bool(msg.ednsflags & dns.flags.DO),
                 "payload": msg.payload if msg.edns >= 0 else 0}
        with self._lock:
            self.log.append(entry)
        if self.log_path:
            with open(self.log_path, "a") as f:
                f.write(json.dumps(entry) + "\n")

    # --- the loop -----------------------------------------------------------------------
    def _later(self, delay, fn):
        self._seq += 1
        heapq.heappush(self._timers, (time.monotonic() + delay, self._seq, fn))

    def _run(self):
        while not self._stop:
            timeout = None
            if self._timers:
                timeout = max(0.0, self._timers[0][0] - time.monotonic())
            for key, _ in self._sel.select(timeout):
                if key.data is None:
                    self._wake_r.recv(64)
                    continue
                try:
                    key.data(key.fileobj)
                except OSError:
                    pass
            now = time.monotonic()
            while self._timers and self._timers[0][0] <= now:
                _, _, fn = heapq.heappop(self._timers)
                try:
                    fn()
                except OSError:
                    pass

    def _on_udp(self, sock):
        for _ in range(64):
            try:
                data, src = sock.recvfrom(65535)
            except BlockingIOError:
                return
            self._handle(data, src, "udp", lambda wire, src=src: sock.sendto(wire, src))

    def _on_accept(self, sock):
        try:
            conn, src = sock.accept()
        except BlockingIOError:
            return
        conn.setblocking(False)
        state = {"buf": b"", "src": src}
        self._sel.register(conn, selectors.EVENT_READ, lambda c: self._on_tcp(c, state))

    def _on_tcp(self, conn, state):
        try:
            data = conn.recv(65535)
        except BlockingIOError:
            return
        if not data:
            self._sel.unregister(conn)
            conn.close()
            return
        state["buf"] += data
        while len(state["buf"]) >= 2:
            (n,) = struct.unpack("!H", state["buf"][:2])
            if len(state["buf"]) < 2 + n:
                break
            wire, state["buf"] = state["buf"][2:2 + n], state["buf"][2 + n:]

            def send(out, conn=conn):
                conn.setblocking(True)
                conn.sendall(struct.pack("!H", len(out)) + out)
                conn.setblocking(False)
            self._handle(wire, state["src"], "tcp", send)

    # --- answers ------------------------------------------------------------------------
    def _handle(self, wire, src, proto, send):
        try:
            msg = dns.message.from_wire(wire)
        except Exception:  # noqa: BLE001 - not a query we can read
            return
        if not msg.question:
            return
        self._record(proto, src, msg)
        what, ttl = behaviour_of(msg.question[0].name) if self.honor_labels else ("normal", 300)
        getattr(self, "_b_" + what.replace("-", "_"))(msg, proto, send, ttl)

    def _reply(self, msg, rcode=dns.rcode.NOERROR):
        r = dns.message.make_response(msg)
        r.flags |= dns.flags.RA
        r.set_rcode(rcode)
        return r

    def _answer(self, msg, ttl=300, count=1):
        r = self._reply(msg)
        q = msg.question[0]
        rdtype = q.rdtype
        texts = {
            dns.rdatatype.A: [f"192.0.{2 + i // 250}.{i % 250 + 1}" for i in range(count)],
            dns.rdatatype.AAAA: ["2001:db8::1"],
            dns.rdatatype.MX: ["10 mail.example.test."],
            dns.rdatatype.TXT: ['"fake upstream"'],
        }.get(rdtype)
        if texts:
            r.answer.append(dns.rrset.from_text_list(q.name, ttl, "IN", rdtype, texts))
        else:
            r.authority.append(dns.rrset.from_text(zone_of(q.name), ttl, "IN", "SOA", SOA_TEXT))
        return r

    def _send(self, send, r, proto, max_size=None):
        if max_size is None:
            max_size = 65535 if proto == "tcp" else 1232
        send(r.to_wire(max_size=max_size))

    def _b_normal(self, msg, proto, send, ttl):
        self._send(send, self._answer(msg, ttl), proto)

    def _b_silent(self, msg, proto, send, ttl):
        pass

    def _b_slow(self, msg, proto, send, ttl):
        self._later(3.0, lambda: self._send(send, self._answer(msg), proto))

    def _b_delay(self, msg, proto, send, ttl):
        self._later(0.3, lambda: self._send(send, self._answer(msg), proto))

    def _b_wrongid(self, msg, proto, send, ttl):
        r = self._answer(msg)
        r.id = (msg.id + 1 + random.randrange(0xfffe)) & 0xFFFF
        self._send(send, r, proto)

    def _b_wrongq(self, msg, proto, send, ttl):
        other = dns.message.make_query("other-" + msg.question[0].name.to_text(), "A")
        other.id = msg.id
        other.flags = msg.flags
        self._send(send, self._answer(other), proto)

    def _b_garbage(self, msg, proto, send, ttl):
        send(os.urandom(40))

    def _b_short(self, msg, proto, send, ttl):
        send(struct.pack("!H", msg.id) + b"\x81\x80\x00\x01\x00")

    def _b_servfail(self, msg, proto, send, ttl):
        self._send(send, self._reply(msg, dns.rcode.SERVFAIL), proto)

    def _b_refused(self, msg, proto, send, ttl):
        self._send(send, self._reply(msg, dns.rcode.REFUSED), proto)

    def _b_nxdomain(self, msg, proto, send, ttl):
        r = self._reply(msg, dns.rcode.NXDOMAIN)
        r.authority.append(dns.rrset.from_text(zone_of(msg.question[0].name), 3600, "IN",
                                               "SOA", SOA_TEXT))
        self._send(send, r, proto)

    def _b_nodata(self, msg, proto, send, ttl):
        r = self._reply(msg)
        r.authority.append(dns.rrset.from_text(zone_of(msg.question[0].name), 3600, "IN",
                                               "SOA", SOA_TEXT))
        self._send(send, r, proto)

    def _injected(self, msg, rcode):
        r = self._reply(msg, rcode)
        q = msg.question[0]
        r.answer.append(dns.rrset.from_text(q.name, 300, "IN", "CNAME", INJECT_TARGET))
        data = {dns.rdatatype.A: INJECT_A, dns.rdatatype.AAAA: INJECT_AAAA}.get(q.rdtype)
        if data and rcode == dns.rcode.NOERROR:
            r.answer.append(dns.rrset.from_text(INJECT_TARGET, 86400, "IN", q.rdtype, data))
        r.additional.append(dns.rrset.from_text(INJECT_TARGET, 86400, "IN", "A", INJECT_A))
        if rcode != dns.rcode.NOERROR:
            r.authority.append(dns.rrset.from_text("local.", 3600, "IN", "SOA", SOA_TEXT))
        return r

    def _b_inject(self, msg, proto, send, ttl):
        self._send(send, self._injected(msg, dns.rcode.NOERROR), proto)

    def _b_injectnx(self, msg, proto, send, ttl):
        self._send(send, self._injected(msg, dns.rcode.NXDOMAIN), proto)

    def _b_tc(self, msg, proto, send, ttl):
        if proto == "udp":
            r = self._reply(msg)
            r.flags |= dns.flags.TC
            self._send(send, r, proto)
        else:
            self._send(send, self._answer(msg, count=50), proto)

    def _big_tc(self, what, msg, proto, send):
        """TC over UDP; over TCP many A records. Building them takes dnspython a while, so the
        wire is built once per question length and patched: the records name the question
        with a pointer, so only the ID and the question differ."""
        if proto == "udp":
            self._b_tc(msg, proto, send, 300)
            return
        question = msg.question[0].name.to_wire() + struct.pack("!HH", msg.question[0].rdtype, 1)
        key = (what, len(question), msg.question[0].rdtype)
        if key not in self._big:
            self._big[key] = self._answer(msg, count=BIG_COUNTS[what]).to_wire(max_size=65535)
        wire = self._big[key]
        send(struct.pack("!H", msg.id) + wire[2:12] + question + wire[12 + len(question):])

    def _b_bigtc(self, msg, proto, send, ttl):
        self._big_tc("bigtc", msg, proto, send)

    def _b_hugetc(self, msg, proto, send, ttl):
        self._big_tc("hugetc", msg, proto, send)

    def _b_formerr_edns(self, msg, proto, send, ttl):
        if msg.edns >= 0:
            r = self._reply(msg, dns.rcode.FORMERR)
            r.use_edns(False)
            self._send(send, r, proto)
        else:
            self._b_normal(msg, proto, send, ttl)

    def _spoofs(self, msg, send):
        """Replies the resolver must ignore, all from this very socket: a wrong ID with the
        right question, or (every tenth) the right ID with another question. Built once and
        patched, so that 10,000 go out in well under the resolver's 1 s try."""
        def evil(base):
            r = dns.message.make_response(base)
            if base.question[0].rdtype == dns.rdatatype.A:
                r.answer.append(dns.rrset.from_text(base.question[0].name, 86400, "IN", "A",
                                                    "6.6.6.6"))
            return r.to_wire()
        right_q = evil(msg)
        wrong_q = dns.message.make_query("x" + msg.question[0].name.to_text(), "A")
        wrong_q.id = msg.id
        wrong_q = evil(wrong_q)
        for i in range(SPOOF_COUNT):
            if i % 10 == 9:
                wire = wrong_q
            else:
                rid = random.randrange(0x10000)
                while rid == msg.id:
                    rid = random.randrange(0x10000)
                wire = struct.pack("!H", rid) + right_q[2:]
            try:
                send(wire)
            except BlockingIOError:
                time.sleep(0.0005)
            except OSError:
                return

    def _b_spoof(self, msg, proto, send, ttl):
        self._spoofs(msg, send)
        self._later(0.3, lambda: self._send(send, self._answer(msg), proto))

    def _b_spoofnever(self, msg, proto, send, ttl):
        self._spoofs(msg, send)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--log", help="append one JSON line per query here")
    p.add_argument("--normal", action="store_true", help="ignore the labels: always answer")
    a = p.parse_args()
    up = FakeUpstream(a.host, a.port, honor_labels=not a.normal, log_path=a.log).start()
    print(f"PORT {up.port}", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        up.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
