"""Several workers under load while the manifests change every 100-200 ms and /metrics is
scraped, all at once: UDP and TCP clients ask cluster names, short names, autopath walks and
names forwarded to a fake upstream (cache misses, hits and coalesced ones).

tests/run.sh runs this module against the ThreadSanitizer build (-DSANITIZE=thread) with
TSAN_OPTIONS=halt_on_error=1: a data race ends svcdns at once with TSan's exit code, so the
queries after it go unanswered and Server.stop() sees a status other than 0. Every e2e run
(plain and ASan+UBSan) runs it too, where it checks the answers under the same churn."""

import os
import random
import signal
import socket
import struct
import threading
import time

import dns.message
import dns.rcode
import dns.rdatatype

import svcdns_e2e as e2e
from fake_upstream import FakeUpstream

FILES = 3            # manifest files; each change rewrites one of them
WORKERS = 4
MIN_SECONDS = 4.0    # the load lasts at least this long ...
MIN_QUERIES = 3000   # ... and until this many queries were answered
CLIENTS = 4          # client threads, each with a UDP socket and a TCP connection
TIMEOUT = 5.0        # an unanswered query is lost after this long
UPSTREAM_A = "192.0.2.1"  # FakeUpstream's answer to every A query


def service_ip(k, version):
    return f"10.96.{k + 1}.{version % 250 + 1}"


def manifest(k, version):
    """File k: Service web-k (its address moves with version) and headless db-k with two
    endpoints; file 0 also holds an ExternalName to the upstream and the client's Pod (so
    that autopath runs for 127.0.0.1)."""
    ip = service_ip(k, version)
    text = f"""apiVersion: v1
kind: Service
metadata: {{name: web-{k}, namespace: default}}
spec: {{clusterIP: {ip}, ports: [{{name: http, port: 80}}]}}
---
apiVersion: v1
kind: Service
metadata: {{name: db-{k}, namespace: default}}
spec: {{clusterIP: None, ports: [{{name: pg, port: 5432}}]}}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: db-{k}-x
  namespace: default
  labels: {{kubernetes.io/service-name: db-{k}}}
addressType: IPv4
ports: [{{name: pg, port: 5432}}]
endpoints:
  - addresses: [10.244.{k}.{version % 250 + 1}]
  - addresses: [10.244.{k}.251]
"""
    if k == 0:
        text += """---
apiVersion: v1
kind: Service
metadata: {name: ext, namespace: default}
spec: {type: ExternalName, externalName: www.example.test}
---
apiVersion: v1
kind: Pod
metadata: {name: client, namespace: default}
status: {podIP: 127.0.0.1}
"""
    return text


class Manifests:
    """The manifest directory; every change replaces one file whole (written beside the
    directory, then renamed in, as editors and kubelet do). Remembers every address each
    Service has had."""

    def __init__(self, root):
        self.dir = root / "manifests"
        self.dir.mkdir()
        self.staging = root / "staging.yaml"
        self.versions = [0] * FILES
        self.seen = {k: {service_ip(k, 0)} for k in range(FILES)}
        self.lock = threading.Lock()
        for k in range(FILES):
            (self.dir / f"svc-{k}.yaml").write_text(manifest(k, 0))

    def change(self, k):
        with self.lock:
            self.versions[k] += 1
            self.seen[k].add(service_ip(k, self.versions[k]))
        self.staging.write_text(manifest(k, self.versions[k]))
        os.rename(self.staging, self.dir / f"svc-{k}.yaml")

    def addresses(self, k):
        with self.lock:
            return set(self.seen[k])


