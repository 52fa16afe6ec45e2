"""Helpers for the svcdns end-to-end tests: start the binary on loopback, query it, craft and
parse raw DNS packets.

Everything here talks only to 127.0.0.1 and ::1, and every process it starts is stopped by
whoever started it (Server.stop(), or the `with` block)."""

import functools
import os
import pathlib
import re
import signal
import socket
import struct
import subprocess
import tempfile
import time

import dns.flags
import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdataclass
import dns.rdatatype

HERE = pathlib.Path(__file__).resolve().parent
DATA = HERE / "data"
CLUSTER_DATA = DATA / "cluster"
SOURCE = pathlib.Path(os.environ.get("SVCDNS_SOURCE", str(HERE.parent.parent))).resolve()
BIN = os.environ.get("SVCDNS_BIN", str(SOURCE / "build" / "svcdns"))

# The service CIDRs every test server gets unless a test says otherwise.
SERVICE_CIDRS = ("10.96.0.0/12", "fd00:10:96::/112")
# Nothing forwarded: names outside the served zones are REFUSED.
NO_UPSTREAM = ("--upstream", "none")

START_TIMEOUT = 10.0  # the binary may be an ASan build
STOP_TIMEOUT = 5.0

# Every Server ever created, so the pytest hook can attach their stderr to a failure.
ALL_SERVERS = []
CURRENT_TEST = {"nodeid": None}


class ServerError(Exception):
    pass


def require_binary():
    if not (os.path.isfile(BIN) and os.access(BIN, os.X_OK)):
        raise ServerError(f"svcdns binary not found at {BIN} (set SVCDNS_BIN)")


@functools.lru_cache(maxsize=None)
def have_ipv6_loopback():
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


def free_port(v6=False):
    """A port free for UDP and TCP on 127.0.0.1 (and ::1 when v6)."""
    for _ in range(100):
        socks = []
        try:
            t = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            socks.append(t)
            t.bind(("127.0.0.1", 0))
            port = t.getsockname()[1]
            u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            socks.append(u)
            u.bind(("127.0.0.1", port))
            if v6:
                for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
                    s6 = socket.socket(socket.AF_INET6, kind)
                    socks.append(s6)
                    s6.bind(("::1", port))
            return port
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise ServerError("no free port found")


def make_query(name, rdtype="A", rdclass="IN", **kw):
    return dns.message.make_query(name, rdtype, rdclass, **kw)


def send_query(msg, port, host="127.0.0.1", tcp=False, timeout=2.0):
    if tcp:
        return dns.query.tcp(msg, host, port=port, timeout=timeout, one_rr_per_rrset=True)
    return dns.query.udp(msg, host, port=port, timeout=timeout, one_rr_per_rrset=True)


