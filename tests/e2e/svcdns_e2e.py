"""The harness of the svcdns end-to-end tests: start the binary on loopback (or inside a
network namespace of the test's own), query it, craft and parse raw DNS packets, run dig and
kdig, run NSD as a real upstream, and run glibc's resolver (getent) in a network namespace.

Everything here talks only to 127.0.0.1 and ::1 (on the host or inside a namespace this
module made), and every process it starts is stopped by whoever started it (stop(), or the
`with` block); conftest.py kills what is left at the end of the session and removes the
processes' temp dirs. The scripted misbehaving upstream is fake_upstream.py, the fake
kube-apiserver fake_apiserver.py."""

import contextlib
import functools
import os
import pathlib
import re
import resource
import secrets
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import time
import urllib.error
import urllib.request

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
NSD = shutil.which("nsd") or "/usr/sbin/nsd"

# The service CIDRs every test server gets unless a test says otherwise.
SERVICE_CIDRS = ("10.96.0.0/12", "fd00:10:96::/112")
# Nothing forwarded: names outside the served zones are REFUSED.
NO_UPSTREAM = ("--upstream", "none")

START_TIMEOUT = 10.0  # the binary may be an ASan build
STOP_TIMEOUT = 5.0
INSTALL_HINT = "sh deploy/install-deps.sh --tests installs it"

# Every Process ever created, so the pytest hooks can attach their stderr to a failure and
# clean up at the end of the session.
ALL_PROCESSES = []
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


def wait_until(predicate, timeout, interval=0.02):
    """Calls predicate until it returns a true value or timeout seconds pass; returns its
    last value (so `assert wait_until(...), message`)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    return predicate()


def raise_open_files(n):
    """Lets this process (and what it starts) open n descriptors: the soft RLIMIT_NOFILE
    goes up to n, within the hard limit; an AssertionError says so when that is too low."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    assert hard == resource.RLIM_INFINITY or hard >= n, \
        f"this test opens {n} descriptors; the hard open file limit is {hard} (raise it)"
    if soft != resource.RLIM_INFINITY and soft < n:
        resource.setrlimit(resource.RLIMIT_NOFILE, (n, hard))


def run(argv, check=True, timeout=30, netns=None):
    """Runs a command (inside netns when given) to its end; with check, exit 0 is required."""
    argv = [str(a) for a in argv]
    if netns is not None:
        argv = netns.exec_argv(argv)
    p = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                       timeout=timeout)
    if check:
        assert p.returncode == 0, f"{' '.join(argv)}: exit {p.returncode}\n{p.stdout}{p.stderr}"
    return p


def run_cli(args, timeout=30, cwd=None):
    """svcdns with these arguments, to its end (--check, --dump, --resolv-conf, errors)."""
    require_binary()
    return subprocess.run([BIN] + [str(a) for a in args], stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=timeout, cwd=cwd or str(HERE))


# ----------------------------------------------------------------------------------------
# Processes