def check(name, kind, reply, files):
    """The reply must be the right one for this kind of name; returns an error or None."""
    msg = dns.message.from_wire(reply)
    rcode = msg.rcode()
    a = [rd.address for rrset in msg.answer if rrset.rdtype == dns.rdatatype.A for rd in rrset]
    cnames = [rrset for rrset in msg.answer if rrset.rdtype == dns.rdatatype.CNAME]
    if kind == "missing":
        ok = rcode == dns.rcode.NXDOMAIN and not msg.answer
    elif kind in ("web", "short"):
        k = int(name.split(".")[0].split("-")[1])
        ok = (rcode == dns.rcode.NOERROR and len(a) == 1 and a[0] in files.addresses(k)
              and len(cnames) == (kind == "short"))
    elif kind == "db":
        ok = rcode == dns.rcode.NOERROR and len(a) == 2
    else:  # forwarded, through an ExternalName, or at the end of an autopath walk
        ok = (rcode == dns.rcode.NOERROR and a == [UPSTREAM_A]
              and len(cnames) == (kind in ("ext", "autopath")))
    return None if ok else f"{kind} {name}: {dns.rcode.to_text(rcode)} {msg.answer}"


def pick_name(rng, n):
    k = rng.randrange(FILES)
    roll = rng.randrange(100)
    if roll < 30:
        return f"web-{k}.default.svc.local.", "web"
    if roll < 40:
        return f"web-{k}.", "short"
    if roll < 50:
        return f"db-{k}.default.svc.local.", "db"
    if roll < 55:
        return f"nope-{n}.kube-system.svc.local.", "missing"  # no such namespace
    if roll < 65:
        return "ext.default.svc.local.", "ext"
    if roll < 72:
        return f"w{n % 50}.example.test.default.svc.local.", "autopath"
    if roll < 85:
        return f"u{n}-{rng.randrange(1 << 30)}.example.test.", "forward"  # a cache miss
    return f"hot{n % 20}.example.test.", "forward"  # mostly cache hits and coalesced


class Client(threading.Thread):
    """Asks until told to stop: one query at a time, UDP or TCP at random; its TCP connection
    is reopened every 50 queries."""

    def __init__(self, port, files, index, stop):
        super().__init__(name=f"client-{index}")
        self.port, self.files, self.stop = port, files, stop
        self.rng = random.Random(index)
        self.index = index
        self.answered = 0
        self.errors = []
        self.tcp = None
        self.tcp_uses = 0

    def ask_tcp(self, wire):
        if self.tcp is None or self.tcp_uses >= 50:
            if self.tcp is not None:
                self.tcp.close()
            self.tcp = socket.create_connection(("127.0.0.1", self.port), timeout=TIMEOUT)
            self.tcp_uses = 0
        self.tcp_uses += 1
        self.tcp.sendall(e2e.frame(wire))
        return e2e.recv_frame(self.tcp)

    def run(self):
        udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        udp.settimeout(TIMEOUT)
        udp.connect(("127.0.0.1", self.port))
        n = self.index
        try:
            while not self.stop.is_set():
                n += CLIENTS
                name, kind = pick_name(self.rng, n)
                q = dns.message.make_query(name, "A")
                tcp = self.rng.random() < 0.4
                try:
                    if tcp:
                        reply = self.ask_tcp(q.to_wire())
                    else:
                        udp.send(q.to_wire())
                        reply = udp.recv(65535)
                        while struct.unpack("!H", reply[:2])[0] != q.id:  # a late one
                            reply = udp.recv(65535)
                except OSError as exc:
                    self.errors.append(f"{'tcp' if tcp else 'udp'} {name}: lost ({exc!r})")
                    self.tcp = None
                    continue
                if reply is None:
                    self.errors.append(f"tcp {name}: connection closed without a reply")
                    self.tcp = None
                    continue
                error = check(name, kind, reply, self.files)
                if error:
                    self.errors.append(error)
                self.answered += 1
        finally:
            udp.close()
            if self.tcp is not None:
                self.tcp.close()


