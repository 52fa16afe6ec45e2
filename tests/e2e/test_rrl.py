"""--rrl: a UDP burst over the rate is limited (every second limited reply slips out empty
with TC, the others are dropped), counted in /metrics and the query log; TCP is never
limited, and the prefix gets its answers again a second later."""

import socket
import time

import dns.flags
import dns.message
import dns.rcode

import svcdns_e2e as e2e

RATE = 20
BURST = 100
ECHO = "echo.default.svc.local."


def udp_burst(port, n):
    """Sends n queries for ECHO from one socket as fast as it can, then collects replies for
    a second: (answers, truncated, replies, seconds the sending took)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        s.connect(("127.0.0.1", port))
        start = time.monotonic()
        for i in range(n):
            q = dns.message.make_query(ECHO, "A")
            q.id = i
            s.send(q.to_wire())
        took = time.monotonic() - start
        s.settimeout(1.0)
        replies = []
        try:
            while True:
                replies.append(dns.message.from_wire(s.recv(4096)))
        except socket.timeout:
            pass
    assert len({r.id for r in replies}) == len(replies), "a query answered twice"
    full = [r for r in replies if r.answer and not r.flags & dns.flags.TC]
    tc = [r for r in replies if r.flags & dns.flags.TC]
    assert all(not r.answer and r.rcode() == dns.rcode.NOERROR for r in tc), tc
    return len(full), len(tc), len(replies), took


def test_burst_is_limited_with_slips_and_tcp_is_not(cluster_manifests):
    http = e2e.free_port()
    with e2e.Server(cluster_manifests, log_queries=True,
                    extra_args=["--rrl", RATE, "--http", f"127.0.0.1:{http}"]) as srv:
        time.sleep(1.1)  # the readiness probes' tokens come back
        full, tc, replies, took = udp_burst(srv.port, BURST)
        refill = int(took * RATE) + 1
        assert RATE <= full <= RATE + refill, (full, took)
        limited = BURST - full
        assert tc == limited // 2, (full, tc)  # slip 2: every second limited reply
        assert replies == full + tc
        m = e2e.metrics(http)
        assert m["svcdns_rrl_slipped_total"] == tc, m
        assert m["svcdns_rrl_dropped_total"] == limited - tc, m
        log = srv.query_log()
        assert sum(q.get("rrl") == "drop" for q in log) == limited - tc
        assert sum(q.get("rrl") == "slip" for q in log) == tc
        # The prefix is out of tokens for UDP; TCP is never limited.
        for _ in range(30):
            r = srv.query(ECHO, tcp=True)
            assert r.rcode() == dns.rcode.NOERROR and r.answer, r
        assert e2e.metrics(http)["svcdns_rrl_dropped_total"] == limited - tc
        # A second later UDP is answered again.
        time.sleep(1.0)
        r = srv.query(ECHO)
        assert r.answer and not r.flags & dns.flags.TC, r


def test_without_rrl_a_burst_is_answered(cluster_manifests):
    http = e2e.free_port()
    with e2e.Server(cluster_manifests, extra_args=["--http", f"127.0.0.1:{http}"]) as srv:
        full, tc, replies, _ = udp_burst(srv.port, BURST)
        assert (full, tc, replies) == (BURST, 0, BURST)
        assert "svcdns_rrl_dropped_total" not in e2e.metrics(http)


def test_rrl_flags_are_checked(tmp_path):
    manifests = tmp_path / "manifests"
    manifests.mkdir()
    p = e2e.run_cli(["--rrl", "2000000", "--check", "--manifests", manifests])
    assert p.returncode == 2 and '--rrl: "2000000" is not a number from 0 to 1000000' in p.stderr
    config = tmp_path / "svcdns.yaml"
    config.write_text("rrl: 50\nrrl-slip: 3\n")
    p = e2e.run_cli(["--config", config, "--check", "--manifests", manifests])
    assert p.returncode == 0, p.stderr