class Process:
    """A child process (on the host, or inside netns; behind a wrapper such as valgrind)
    whose stdout and stderr go to files in a temp dir of its own. The dir stays until the
    end of the session, so that a failure report can show the stderr."""

    def __init__(self, label, netns=None, wrapper=(), env=None, nofile=None):
        self.label = label
        self.netns = netns
        self.wrapper = [str(a) for a in wrapper]
        self.env = dict(os.environ, **env) if env else None
        self.nofile = nofile  # (soft, hard) RLIMIT_NOFILE for the child, or None: inherited
        self.proc = None
        self.returncode = None
        self.dir = pathlib.Path(tempfile.mkdtemp(prefix=f"svcdns-e2e-{label}-"))
        self.stderr_path = self.dir / "stderr"
        self.stdout_path = self.dir / "stdout"
        self.nodeid = CURRENT_TEST["nodeid"]
        ALL_PROCESSES.append(self)

    def command(self):
        raise NotImplementedError

    def argv(self):
        a = self.wrapper + [str(x) for x in self.command()]
        return self.netns.exec_argv(a) if self.netns is not None else a

    def describe(self):
        return " ".join(self.argv())

    def spawn(self):
        """Starts the process without waiting for it to be ready."""
        limit = None
        if self.nofile is not None:
            def limit():
                resource.setrlimit(resource.RLIMIT_NOFILE, self.nofile)
        with open(self.stderr_path, "wb") as err, open(self.stdout_path, "wb") as out:
            self.proc = subprocess.Popen(self.argv(), stdin=subprocess.DEVNULL, stdout=out,
                                         stderr=err, cwd=str(HERE), env=self.env,
                                         preexec_fn=limit)
        return self

    def status(self, field):
        """A field of /proc/PID/status as an int (VmRSS in kB, say); None once it exited."""
        try:
            text = pathlib.Path(f"/proc/{self.proc.pid}/status").read_text()
        except OSError:
            return None
        m = re.search(rf"^{field}:\s+(\d+)", text, re.M)
        return int(m.group(1)) if m else None

    def open_fds(self):
        """How many descriptors the process has open (None once it exited)."""
        try:
            return len(os.listdir(f"/proc/{self.proc.pid}/fd"))
        except OSError:
            return None

    def wait_ready(self, ready, timeout, what):
        """Polls ready() until it is true; raises ServerError (and kills the process) when
        the process exits first or timeout seconds pass."""
        ok = wait_until(lambda: not self.alive() or ready(), timeout, interval=0.05)
        if not self.alive():
            self.returncode = self.proc.returncode
            raise ServerError(f"{self.label} exited with status {self.returncode} while "
                              f"waiting for {what}\ncommand: {self.describe()}\n"
                              f"{self.report()}")
        if not ok:
            self.kill()
            raise ServerError(f"{self.label}: waited {timeout} s for {what} in vain (killed)\n"
                              f"command: {self.describe()}\n{self.report()}")

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def kill(self):
        if self.alive():
            self.proc.kill()
            self.proc.wait()

    def terminate(self, timeout):
        """SIGTERM, then SIGKILL after timeout seconds. True when it exited by itself."""
        if self.proc is None:
            return True
        in_time = True
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.kill()
                in_time = False
        self.returncode = self.proc.returncode
        return in_time

    def stop(self):
        self.terminate(STOP_TIMEOUT)

    def __enter__(self):
        return self.start()

    def __exit__(self, exc_type, exc, tb):
        if exc_type is not None:
            # The test already failed: stop quietly so its own error is the one reported.
            with contextlib.suppress(ServerError):
                self.stop()
            return False
        self.stop()
        return False

    def stderr(self, limit=None):
        """The stderr so far (its last `limit` characters when given)."""
        try:
            text = self.stderr_path.read_bytes().decode("utf-8", "replace")
        except OSError:
            return ""
        if limit is not None and len(text) > limit:
            text = "[...]\n" + text[-limit:]
        return text

    def stdout(self):
        try:
            return self.stdout_path.read_bytes().decode("utf-8", "replace")
        except OSError:
            return ""

    def report(self, limit=8000):
        """What a failure report shows of this process."""
        return f"--- stderr ---\n{self.stderr(limit=limit)}"

    def cleanup(self):
        shutil.rmtree(self.dir, ignore_errors=True)


