"""--http: /health, /ready and Prometheus /metrics on one port, from the real binary."""

import multiprocessing
import re
import selectors
import socket
import time

import pytest

import svcdns_e2e as e2e
from fake_upstream import FakeUpstream

MANIFEST = """apiVersion: v1
kind: Service
metadata: {name: web, namespace: default}
spec: {clusterIP: 10.96.0.20}
"""


get = e2e.http_get
metrics = e2e.metrics


@pytest.fixture
def server(tmp_path):
    (tmp_path / "m.yaml").write_text(MANIFEST)
    http_port = e2e.free_port()
    with FakeUpstream() as up, \
            e2e.Server([tmp_path / "m.yaml"], upstreams=[up.addr],
                       extra_args=["--http", f"127.0.0.1:{http_port}"]) as srv:
        srv.http_port = http_port
        yield srv


def test_health_and_ready_answer_ok(server):
    assert get(server.http_port, "/health")[::2] == (200, "OK\n")
    assert get(server.http_port, "/ready")[::2] == (200, "OK\n")
    status, headers, body = get(server.http_port, "/health", method="HEAD")
    assert (status, headers["Content-Length"], body) == (200, "3", "")
    assert get(server.http_port, "/nope")[0] == 404
    assert get(server.http_port, "/metrics?name=x")[0] == 200


def test_metrics_count_what_was_served(server):
    before = metrics(server.http_port)
    assert before['svcdns_build_info{version="0.1.0"}'] == 1
    assert before["svcdns_zone_records"] > 0
    for _ in range(3):
        server.query("web.default.svc.local.")
    server.query("nope.default.svc.local.")
    server.query("web", rdtype="A")           # a short name through the search list
    for _ in range(2):
        server.query("www.example.test.")     # forwarded once, then from the cache
    after = metrics(server.http_port)
    assert after["svcdns_dns_requests_total"] - before["svcdns_dns_requests_total"] == 7
    assert (after['svcdns_dns_responses_total{rcode="NXDOMAIN"}']
            - before['svcdns_dns_responses_total{rcode="NXDOMAIN"}']) == 1
    assert after["svcdns_search_expanded_total"] - before["svcdns_search_expanded_total"] == 1
    assert after["svcdns_cache_hits_total"] - before["svcdns_cache_hits_total"] == 1
    assert after["svcdns_cache_misses_total"] - before["svcdns_cache_misses_total"] == 1
    assert after["svcdns_cache_entries"] >= 1
    up = [k for k in after if k.startswith("svcdns_forward_upstream_up{")]
    assert len(up) == 1 and after[up[0]] == 1


def test_an_http_port_in_use_is_a_clear_startup_error(tmp_path):
    (tmp_path / "m.yaml").write_text(MANIFEST)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        dns_port = e2e.free_port()
        r = e2e.run_cli(["--manifests", str(tmp_path / "m.yaml"), "--listen",
                         f"127.0.0.1:{dns_port}", *e2e.NO_UPSTREAM, "--http",
                         f"127.0.0.1:{port}"])
    assert r.returncode == 1
    assert f"--http 127.0.0.1:{port}: address already in use" in r.stderr


# --- Probes under attack (issue 11, item 1) -------------------------------------------------
#
# kubelet's httpGet probe opens a fresh connection, sends one HTTP/1.1 GET and gives up after
# timeoutSeconds (default 1 s). Another pod that reaches the --http port must not be able to
# make those probes fail by holding connections: idle ones, slowloris ones that trickle a byte
# every 500 ms, or complete requests whose responses it never reads, each reopened as soon as
# the server lets go of it. The attacker runs in its own process, as another pod would.

ATTACK_CONNS = 100  # well past the server's 64 connections
PROBES = 20
PROBE_TIMEOUT = 1.0  # kubelet's default timeoutSeconds
SLOW_INTERVAL = 0.5  # slowloris: one byte every 500 ms
SLOW_REQUEST = b"GET /health HTTP/1.1\r\nHost: svcdns\r\nX-Slow: "
UNREAD_REQUEST = b"GET /health HTTP/1.1\r\nHost: svcdns\r\n\r\n"
TCP_ESTABLISHED, TCP_CLOSE = 1, 7


def kubelet_probe(port, path):
    """One probe as kubelet sends it: None when it got 200 "OK\\n" within 1 s, else why not."""
    request = (f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
               "User-Agent: kube-probe/1.29\r\nAccept: */*\r\nConnection: close\r\n\r\n")
    deadline = time.monotonic() + PROBE_TIMEOUT
    data = b""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=PROBE_TIMEOUT) as s:
            s.sendall(request.encode())
            while True:  # like Go's client: done at Content-Length, not at the close
                head, sep, body = data.partition(b"\r\n\r\n")
                m = re.search(rb"\r\nContent-Length: (\d+)", head)
                if sep and m and len(body) >= int(m.group(1)):
                    break
                left = deadline - time.monotonic()
                if left <= 0:
                    return f"timeout after {len(data)} bytes"
                s.settimeout(left)
                chunk = s.recv(4096)
                if not chunk:
                    break
                data += chunk
    except OSError as e:
        return f"{type(e).__name__}: {e} after {len(data)} bytes"
    if not data.startswith(b"HTTP/1.1 200 OK\r\n") or not data.endswith(b"\r\n\r\nOK\n"):
        return f"response {data[:60]!r}"
    return None