def test_workers_answer_right_through_reloads_and_scrapes(tmp_path):
    files = Manifests(tmp_path)
    http_port = e2e.free_port()
    with FakeUpstream(honor_labels=False) as up, \
            e2e.Server([files.dir], upstreams=[up.addr], workers=WORKERS,
                       extra_args=["--http", f"127.0.0.1:{http_port}"],
                       label="concurrency") as srv:
        stop = threading.Event()
        clients = [Client(srv.port, files, i, stop) for i in range(CLIENTS)]
        scrapes, scrape_errors, changes = [], [], 0

        def scraper():
            while not stop.is_set():
                try:
                    for path in ("/health", "/ready"):
                        assert e2e.http_get(http_port, path, TIMEOUT) == (200, "OK\n"), path
                    scrapes.append(e2e.metrics(http_port))
                except (OSError, AssertionError) as exc:
                    scrape_errors.append(repr(exc))
                time.sleep(0.05)

        threads = clients + [threading.Thread(target=scraper, name="scraper")]
        for t in threads:
            t.start()
        rng = random.Random(7)
        start = time.monotonic()
        try:
            while (time.monotonic() - start < MIN_SECONDS
                   or sum(c.answered for c in clients) < MIN_QUERIES):
                assert time.monotonic() - start < 300, "the load did not finish in 5 minutes"
                assert srv.alive(), "svcdns died under load"
                files.change(rng.randrange(FILES))
                # The change event's 200 ms debounce starts again at every change, so at
                # this pace only SIGHUP reloads while the load runs.
                srv.proc.send_signal(signal.SIGHUP)
                changes += 1
                time.sleep(rng.uniform(0.1, 0.2))
        finally:
            stop.set()
            for t in threads:
                t.join(2 * TIMEOUT)
        answered = sum(c.answered for c in clients)
        errors = [e for c in clients for e in c.errors]
        assert not errors, f"{len(errors)} of {answered + len(errors)} queries: {errors[:10]}"
        assert not scrape_errors, scrape_errors[:5]
        assert answered >= MIN_QUERIES
        # The counters only grow, scrape after scrape, and the last one saw the reloads.
        assert len(scrapes) >= 10, f"only {len(scrapes)} scrapes"
        for key in ("svcdns_dns_requests_total", "svcdns_reload_total",
                    "svcdns_cache_hits_total", "svcdns_forward_requests_total"):
            series = [s[key] for s in scrapes]
            assert series == sorted(series), f"{key} went back: {series}"
        final = e2e.metrics(http_port)
        assert final["svcdns_dns_requests_total"] >= answered
        assert final["svcdns_reload_failed_total"] == 0
        assert final["svcdns_reload_total"] >= changes // 2, (changes, final)
    # Server.__exit__ required exit status 0 after SIGTERM: under TSan, no race was reported.


POD_MANIFEST = """apiVersion: v1
kind: Pod
metadata: {name: client, namespace: default}
status: {podIP: 10.244.7.7}
"""


def test_an_unchanged_pod_stays_answered_while_its_file_reloads(tmp_path):
    """With --pods verified, a Pod's record is answered from the store's pod addresses. A
    reload that reads the same Pod again must not take it away for a moment: four clients ask
    for it while its file is read again every 20 ms, and every answer must be its address."""
    mdir = tmp_path / "manifests"
    mdir.mkdir()
    (mdir / "pod.yaml").write_text(POD_MANIFEST)
    name = "10-244-7-7.default.pod.local."
    with e2e.Server([mdir], pods="verified", workers=WORKERS, label="pod-reload") as srv:
        stop = threading.Event()
        wrong, asked = [], [0] * CLIENTS

        def ask(index):
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                s.settimeout(TIMEOUT)
                s.connect(("127.0.0.1", srv.port))
                while not stop.is_set():
                    q = dns.message.make_query(name, "A")
                    s.send(q.to_wire())
                    reply = dns.message.from_wire(s.recv(65535))
                    asked[index] += 1
                    a = [rd.address for rrset in reply.answer for rd in rrset]
                    if reply.rcode() != dns.rcode.NOERROR or a != ["10.244.7.7"]:
                        wrong.append((dns.rcode.to_text(reply.rcode()), a))

        threads = [threading.Thread(target=ask, args=(i,)) for i in range(CLIENTS)]
        for t in threads:
            t.start()
        try:
            deadline = time.monotonic() + MIN_SECONDS
            while time.monotonic() < deadline:
                srv.proc.send_signal(signal.SIGHUP)
                time.sleep(0.02)
        finally:
            stop.set()
            for t in threads:
                t.join(2 * TIMEOUT)
        assert not wrong, f"{len(wrong)} of {sum(asked)} answers wrong: {wrong[:5]}"
        assert "module=reload trigger=sighup" in srv.stderr()