class Server(Process):
    """One svcdns process listening on loopback.

    Server(manifests=[...], cluster_domain="local", ...) builds the command line;
    .start() waits until it is ready (an SOA query for the zone apex is answered; inside a
    network namespace, which the host cannot query, the `serving` log line); .stop() sends
    SIGTERM and requires exit status 0 within stop_timeout. Usable as a context manager.

    upstreams: ADDR:PORT strings for --upstream; the default forwards nothing
    (`--upstream none`). netns: a Netns to run in (port 53 there unless given). wrapper:
    an argv prefix (valgrind). log_queries: --log-queries, read back with query_log().
    nofile: (soft, hard) open file limit for the process. lameduck: --lameduck; "0" unless
    given, so that stop() does not wait out svcdns's 5 s default on every test (None passes
    none: the default, or the config file's)."""

    def __init__(self, manifests=(), *, cluster_domain="local", poll_zone=None, v6=False,
                 ttl=None, pods=None, service_cidrs=SERVICE_CIDRS, upstreams=("none",),
                 extra_args=(), workers=1, with_listen=True, log_queries=False, port=None,
                 netns=None, wrapper=(), start_timeout=START_TIMEOUT,
                 stop_timeout=STOP_TIMEOUT, label=None, env=None, nofile=None, lameduck="0"):
        require_binary()
        super().__init__(label or "svcdns", netns=netns, wrapper=wrapper, env=env,
                         nofile=nofile)
        self.manifests = [str(m) for m in manifests]
        self.cluster_domain = cluster_domain
        self.zone = poll_zone or cluster_domain or "local"
        self.v6 = v6
        self.ttl = ttl
        self.pods = pods
        self.service_cidrs = service_cidrs
        self.upstreams = list(upstreams)
        self.extra_args = [str(a) for a in extra_args]
        self.workers = workers
        self.with_listen = with_listen
        self.log_queries = log_queries
        self.lameduck = lameduck
        self.start_timeout = start_timeout
        self.stop_timeout = stop_timeout
        self.port = port or (53 if netns is not None else free_port(v6=v6))

    # --- command line ---------------------------------------------------------------------
    @property
    def listen_addrs(self):
        addrs = [f"127.0.0.1:{self.port}"]
        if self.v6:
            addrs.append(f"[::1]:{self.port}")
        return addrs

    def command(self):
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
        for u in self.upstreams:
            a += ["--upstream", u]
        if self.log_queries:
            a.append("--log-queries")
        if self.lameduck is not None:
            a += ["--lameduck", self.lameduck]
        return a + self.extra_args

    # --- lifecycle ------------------------------------------------------------------------
    def answers(self):
        if self.netns is not None:
            return " module=main serving " in self.stderr()
        try:
            send_query(make_query(self.zone + ".", "SOA"), self.port, timeout=0.25)
            return True
        except Exception:  # noqa: BLE001 - not up yet
            return False

    def start(self):
        self.spawn()
        what = ("the `serving` log line" if self.netns is not None
                else f"an answer to an SOA query for {self.zone}.")
        self.wait_ready(self.answers, self.start_timeout, what)
        return self

    def stop(self):
        """SIGTERM; the process must exit with status 0 within stop_timeout (else it is
        killed and this raises)."""
        if self.proc is None:
            return
        if not self.terminate(self.stop_timeout):
            raise ServerError(f"svcdns did not exit within {self.stop_timeout} s of SIGTERM "
                              f"(killed)\ncommand: {self.describe()}\n{self.report()}")
        if self.returncode != 0:
            raise ServerError(f"svcdns exited with status {self.returncode} after SIGTERM "
                              f"(expected 0)\ncommand: {self.describe()}\n{self.report()}")

    def wait_synced(self, timeout=10.0):
        """Waits until the zone apex answers NOERROR: with --kubernetes or --kubeconfig, every
        kind has been listed (before that, cluster names get SERVFAIL). Raises otherwise."""
        def synced():
            try:
                r = send_query(make_query(self.zone + ".", "SOA"), self.port, timeout=0.5)
                return r.rcode() == dns.rcode.NOERROR
            except Exception:  # noqa: BLE001 - not up yet
                return False
        if not wait_until(synced, timeout, interval=0.05):
            raise ServerError(f"svcdns did not serve {self.zone} within {timeout} s\n"
                              f"command: {self.describe()}\n{self.report()}")
        return self

    def wait_for_log(self, text, timeout=5.0):
        """True once text is in the stderr, False after timeout seconds."""
        return bool(wait_until(lambda: text in self.stderr(), timeout, interval=0.05))

    def query_log(self):
        """The --log-queries log so far: one dict per `module=query` line, in order."""
        return [dict(_KV.findall(line)) for line in self.stderr().splitlines()
                if " module=query " in line]

    # --- queries --------------------------------------------------------------------------
    def query(self, name, rdtype="A", tcp=False, rdclass="IN", host="127.0.0.1", timeout=2.0,
              source=None, **kw):
        """A dnspython query (RD set as dig does; kw go to dns.message.make_query) from
        source (an address) when given; returns the parsed reply, one RR per RRset so
        duplicates stay visible."""
        msg = make_query(name, rdtype, rdclass, **kw)
        return send_query(msg, self.port, host=host, tcp=tcp, timeout=timeout, source=source)

    def raw_udp(self, data, timeout=1.0, host="127.0.0.1"):
        return raw_udp(self.port, data, timeout=timeout, host=host)

    def raw_tcp(self, data, timeout=2.0, host="127.0.0.1"):
        return raw_tcp(self.port, data, timeout=timeout, host=host)


_KV = re.compile(r"(\w+)=(\S+)")


