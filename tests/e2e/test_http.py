"""--http: /health, /ready and Prometheus /metrics on one port, from the real binary."""

import re
import socket
import urllib.error
import urllib.request

import pytest

import svcdns_e2e as e2e
from fake_upstream import FakeUpstream

MANIFEST = """apiVersion: v1
kind: Service
metadata: {name: web, namespace: default}
spec: {clusterIP: 10.96.0.20}
"""


def get(port, path, method="GET"):
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", method=method)
    try:
        with urllib.request.urlopen(req, timeout=3) as r:
            return r.status, r.headers, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read().decode()


def metrics(port):
    status, headers, body = get(port, "/metrics")
    assert status == 200
    assert headers["Content-Type"].startswith("text/plain; version=0.0.4")
    values = {}
    for line in body.splitlines():
        if line.startswith("#") or not line:
            continue
        name, value = line.rsplit(" ", 1)
        values[name] = float(value)
    # Every sample has HELP and TYPE lines (promtool's first checks).
    for name in {re.sub(r"\{.*", "", n) for n in values}:
        assert f"# TYPE {name} " in body and f"# HELP {name} " in body, name
    return values


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