class Server:
    """One svcdns process on loopback.

    Server(manifests=[...], cluster_domain="local", ...) builds the command line;
    .start() waits until an SOA query for the zone apex is answered; .stop() sends SIGTERM and
    requires exit status 0 within 5 s. Usable as a context manager."""

    def __init__(self, manifests=(), *, cluster_domain="local", poll_zone=None, v6=False,
                 ttl=None, pods=None, service_cidrs=SERVICE_CIDRS, extra_args=(),
                 workers=1, with_listen=True, upstream=True, label=None, env=None):
        require_binary()
        self.manifests = [str(m) for m in manifests]
        self.cluster_domain = cluster_domain
        self.zone = poll_zone or cluster_domain or "local"
        self.v6 = v6
        self.ttl = ttl
        self.pods = pods
        self.service_cidrs = service_cidrs
        self.extra_args = list(extra_args)
        self.workers = workers
        self.with_listen = with_listen
        self.upstream = upstream
        self.label = label
        self.env = dict(os.environ, **env) if env else None
        self.port = free_port(v6=v6)
        self.proc = None
        self.stderr_path = None
        self.stdout_path = None
        self.nodeid = CURRENT_TEST["nodeid"]
        self.returncode = None
        ALL_SERVERS.append(self)

    # --- command line ---------------------------------------------------------------------
    @property
    def listen_addrs(self):
        addrs = [f"127.0.0.1:{self.port}"]
        if self.v6:
            addrs.append(f"[::1]:{self.port}")
        return addrs

    def argv(self):
        a = [BIN]
        for m in self.manifests:
            a += ["--manifests", m]
        if self.with_listen:
            for addr in self.listen_addrs:
                a += ["--listen", addr]
        if self.cluster_domain is not None:
            a += ["--cluster-domain", self.cluster_domain]
        if self.workers is not None:
            a += ["--workers", str(self.workers)]
        for c in self.service_cidrs or ():
            a += ["--service-cidr", c]
        if self.ttl is not None:
            a += ["--ttl", str(self.ttl)]
        if self.pods is not None:
            a += ["--pods", self.pods]
        if self.upstream:
            a += NO_UPSTREAM
        a += self.extra_args
        return a

    def describe(self):
        return " ".join(self.argv())

    # --- lifecycle ------------------------------------------------------------------------
    def spawn(self):
        """Starts the process without waiting for it to answer."""
        fd, self.stderr_path = tempfile.mkstemp(prefix="svcdns-stderr-", suffix=".log")
        os.close(fd)
        fd, self.stdout_path = tempfile.mkstemp(prefix="svcdns-stdout-", suffix=".log")
        os.close(fd)
        with open(self.stderr_path, "wb") as err, open(self.stdout_path, "wb") as out:
            self.proc = subprocess.Popen(self.argv(), stdin=subprocess.DEVNULL, stdout=out,
                                         stderr=err, cwd=str(HERE), env=self.env)
        return self

    def start(self, timeout=START_TIMEOUT):
        self.spawn()
        deadline = time.monotonic() + timeout
        probe = make_query(self.zone + ".", "SOA")
        while True:
            rc = self.proc.poll()
            if rc is not None:
                self.returncode = rc
                raise ServerError(f"svcdns exited with status {rc} before answering\n"
                                  f"command: {self.describe()}\n--- stderr ---\n{self.stderr()}")
            try:
                send_query(probe, self.port, timeout=0.25)
                return self
            except Exception:  # noqa: BLE001 - not up yet
                pass
            if time.monotonic() > deadline:
                self.kill()
                raise ServerError(f"svcdns did not answer an SOA query for {self.zone}. within "
                                  f"{timeout} s\ncommand: {self.describe()}\n--- stderr ---\n"
                                  f"{self.stderr()}")
            time.sleep(0.05)

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def kill(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def stop(self):
        """SIGTERM; the process must exit with status 0 within 5 s (else it is killed and
        this raises)."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.kill()
                self.returncode = self.proc.returncode
                raise ServerError(f"svcdns did not exit within {STOP_TIMEOUT} s of SIGTERM "
                                  f"(killed)\n--- stderr ---\n{self.stderr()}")
        self.returncode = self.proc.returncode
        if self.returncode != 0:
            raise ServerError(f"svcdns exited with status {self.returncode} after SIGTERM "
                              f"(expected 0)\ncommand: {self.describe()}\n--- stderr ---\n"
                              f"{self.stderr()}")

    def __enter__(self):
        return self.start()

    def __exit__(self, exc_type, exc, tb):
        if exc_type is not None:
            # The test already failed: stop quietly so its own error is the one reported.
            try:
                self.stop()
            except ServerError:
                pass
            return False
        self.stop()
        return False

    def stderr(self, limit=20000):
        if not self.stderr_path:
            return ""
        try:
            with open(self.stderr_path, "rb") as f:
                data = f.read()
        except OSError:
            return ""
        text = data.decode("utf-8", "replace")
        if len(text) > limit:
            text = "[...]\n" + text[-limit:]
        return text

    def remove_logs(self):
        for path in (self.stderr_path, self.stdout_path):
            if path:
                try:
                    os.unlink(path)
                except OSError:
                    pass

    def stdout(self):
        if not self.stdout_path:
            return ""
        with open(self.stdout_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    # --- queries --------------------------------------------------------------------------
    def query(self, name, rdtype="A", tcp=False, rdclass="IN", host="127.0.0.1", timeout=2.0,
              **kw):
        """A dnspython query (RD set as dig does; kw go to dns.message.make_query); returns
        the parsed reply, one RR per RRset so duplicates stay visible."""
        msg = make_query(name, rdtype, rdclass, **kw)
        return send_query(msg, self.port, host=host, tcp=tcp, timeout=timeout)

    def raw_udp(self, data, timeout=1.0, host="127.0.0.1"):
        return raw_udp(self.port, data, timeout=timeout, host=host)

    def raw_tcp(self, data, timeout=2.0, host="127.0.0.1"):
        return raw_tcp(self.port, data, timeout=timeout, host=host)


# ----------------------------------------------------------------------------------------
# CLI runs


def run_cli(args, timeout=30, cwd=None):
    require_binary()
    return subprocess.run([BIN] + list(args), stdin=subprocess.DEVNULL, capture_output=True,
                          text=True, timeout=timeout, cwd=cwd or str(HERE))


# ----------------------------------------------------------------------------------------
# Raw packets

QR, OPCODE_SHIFT, AA, TC, RD, RA, Z, AD, CD = 0x8000, 11, 0x0400, 0x0200, 0x0100, 0x0080, \
    0x0040, 0x0020, 0x0010


def encode_name(name):
    if isinstance(name, bytes):
        return name
    name = name.rstrip(".")
    out = b""
    if name:
        for label in name.split("."):
            raw = label.encode("ascii")
            out += bytes([len(raw)]) + raw
    return out + b"\x00"


def opt_rr(payload=1232, ext_rcode=0, version=0, flags=0, options=b"", owner=b"\x00"):
    """An OPT pseudo-RR; options is the raw RDATA."""
    ttl = (ext_rcode << 24) | (version << 16) | flags
    return owner + struct.pack("!HHIH", 41, payload, ttl, len(options)) + options


def edns_option(code, data):
    return struct.pack("!HH", code, len(data)) + data


def header(qid=0x1234, flags=RD, qd=1, an=0, ns=0, ar=0):
    return struct.pack("!HHHHHH", qid, flags, qd, an, ns, ar)


def question(name="echo.default.svc.local", qtype=1, qclass=1):
    return encode_name(name) + struct.pack("!HH", qtype, qclass)


def build_query(name="echo.default.svc.local", qtype=1, qclass=1, qid=0x1234, flags=RD,
                opt=None):
    """A well-formed query; opt is the bytes of an OPT RR (see opt_rr) or None."""
    ar = 1 if opt is not None else 0
    return header(qid, flags, 1, 0, 0, ar) + question(name, qtype, qclass) + (opt or b"")


def raw_udp(port, data, timeout=1.0, host="127.0.0.1"):
    """Sends one datagram; returns the reply bytes, or None if none came within timeout."""
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(fam, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        s.connect((host, port))
        s.send(data)
        try:
            return s.recv(65535)
        except socket.timeout:
            return None


def recv_exact(sock, n):
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            return None
        buf += chunk
    return buf


def recv_frame(sock):
    """One length-prefixed DNS message from a TCP socket, or None on EOF."""
    ln = recv_exact(sock, 2)
    if ln is None:
        return None
    (n,) = struct.unpack("!H", ln)
    return recv_exact(sock, n)


def raw_tcp(port, data, timeout=2.0, host="127.0.0.1"):
    """Sends one message (length prefix added) on a new TCP connection; returns the reply."""
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(fam, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        s.connect((host, port))
        s.sendall(struct.pack("!H", len(data)) + data)
        return recv_frame(s)


class Reply:
    """The header of a raw reply, parsed by hand (works on any reply, even one dnspython
    would reject), plus the dnspython parse when it succeeds."""

    def __init__(self, data):
        assert data is not None, "no reply"
        assert len(data) >= 12, f"reply shorter than a header: {data!r}"
        self.data = data
        (self.id, self.flags, self.qdcount, self.ancount, self.nscount,
         self.arcount) = struct.unpack("!HHHHHH", data[:12])
        self.qr = bool(self.flags & QR)
        self.opcode = (self.flags >> OPCODE_SHIFT) & 0xF
        self.aa = bool(self.flags & AA)
        self.tc = bool(self.flags & TC)
        self.rd = bool(self.flags & RD)
        self.ra = bool(self.flags & RA)
        self.z = bool(self.flags & Z)
        self.ad = bool(self.flags & AD)
        self.cd = bool(self.flags & CD)
        self.hdr_rcode = self.flags & 0xF
        try:
            self.msg = dns.message.from_wire(data, one_rr_per_rrset=True)
        except Exception as e:  # noqa: BLE001
            self.msg = None
            self.parse_error = e

    @property
    def rcode(self):
        """The full rcode (with the OPT's extended bits when dnspython could parse)."""
        if self.msg is not None:
            return self.msg.rcode()
        return self.hdr_rcode

    def __repr__(self):
        return (f"Reply(id={self.id:#x} flags={self.flags:#06x} opcode={self.opcode} "
                f"rcode={self.rcode} qd={self.qdcount} an={self.ancount} ns={self.nscount} "
                f"ar={self.arcount} len={len(self.data)})")


# ----------------------------------------------------------------------------------------
# Assertions on dnspython replies


def records(section, rdtype=None):
    """Flattens a reply section into (owner text, ttl, rdata) tuples, in wire order."""
    out = []
    for rrset in section:
        if rdtype is not None and rrset.rdtype != dns.rdatatype.from_text(rdtype):
            continue
        for rd in rrset:
            out.append((rrset.name.to_text(), rrset.ttl, rd))
    return out


def rr_texts(section, rdtype=None):
    return sorted(rd.to_text() for _, _, rd in records(section, rdtype))


def rcode_text(resp):
    return dns.rcode.to_text(resp.rcode())


def lname(text):
    return text.lower()


def assert_answer(resp, rdtype, expected, name=None, ttl=None):
    """NOERROR, AA, exactly the expected rdata texts (as a multiset) of rdtype in ANSWER,
    nothing else there; owners equal name (case-sensitive, to check the echo) if given."""
    assert resp.rcode() == dns.rcode.NOERROR, f"rcode {rcode_text(resp)}\n{resp}"
    assert resp.flags & dns.flags.AA, f"AA not set\n{resp}"
    assert resp.flags & dns.flags.QR
    recs = records(resp.answer)
    types = {dns.rdatatype.to_text(rd.rdtype) for _, _, rd in recs}
    assert types <= {rdtype}, f"unexpected types {types} in answer\n{resp}"
    got = sorted(rd.to_text() for _, _, rd in recs)
    assert got == sorted(expected), f"answer {got} != {sorted(expected)}\n{resp}"
    for owner, t, _ in recs:
        if name is not None:
            assert owner == name, f"owner {owner!r} != {name!r}\n{resp}"
        if ttl is not None:
            assert t == ttl, f"ttl {t} != {ttl}\n{resp}"
    return recs


def assert_negative(resp, rcode, zone="local.", soa_ttl=None):
    """NXDOMAIN or NODATA: AA, empty answer, exactly one SOA (owner zone) in AUTHORITY."""
    want = dns.rcode.from_text(rcode) if isinstance(rcode, str) else rcode
    assert resp.rcode() == want, f"rcode {rcode_text(resp)} != {dns.rcode.to_text(want)}\n{resp}"
    assert resp.flags & dns.flags.AA, f"AA not set on a negative answer\n{resp}"
    assert resp.flags & dns.flags.QR
    assert not resp.answer, f"answer not empty\n{resp}"
    auth = records(resp.authority)
    assert len(auth) == 1, f"AUTHORITY should hold exactly the SOA\n{resp}"
    owner, ttl, rd = auth[0]
    assert rd.rdtype == dns.rdatatype.SOA, f"AUTHORITY holds {rd.rdtype!r}, not SOA\n{resp}"
    assert owner.lower() == zone.lower(), f"SOA owner {owner} != {zone}\n{resp}"
    if soa_ttl is not None:
        assert ttl == soa_ttl, f"SOA TTL {ttl} != {soa_ttl}\n{resp}"
    return rd


def dashed(ip):
    return ip.replace(".", "-").replace(":", "-")


_WS = re.compile(r"\s+")


def zone_lines(text):
    """Splits zone-file text into lists of whitespace-separated fields (comments dropped)."""
    out = []
    for line in text.splitlines():
        line = line.split(";", 1)[0].strip()
        if line and not line.startswith("$"):
            out.append(_WS.split(line))
    return out


# ----------------------------------------------------------------------------------------
# A real upstream

def nsd_conf(d, port):
    """An nsd.conf that runs NSD unprivileged from directory d on 127.0.0.1:port, serving
    example.test from d/example.test.zone: no response rate limiting (tests send bursts),
    no chroot, no user switch, no remote control."""
    return f"""server:
  ip-address: 127.0.0.1@{port}
  do-ip6: no
  server-count: 1
  reuseport: no
  username: ""
  chroot: ""
  zonesdir: "{d}"
  pidfile: "{d}/nsd.pid"
  database: ""
  zonelistfile: "{d}/zone.list"
  xfrdfile: "{d}/xfrd.state"
  xfrdir: "{d}"
  logfile: "{d}/nsd.log"
  verbosity: 0
  hide-version: yes
  rrl-ratelimit: 0
  rrl-whitelist-ratelimit: 0
  tcp-count: 100
remote-control:
  control-enable: no
zone:
  name: example.test
  zonefile: example.test.zone
"""
