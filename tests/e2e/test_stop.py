"""Stopping: the lameduck (--lameduck, default 5s as kubeadm's CoreDNS). On SIGTERM /ready says
503 at once, queries are answered until the duration is over, then svcdns exits 0; a second
SIGTERM, or SIGINT, exits at once."""

import signal
import time

import dns.rcode
import pytest

import svcdns_e2e as e2e

ECHO = "echo.default.svc.local."


def lameduck_server(manifests, lameduck, **kw):
    http = e2e.free_port()
    srv = e2e.Server(manifests, lameduck=lameduck,
                     extra_args=["--http", f"127.0.0.1:{http}"] + kw.pop("extra_args", []),
                     **kw)
    srv.http_port = http
    return srv


def wait_exit(srv, timeout):
    """(exit status, seconds waited), or pytest fails when it does not exit in time."""
    start = time.monotonic()
    try:
        status = srv.proc.wait(timeout=timeout)
    except Exception:  # noqa: BLE001 - reported below
        pytest.fail(f"svcdns still running {timeout} s after the signal\n{srv.report()}")
    return status, time.monotonic() - start


def test_sigterm_fails_ready_at_once_and_answers_until_the_lameduck_is_over(cluster_manifests):
    with lameduck_server(cluster_manifests, "2s") as srv:
        assert e2e.http_get(srv.http_port, "/ready")[0] == 200
        sent = time.monotonic()
        srv.proc.send_signal(signal.SIGTERM)
        assert e2e.wait_until(lambda: e2e.http_get(srv.http_port, "/ready")[0] == 503, 0.5), \
            srv.stderr()
        assert time.monotonic() - sent < 0.6
        assert e2e.http_get(srv.http_port, "/health")[0] == 200  # alive: no restart wanted
        answered = 0
        while time.monotonic() - sent < 1.6:
            for tcp in (False, True):
                r = srv.query(ECHO, tcp=tcp)
                assert r.rcode() == dns.rcode.NOERROR and r.answer, r
                answered += 1
            time.sleep(0.1)
        assert answered >= 10
        assert srv.proc.poll() is None, "exited before the lameduck was over"
        status, _ = wait_exit(srv, 3.0)
        elapsed = time.monotonic() - sent
        assert status == 0, srv.report()
        assert 1.9 <= elapsed <= 3.5, elapsed
        assert "event=lameduck seconds=2" in srv.stderr()
        assert 'event=stop reason="lameduck over"' in srv.stderr()


@pytest.mark.parametrize("second", [signal.SIGTERM, signal.SIGINT])
def test_a_second_sigterm_or_a_sigint_stops_at_once(cluster_manifests, second):
    with lameduck_server(cluster_manifests, "30s") as srv:
        srv.proc.send_signal(signal.SIGTERM)
        assert srv.wait_for_log("event=lameduck seconds=30"), srv.stderr()
        srv.proc.send_signal(second)
        status, waited = wait_exit(srv, 3.0)
        assert status == 0 and waited < 2.0, (status, waited, srv.report())


def test_the_default_lameduck_is_five_seconds(cluster_manifests):
    with lameduck_server(cluster_manifests, None) as srv:
        srv.proc.send_signal(signal.SIGTERM)
        assert srv.wait_for_log("event=lameduck seconds=5 "), srv.stderr()
        assert srv.query(ECHO).rcode() == dns.rcode.NOERROR
        srv.proc.send_signal(signal.SIGINT)  # not waiting the five seconds out
        assert wait_exit(srv, 3.0)[0] == 0


def test_lameduck_from_the_config_file_and_zero_stops_at_once(cluster_manifests, tmp_path):
    config = tmp_path / "svcdns.yaml"
    config.write_text("lameduck: 1s\n")
    with lameduck_server(cluster_manifests, None, extra_args=["--config", config]) as srv:
        srv.proc.send_signal(signal.SIGTERM)
        assert srv.wait_for_log("event=lameduck seconds=1 "), srv.stderr()
        status, waited = wait_exit(srv, 3.0)
        assert status == 0 and waited >= 0.5, waited
    with lameduck_server(cluster_manifests, "0") as srv:
        srv.proc.send_signal(signal.SIGTERM)
        status, waited = wait_exit(srv, 3.0)
        assert status == 0 and waited < 1.0, waited
        assert "event=lameduck" not in srv.stderr()


def test_lameduck_must_be_a_duration(tmp_path):
    p = e2e.run_cli(["--lameduck", "soon", "--check", "--manifests", tmp_path])
    assert p.returncode == 1
    assert '--lameduck: "soon" is not a duration' in p.stderr, p.stderr
