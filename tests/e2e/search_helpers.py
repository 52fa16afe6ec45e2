"""Helpers of tests/e2e/test_search.py: the search path, end to end.

svcdns on host loopback for dig/kdig, and a throw-away network namespace in which glibc's
own resolver (getent) talks to svcdns on 127.0.0.1:53 with an ndots:5 resolv.conf, and
svcdns forwards to NSD on 127.0.0.1:5300. Everything started here is stopped by whoever
started it; the namespace, /etc/netns/NAME and the temp dirs are removed even on failure.

SVCDNS_BIN (set by ctest) is the binary under test; without it, build/svcdns."""

import contextlib
import os
import pathlib
import re
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time

import dns.message
import dns.name
import dns.query

import svcdns_e2e as e2e

BIN = e2e.BIN

START_TIMEOUT = 10.0  # the binary may be an ASan build
STOP_TIMEOUT = 5.0
NSD_PORT = 5300

# --- the cluster the tests serve ------------------------------------------------------------

ECHO_IP = "10.96.100.10"        # echo.default.svc.local
OTHER_ECHO_IP = "10.96.200.10"  # echo.other.svc.local
EXAMPLE_IP = "10.96.100.30"     # example.default.svc.local
WWW_A = "192.0.2.10"            # www.example.test, served by NSD
WWW_AAAA = "2001:db8::10"

CLUSTER_MANIFEST = f"""\
apiVersion: v1
kind: Service
metadata: {{name: echo, namespace: default}}
spec:
  clusterIP: {ECHO_IP}
  ports: [{{name: http, protocol: TCP, port: 80}}]
---
apiVersion: v1
kind: Service
metadata: {{name: example, namespace: default}}
spec:
  clusterIP: {EXAMPLE_IP}
  ports: [{{name: http, protocol: TCP, port: 80}}]
---
apiVersion: v1
kind: Service
metadata: {{name: gihyo, namespace: default}}
spec:
  type: ExternalName
  externalName: gihyo.jp
---
apiVersion: v1
kind: Service
metadata: {{name: echo, namespace: other}}
spec:
  clusterIP: {OTHER_ECHO_IP}
  ports: [{{name: http, protocol: TCP, port: 80}}]
"""


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
    directory = pathlib.Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "cluster.yaml").write_text(CLUSTER_MANIFEST)
    if with_pod:
        (directory / "pod.yaml").write_text(client_pod_manifest(pod_ip))
    return directory


# --- the binary ----------------------------------------------------------------------------


def require_binary():
    assert os.path.isfile(BIN) and os.access(BIN, os.X_OK), \
        f"svcdns binary not found at {BIN} (set SVCDNS_BIN)"


def no_upstream_args():
    """`--upstream none`: nothing is forwarded."""
    return list(e2e.NO_UPSTREAM)


def run_cli(args, timeout=30):
    require_binary()
    return subprocess.run([BIN] + list(args), stdin=subprocess.DEVNULL, capture_output=True,
                          text=True, timeout=timeout)


def free_port():
    """A port free for UDP and TCP on 127.0.0.1."""
    for _ in range(100):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as t, \
                socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
            t.bind(("127.0.0.1", 0))
            port = t.getsockname()[1]
            try:
                u.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise AssertionError("no free port on 127.0.0.1")


def poll(predicate, timeout, what, interval=0.02):
    """Calls predicate until it returns a true value (returned) or timeout seconds pass."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


# --- processes -----------------------------------------------------------------------------


class Process:
    """A child with stdout and stderr in temp files; stop() ends it by its pid."""

    def __init__(self, argv, label):
        self.argv = [str(a) for a in argv]
        self.label = label
        self.proc = None
        self.dir = tempfile.mkdtemp(prefix=f"svcdns-search-{label}-")
        self.stderr_path = pathlib.Path(self.dir) / "stderr"
        self.stdout_path = pathlib.Path(self.dir) / "stdout"

    def spawn(self):
        with open(self.stderr_path, "wb") as err, open(self.stdout_path, "wb") as out:
            self.proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=out,
                                         stderr=err)
        return self

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def stderr(self):
        try:
            return self.stderr_path.read_text(errors="replace")
        except OSError:
            return ""

    def describe(self):
        return f"{self.label}: {' '.join(self.argv)}\n--- stderr ---\n{self.stderr()[-8000:]}"

    def stop(self):
        """SIGTERM, then SIGKILL after STOP_TIMEOUT. Returns the exit status."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode

    def cleanup(self):
        shutil.rmtree(self.dir, ignore_errors=True)