def attack(port, mode, reopen, stop, connects, holding, hard_stop):
    """Keeps ATTACK_CONNS connections to port until stop is set (or hard_stop seconds pass).

    idle: connects and sends nothing. slow: sends SLOW_REQUEST and then one more header byte
    every SLOW_INTERVAL. unread: sends a complete request and never reads the response nor
    closes. With reopen, a connection the server closed is replaced at once (for unread: one
    it closed without a response, the only close it can see without reading)."""
    sel = selectors.DefaultSelector()
    conns = {}  # socket -> bytes of SLOW_REQUEST sent
    end = time.monotonic() + hard_stop

    def open_one():
        s = socket.socket()
        s.setblocking(False)
        try:
            s.connect(("127.0.0.1", port))
        except BlockingIOError:
            pass
        except OSError:
            s.close()
            return
        if mode != "unread":
            sel.register(s, selectors.EVENT_READ)
        conns[s] = 0
        connects.value += 1
        if mode == "unread":
            send_request(s)

    def send_request(s):
        """unread: the whole request once the connection is up (a full backlog delays it)."""
        try:
            conns[s] = s.send(UNREAD_REQUEST)
        except OSError:
            pass

    def drop(s):
        if mode != "unread":
            sel.unregister(s)
        del conns[s]
        s.close()

    def closed_by_server(s):
        """For unread: reset, or a FIN with nothing to read (closed without a response)."""
        state = s.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 1)[0]
        if state == TCP_CLOSE:
            return True
        if state == TCP_ESTABLISHED:
            return False
        return len(s.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) or b"") == 0

    for _ in range(ATTACK_CONNS):
        open_one()
    next_tick = time.monotonic()
    while not stop.is_set() and time.monotonic() < end:
        for key, _ in sel.select(timeout=0.05):
            s = key.fileobj
            try:
                gone = s.recv(4096) == b""
            except BlockingIOError:
                gone = False
            except OSError:
                gone = True
            if gone:
                drop(s)
                if reopen:
                    open_one()
        now = time.monotonic()
        if now >= next_tick:
            next_tick = now + (SLOW_INTERVAL if mode == "slow" else 0.05)
            for s in list(conns):
                if mode == "slow":
                    sent = conns[s]
                    byte = SLOW_REQUEST[sent:sent + 1] or b"a"
                    try:
                        conns[s] += s.send(byte)
                    except BlockingIOError:
                        pass
                    except OSError:
                        drop(s)
                        if reopen:
                            open_one()
                elif mode == "unread":
                    if conns[s] == 0:
                        send_request(s)
                    try:
                        gone = closed_by_server(s)
                    except BlockingIOError:
                        gone = False
                    except OSError:
                        gone = True
                    if gone:
                        drop(s)
                        if reopen:
                            open_one()
        holding.value = len(conns)
    for s in list(conns):
        drop(s)
    sel.close()


class Attacker:
    """attack() in a child process; stop() ends it (killed if it does not stop in 5 s)."""

    def __init__(self, port, mode, reopen):
        ctx = multiprocessing.get_context("fork")
        self.stop_event = ctx.Event()
        self.connects = ctx.Value("l", 0, lock=False)
        self.holding = ctx.Value("l", 0, lock=False)
        self.proc = ctx.Process(target=attack, daemon=True,
                                args=(port, mode, reopen, self.stop_event, self.connects,
                                      self.holding, 120))

    def __enter__(self):
        self.proc.start()
        deadline = time.monotonic() + 10
        while self.connects.value < ATTACK_CONNS and time.monotonic() < deadline:
            time.sleep(0.01)
        assert self.connects.value >= ATTACK_CONNS, "the attacker could not connect"
        return self

    def __exit__(self, *exc):
        self.stop_event.set()
        self.proc.join(5)
        if self.proc.is_alive():
            self.proc.kill()
            self.proc.join(5)
        return False


# (mode, reopen, seconds of attack before the first probe, seconds between probes). The
# reopening attacks first run past the 2 s read deadline, so the probes meet the reopened
# connections; the one that does not reopen is probed while its connections are still held.
ATTACKS = {
    "idle-held": ("idle", False, 0.3, 0.05),
    "idle-reopened": ("idle", True, 2.5, 0.1),
    "slowloris-reopened": ("slow", True, 2.5, 0.1),
    "unread-responses-reopened": ("unread", True, 0.5, 0.1),
}


@pytest.mark.parametrize("attack_name", list(ATTACKS))
def test_probes_succeed_while_connections_are_held(server, attack_name):
    mode, reopen, warmup, gap = ATTACKS[attack_name]
    port = server.http_port
    assert kubelet_probe(port, "/health") is None
    with Attacker(port, mode, reopen) as attacker:
        time.sleep(warmup)
        failures = []
        for i in range(PROBES):
            path = ("/health", "/ready")[i % 2]
            why = kubelet_probe(port, path)
            if why is not None:
                failures.append(f"probe {i} {path}: {why}")
            time.sleep(gap)
        held, connects = attacker.holding.value, attacker.connects.value
    assert not failures, (f"{len(failures)} of {PROBES} probes failed under {attack_name} "
                          f"(attacker holding {held}, {connects} connects):\n"
                          + "\n".join(failures))
    assert server.alive()
    assert kubelet_probe(port, "/health") is None