# ----------------------------------------------------------------------------------------
# In a pod's place


SERVICEACCOUNT = "/var/run/secrets/kubernetes.io/serviceaccount"


def in_cluster_wrapper(sa_dir):
    """An argv prefix that runs a command with sa_dir (token, ca.crt, as
    FakeAPIServer.serviceaccount_dir() writes them) at a pod's fixed service account path,
    in a mount namespace of its own: a tmpfs over /run (where /var/run points) there only,
    the host's /run untouched. Needs root: the caller skips otherwise."""
    if shutil.which("unshare") is None:
        raise ServerError(f"unshare (util-linux) is missing; {INSTALL_HINT}")
    script = (f"mount -t tmpfs svcdns-test /run && mkdir -p {SERVICEACCOUNT} && "
              f"mount --bind {sa_dir} {SERVICEACCOUNT} && exec \"$@\"")
    return ["unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sh"]


# ----------------------------------------------------------------------------------------
# Manifests as a cluster's API server would hold them


def manifest_objects(paths):
    """The objects of manifest files and directories (YAML or JSON, Lists unpacked), as
    `kubectl apply` would put them in a cluster, each v1 Endpoints replaced by the
    EndpointSlices the EndpointSliceMirroring controller makes of it (one per subset and
    address family, notReadyAddresses as ready: false)."""
    import yaml  # PyYAML (python3-yaml), only where manifests go to a fake API server
    files = []
    for p in map(pathlib.Path, paths):
        files += sorted(f for f in p.rglob("*") if f.suffix in (".yaml", ".yml", ".json")) \
            if p.is_dir() else [p]
    out = []
    for f in files:
        for doc in yaml.safe_load_all(f.read_text()):
            for obj in doc.get("items", []) if doc and doc.get("kind", "").endswith("List") \
                    else [doc] if doc else []:
                out += mirrored_slices(obj) if obj["kind"] == "Endpoints" else [obj]
    return out


def mirrored_slices(endpoints):
    md = endpoints["metadata"]
    slices = []
    for i, subset in enumerate(endpoints.get("subsets") or []):
        for family, kind in ((4, "IPv4"), (6, "IPv6")):
            eps = [{"addresses": [a["ip"]], "conditions": {"ready": ready},
                    **({"hostname": a["hostname"]} if a.get("hostname") else {})}
                   for key, ready in (("addresses", True), ("notReadyAddresses", False))
                   for a in subset.get(key) or [] if (":" in a["ip"]) == (family == 6)]
            if eps:
                slices.append({
                    "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
                    "metadata": {"name": f"{md['name']}-{i}-{kind.lower()}",
                                 "namespace": md.get("namespace", "default"),
                                 "labels": {"kubernetes.io/service-name": md["name"]}},
                    "addressType": kind, "endpoints": eps, "ports": subset.get("ports", [])})
    return slices


# ----------------------------------------------------------------------------------------
# Queries and raw packets


def make_query(name, rdtype="A", rdclass="IN", **kw):
    return dns.message.make_query(name, rdtype, rdclass, **kw)


def send_query(msg, port, host="127.0.0.1", tcp=False, timeout=2.0, source=None):
    if tcp:
        return dns.query.tcp(msg, host, port=port, timeout=timeout, source=source,
                             one_rr_per_rrset=True)
    return dns.query.udp(msg, host, port=port, timeout=timeout, source=source,
                         one_rr_per_rrset=True)


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


def frame(msg):
    """A message (bytes or dnspython) with its two-octet TCP length prefix."""
    wire = msg.to_wire() if hasattr(msg, "to_wire") else msg
    return struct.pack("!H", len(wire)) + wire


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
        s.sendall(frame(data))
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
# --http: /metrics, and what the process holds


