"""The per-query path allocates nothing: serving 2N queries costs exactly as many heap
allocations as serving N (valgrind's `total heap usage` counts every malloc, in libc and
in shared libraries too). Runs in the plain build; valgrind and ASan exclude each other."""

import os
import re
import shutil

import pytest

import svcdns_e2e as e2e
from fake_upstream import FakeUpstream

pytestmark = pytest.mark.skipif(os.environ.get("SVCDNS_SANITIZE") == "1",
                                reason="valgrind cannot run an ASan binary; the plain build runs this")

MANIFEST = """apiVersion: v1
kind: Service
metadata: {name: web, namespace: prod}
spec: {clusterIP: 10.96.0.20, ports: [{name: http, port: 80}]}
---
apiVersion: v1
kind: Service
metadata: {name: db, namespace: prod}
spec: {clusterIP: None, ports: [{name: pg, port: 5432}]}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: db-x, namespace: prod, labels: {kubernetes.io/service-name: db}}
addressType: IPv4
ports: [{name: pg, port: 5433}]
endpoints: [{addresses: [10.244.2.1], hostname: db-0}, {addresses: [10.244.2.2]}]
"""

# Hits, NODATA, NXDOMAIN, SRV with glue, pods, a short name through the search path, and an
# upstream name answered from the cache (the first round fills it; later rounds are hits).
QUERIES = [("web.prod.svc.local.", "A"), ("web.prod.svc.local.", "AAAA"),
           ("nope.prod.svc.local.", "A"), ("_pg._tcp.db.prod.svc.local.", "SRV"),
           ("10-1-2-3.prod.pod.local.", "A"), ("web.prod.", "A"), ("local.", "SOA"),
           ("www.example.test.", "A"), ("www.example.test.", "MX")]


def heap_allocs(tmp_path, n_rounds, upstream_port):
    manifest = tmp_path / "m.yaml"
    manifest.write_text(MANIFEST)
    log = tmp_path / f"valgrind-{n_rounds}.log"
    srv = e2e.Server([manifest], upstreams=[f"127.0.0.1:{upstream_port}"],
                     wrapper=["valgrind", f"--log-file={log}"], start_timeout=60,
                     stop_timeout=60, label=f"valgrind-{n_rounds}")
    with srv:  # on the way out: SIGTERM, and exit status 0 within 60 s
        for _ in range(n_rounds):
            for name, rdtype in QUERIES:
                srv.query(name, rdtype, timeout=5)
            srv.query("web.prod.svc.local.", "A", tcp=True, timeout=5)
    text = log.read_text()
    m = re.search(r"total heap usage: ([\d,]+) allocs", text)
    assert m, text
    assert "definitely lost: 0 bytes" in text or "All heap blocks were freed" in text, text
    return int(m.group(1).replace(",", ""))


def test_serving_twice_the_queries_allocates_nothing_more(tmp_path):
    if shutil.which("valgrind") is None:
        pytest.fail(f"valgrind is missing: {e2e.INSTALL_HINT}")
    up = FakeUpstream().start()
    try:
        small = heap_allocs(tmp_path, 25, up.port)
        large = heap_allocs(tmp_path, 50, up.port)
    finally:
        up.stop()
    # TCP connections cost one allocation each (a connection, not a query): 25 more here.
    assert large - small == 25, f"{small} allocs for 25 rounds, {large} for 50"