class Svcdns(Process):
    """svcdns with --log-queries, on host loopback (port free) or inside a netns (port 53)."""

    def __init__(self, manifests, extra_args=(), netns=None, port=None, label="svcdns"):
        self.port = port or (53 if netns else free_port())
        argv = [BIN, "--listen", f"127.0.0.1:{self.port}", "--workers", "1", "--log-queries"]
        for m in manifests:
            argv += ["--manifests", m]
        argv += list(extra_args)
        if netns:
            argv = ["ip", "netns", "exec", netns] + argv
        require_binary()
        super().__init__(argv, label)

    def start(self):
        self.spawn()
        # The "serving" line is logged once every socket is bound.
        try:
            poll(lambda: self.proc.poll() is not None or " module=main serving " in self.stderr(),
                 START_TIMEOUT, "svcdns to listen")
        except AssertionError:
            self.stop()
            raise AssertionError(f"svcdns did not start\n{self.describe()}") from None
        assert self.alive(), f"svcdns exited with {self.proc.returncode}\n{self.describe()}"
        return self

    def stop_cleanly(self):
        rc = self.stop()
        assert rc == 0, f"svcdns exited with {rc} after SIGTERM (expected 0)\n{self.describe()}"

    def query_log(self):
        """The query log so far: one dict per `module=query` line, in order."""
        return [parse_log_line(line) for line in self.stderr().splitlines()
                if " module=query " in line]

    def query(self, name, rdtype="A", tcp=False, source=None, timeout=2.0):
        msg = dns.message.make_query(name, rdtype)
        if tcp:
            return dns.query.tcp(msg, "127.0.0.1", port=self.port, timeout=timeout,
                                 source=source)
        return dns.query.udp(msg, "127.0.0.1", port=self.port, timeout=timeout, source=source)


_KV = re.compile(r"(\w+)=(\S+)")


def parse_log_line(line):
    return dict(_KV.findall(line))


@contextlib.contextmanager
def running(server):
    """Starts server, yields it, stops it; a clean exit is required unless the body failed."""
    try:
        server.start()
        yield server
    except BaseException:
        server.stop()
        print(server.describe())  # pytest shows it with the failure
        server.cleanup()
        raise
    else:
        try:
            server.stop_cleanly()
        finally:
            server.cleanup()


# --- dig and kdig ------------------------------------------------------------------------------

_STATUS = re.compile(r"status: (\w+)")
_FLAGS = re.compile(r"flags: ([\w ]*)", re.I)


def _section(lines, title):
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


def dig_full(tool, port, name, rdtype="A", tcp=False, netns=None):
    """dig (with +nosearch) or kdig (which never applies a search list and has no such
    option) against 127.0.0.1:port, inside netns when given. Returns a dict: status, flags
    (a set), answer and authority ([(owner, ttl, type, rdata), ...])."""
    if tool == "dig":
        argv = ["dig", "+nosearch", "+time=2", "+tries=1"]
    else:
        argv = ["kdig", "+timeout=2", "+retry=0"]
    if tcp:
        argv.append("+tcp")
    argv += ["-p", str(port), "@127.0.0.1", name, rdtype]
    if netns is not None:
        argv = netns.exec_argv(argv)
    p = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                       timeout=20)
    assert p.returncode == 0, f"{' '.join(argv)}: exit {p.returncode}\n{p.stdout}{p.stderr}"
    m = _STATUS.search(p.stdout)
    f = _FLAGS.search(p.stdout)
    assert m and f, f"no status or flags in the output of {' '.join(argv)}:\n{p.stdout}"
    lines = p.stdout.splitlines()
    return {"status": m.group(1), "flags": set(f.group(1).split()),
            "answer": _section(lines, ";; ANSWER SECTION:"),
            "authority": _section(lines, ";; AUTHORITY SECTION:"), "text": p.stdout}


def dig_tool(tool, server, name, rdtype="A", tcp=False):
    """(status, answer) of dig_full against server."""
    r = dig_full(tool, server.port, name, rdtype, tcp)
    return r["status"], r["answer"]


def wait_for_upstream_query(sock, name, timeout=START_TIMEOUT):
    """Reads datagrams sent to sock (a fake upstream that never answers) until a query for
    name arrives; others (svcdns's loop-check probes) are skipped."""
    deadline = time.monotonic() + timeout
    want = dns.name.from_text(name)
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"no upstream query for {name} within {timeout} s")
        sock.settimeout(left)
        try:
            data = sock.recv(65535)
        except socket.timeout:
            continue
        try:
            msg = dns.message.from_wire(data)
        except Exception:  # noqa: BLE001 - not a DNS query: ignore it
            continue
        if msg.question and msg.question[0].name == want:
            return msg