def http_get(port, path, timeout=5.0):
    """GET http://127.0.0.1:port/path: (status, body text); error statuses are returned."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=timeout) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def parse_metrics(text):
    """Prometheus text format into {sample: value}; a sample keeps its labels as written
    (`svcdns_dns_responses_total{rcode="NOERROR"}`)."""
    values = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            values[name] = float(value)
    return values


def http_request(port, path, method="GET"):
    """(status, headers, body) of an HTTP request to 127.0.0.1:port (--http)."""
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", method=method)
    try:
        with urllib.request.urlopen(req, timeout=3) as r:
            return r.status, r.headers, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read().decode()


def metrics(port):
    """The samples of /metrics by name (with labels), checked for its content type and for
    HELP and TYPE lines (promtool's first checks)."""
    status, headers, body = http_request(port, "/metrics")
    assert status == 200, f"/metrics: {status}\n{body}"
    assert headers["Content-Type"].startswith("text/plain; version=0.0.4")
    values = parse_metrics(body)
    for name in {re.sub(r"\{.*", "", n) for n in values}:
        assert f"# TYPE {name} " in body and f"# HELP {name} " in body, name
    return values


def rss_kib(pid):
    """VmRSS of a process, in KiB."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise ServerError(f"no VmRSS for pid {pid}")


def open_fds(pid):
    """How many file descriptors a process has open."""
    return len(os.listdir(f"/proc/{pid}/fd"))


def udp_drops(port):
    """Datagrams the kernel dropped so far on the UDP sockets bound to this local port (their
    receive buffers were full), from /proc/net/udp and udp6."""
    drops = 0
    for table in ("/proc/net/udp", "/proc/net/udp6"):
        with contextlib.suppress(OSError), open(table) as f:
            for line in f.readlines()[1:]:
                fields = line.split()
                if int(fields[1].rsplit(":", 1)[1], 16) == port:
                    drops += int(fields[-1])
    return drops


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
# dig and kdig


def dig(port, *args, tool="dig", host="127.0.0.1", netns=None):
    """dig or kdig (one try, 2 s) against host:port with args, inside netns when given;
    exit 0 is required. Returns the output."""
    if tool == "dig":
        argv = ["dig", "+time=2", "+tries=1"]
    else:
        argv = ["kdig", "+timeout=2", "+retry=0"]
    argv += ["-p", str(port), f"@{host}", *args]
    return run(argv, timeout=30, netns=netns).stdout


_STATUS = re.compile(r"status: (\w+)")
_FLAGS = re.compile(r"flags: ([\w ]*)", re.I)


def _dig_section(lines, title):
    """(owner, ttl, type, rdata) tuples of one section of dig/kdig output."""
    out = []
    if title not in lines:
        return out
    for line in lines[lines.index(title) + 1:]:
        if not line.strip() or line.startswith(";;"):
            break
        owner, ttl, _cls, rtype, rdata = line.split(None, 4)
        out.append((owner, int(ttl), rtype, rdata.strip()))
    return out


def parse_dig(text):
    """The first reply in dig/kdig output: a dict of status, flags (the header's, a set),
    answer and authority ([(owner, ttl, type, rdata), ...]) and the text itself."""
    m = _STATUS.search(text)
    f = _FLAGS.search(text)
    assert m and f, f"no status or flags in this dig output:\n{text}"
    lines = text.splitlines()
    return {"status": m.group(1), "flags": set(f.group(1).split()),
            "answer": _dig_section(lines, ";; ANSWER SECTION:"),
            "authority": _dig_section(lines, ";; AUTHORITY SECTION:"), "text": text}


def dig_reply(tool, port, name, rdtype="A", tcp=False, netns=None):
    """One query with dig (+nosearch) or kdig (which never applies a search list and has no
    such option), parsed by parse_dig."""
    args = (["+nosearch"] if tool == "dig" else []) + (["+tcp"] if tcp else [])
    return parse_dig(dig(port, *args, name, rdtype, tool=tool, netns=netns))


# ----------------------------------------------------------------------------------------
# NSD: a real upstream

WWW_A = "192.0.2.10"      # www.example.test, served by NSD
WWW_AAAA = "2001:db8::10"
BIG_COUNT = 100           # A records of big.example.test: far over 1232 octets
NSD_NETNS_PORT = 5300     # NSD's port inside a network namespace

EXAMPLE_ZONE = f"""$ORIGIN example.test.
$TTL 300
@       3600 IN SOA ns.example.test. hostmaster.example.test. 1 7200 1800 86400 60
@       IN NS   ns
ns      IN A    192.0.2.53
www     IN A    {WWW_A}
www     IN AAAA {WWW_AAAA}
www     IN MX   10 mail.example.test.
www     IN TXT  "hello from nsd"
mail    IN A    192.0.2.25
alias   IN CNAME www
""" + "".join(f"big     IN A    10.1.{i // 250}.{i % 250 + 1}\n" for i in range(BIG_COUNT))


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


class Nsd(Process):
    """NSD 4 serving EXAMPLE_ZONE on 127.0.0.1, unprivileged, from its temp dir: on a free
    port on the host, or on NSD_NETNS_PORT inside netns. start() waits until it answers
    www.example.test."""

    def __init__(self, netns=None, port=None):
        super().__init__("nsd", netns=netns)
        self.port = port or (NSD_NETNS_PORT if netns is not None else free_port())
        (self.dir / "example.test.zone").write_text(EXAMPLE_ZONE)
        (self.dir / "nsd.conf").write_text(nsd_conf(self.dir, self.port))

    def command(self):
        return [NSD, "-d", "-c", self.dir / "nsd.conf"]

    @property
    def addr(self):
        return f"127.0.0.1:{self.port}"

    def report(self, limit=8000):
        log = ""
        with contextlib.suppress(OSError):
            log = (self.dir / "nsd.log").read_text(errors="replace")
        return super().report(limit) + f"\n--- nsd.log ---\n{log[-limit:]}"

    def answers(self):
        p = run(["dig", "+short", "+time=1", "+tries=1", "-p", self.port, "@127.0.0.1",
                 "www.example.test", "A"], check=False, netns=self.netns)
        return p.stdout.split() == [WWW_A]

    def start(self):
        assert os.path.exists(NSD), f"nsd is not installed: {INSTALL_HINT}"
        self.spawn()
        self.wait_ready(self.answers, START_TIMEOUT, "an answer for www.example.test")
        return self


# ----------------------------------------------------------------------------------------
# Network namespaces and glibc's resolver


class Netns:
    """A network namespace made by network_namespace()."""

    def __init__(self, name):
        self.name = name

    def exec_argv(self, argv):
        return ["ip", "netns", "exec", self.name] + [str(a) for a in argv]

    def run(self, argv, check=False, timeout=60):
        return run(argv, check=check, timeout=timeout, netns=self)

    def pids(self):
        p = run(["ip", "netns", "pids", self.name], check=False)
        return [int(x) for x in p.stdout.split()]


@contextlib.contextmanager
def network_namespace(files):
    """A new netns with lo up; files ({"resolv.conf": text, ...}) go to /etc/netns/NAME,
    which `ip netns exec` bind-mounts over /etc. The test is skipped when this machine cannot
    make one (not root, or the kernel or a container refuses). On the way out: every process
    still in the namespace (all started by this test) is killed by pid, the namespace is
    deleted and /etc/netns/NAME removed (and /etc/netns, if this made it and it is empty)."""
    import pytest  # only here: the rest of the harness is plain Python

    if os.geteuid() != 0:
        pytest.skip("network namespaces need root")
    assert shutil.which("ip"), f"no `ip` command (iproute2): {INSTALL_HINT}"
    name = f"svcdns-test-{secrets.token_hex(4)}"
    etc_root = pathlib.Path("/etc/netns")
    made_root = not etc_root.exists()
    etc = etc_root / name
    p = run(["ip", "netns", "add", name], check=False)
    if p.returncode != 0:
        pytest.skip(f"this machine refuses a network namespace: {p.stderr.strip()}")
    ns = Netns(name)
    try:
        etc.mkdir(parents=True)
        for fname, text in files.items():
            (etc / fname).write_text(text)
        ns.run(["ip", "link", "set", "lo", "up"], check=True)
        yield ns
    finally:
        for pid in ns.pids():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        wait_until(lambda: not ns.pids(), STOP_TIMEOUT, interval=0.05)
        run(["ip", "netns", "del", name], check=False)
        shutil.rmtree(etc, ignore_errors=True)
        if made_root:
            with contextlib.suppress(OSError):
                etc_root.rmdir()
    assert name not in run(["ip", "netns", "list"]).stdout


def getent_ahosts(netns, name):
    """`getent ahosts NAME` in netns: (exit status, addresses, canonical name)."""
    p = netns.run(["getent", "ahosts", name], timeout=60)
    addrs, canon = set(), None
    for i, line in enumerate(p.stdout.splitlines()):
        fields = line.split()
        if not fields:
            continue
        addrs.add(fields[0])
        if i == 0 and len(fields) >= 3:
            canon = fields[2]
    return p.returncode, addrs, canon