# --- the network namespace ---------------------------------------------------------------------


def run(argv, check=True, timeout=30):
    p = subprocess.run([str(a) for a in argv], stdin=subprocess.DEVNULL, capture_output=True,
                       text=True, timeout=timeout)
    if check:
        assert p.returncode == 0, f"{' '.join(map(str, argv))}: exit {p.returncode}\n" \
                                  f"{p.stdout}{p.stderr}"
    return p


def netns_unavailable_reason():
    """Why this machine cannot make a network namespace, or None when it can."""
    if os.geteuid() != 0:
        return "network namespaces need root"
    return None


class Netns:
    def __init__(self, name):
        self.name = name

    def exec_argv(self, argv):
        return ["ip", "netns", "exec", self.name] + [str(a) for a in argv]

    def run(self, argv, check=False, timeout=60):
        return run(self.exec_argv(argv), check=check, timeout=timeout)

    def pids(self):
        p = run(["ip", "netns", "pids", self.name], check=False)
        return [int(x) for x in p.stdout.split()]


@contextlib.contextmanager
def network_namespace(files):
    """A new netns with lo up; files ({"resolv.conf": text, ...}) go to /etc/netns/NAME,
    which `ip netns exec` bind-mounts over /etc. On the way out: every process still in the
    namespace (all started by this test) is killed by pid, the namespace is deleted and
    /etc/netns/NAME removed (and /etc/netns, if this made it and it is empty)."""
    name = f"svcdns-test-{secrets.token_hex(4)}"
    etc_root = pathlib.Path("/etc/netns")
    made_root = not etc_root.exists()
    etc = etc_root / name
    p = run(["ip", "netns", "add", name], check=False)
    if p.returncode != 0:
        import pytest  # only here: the helpers are plain Python otherwise
        pytest.skip(f"cannot create a network namespace: {p.stderr.strip()}")
    ns = Netns(name)
    try:
        etc.mkdir(parents=True)
        for fname, text in files.items():
            (etc / fname).write_text(text)
        run(ns.exec_argv(["ip", "link", "set", "lo", "up"]))
        yield ns
    finally:
        for pid in ns.pids():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(AssertionError):
            poll(lambda: not ns.pids(), STOP_TIMEOUT, f"the processes in {name} to end",
                 interval=0.05)
        run(["ip", "netns", "del", name], check=False)
        shutil.rmtree(etc, ignore_errors=True)
        if made_root:
            with contextlib.suppress(OSError):
                etc_root.rmdir()
    assert name not in run(["ip", "netns", "list"]).stdout


# --- NSD: the upstream -----------------------------------------------------------------------

EXAMPLE_ZONE = f"""\
$ORIGIN example.test.
$TTL 300
@       IN SOA ns.example.test. hostmaster.example.test. 1 3600 900 604800 300
@       IN NS  ns
ns      IN A   127.0.0.1
www     IN A   {WWW_A}
www     IN AAAA {WWW_AAAA}
"""


class Nsd(Process):
    """NSD serving example.test on 127.0.0.1:5300 in netns, unprivileged in a temp dir (the
    config of svcdns_e2e.nsd_conf)."""

    def __init__(self, netns, port=NSD_PORT):
        super().__init__([], "nsd")
        self.netns = netns
        self.port = port
        d = pathlib.Path(self.dir)
        (d / "example.test.zone").write_text(EXAMPLE_ZONE)
        (d / "nsd.conf").write_text(e2e.nsd_conf(d, port))
        nsd = shutil.which("nsd") or "/usr/sbin/nsd"
        self.argv = netns.exec_argv([nsd, "-d", "-c", d / "nsd.conf"])

    def describe(self):
        log = ""
        with contextlib.suppress(OSError):
            log = (pathlib.Path(self.dir) / "nsd.log").read_text(errors="replace")
        return super().describe() + f"\n--- nsd.log ---\n{log[-4000:]}"

    def start(self):
        self.spawn()

        def answers():
            if self.proc.poll() is not None:
                raise AssertionError(f"nsd exited with {self.proc.returncode}\n"
                                     f"{self.describe()}")
            p = self.netns.run(["dig", "+short", "+time=1", "+tries=1", "-p", self.port,
                                "@127.0.0.1", "www.example.test", "A"])
            return p.stdout.split() == [WWW_A]

        try:
            poll(answers, START_TIMEOUT, "nsd to answer www.example.test", interval=0.05)
        except AssertionError:
            self.stop()
            self.cleanup()
            raise
        return self


# --- getent ----------------------------------------------------------------------------------


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
