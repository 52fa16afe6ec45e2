"""Fixtures of the svcdns end-to-end suite.

Run by tests/CMakeLists.txt as `/usr/bin/python3 -m pytest -q -p no:cacheprovider tests/e2e`
with SVCDNS_BIN (the binary) and SVCDNS_SOURCE (the repo root) in the environment.
Every server listens on 127.0.0.1 (and ::1) on a free port and is stopped with SIGTERM by the
fixture that started it; a failing test shows the stderr of the processes it used."""

import pytest

import svcdns_e2e as e2e
from fake_apiserver import FakeAPIServer

BULK_BIG = 120  # endpoints of bulk/big: far over 1232 octets of A records
BULK_MID = 60   # endpoints of bulk/mid: over 512 octets, under 1232


def pytest_generate_tests(metafunc):
    """A module that sets SERVER_SOURCES runs each test of the `server` fixture once per
    source: "manifests" (the files) and "api" (the same objects listed and watched from a
    fake API server)."""
    if "source" in metafunc.fixturenames:
        sources = getattr(metafunc.module, "SERVER_SOURCES", ("manifests",))
        metafunc.parametrize("source", sources, indirect=True, scope="module")


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: takes more than a few seconds (kept in the run)")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    e2e.CURRENT_TEST["nodeid"] = item.nodeid
    yield
    e2e.CURRENT_TEST["nodeid"] = None


def _processes_in(value):
    """The harness processes a fixture value is or holds (a tuple of them, say)."""
    if isinstance(value, e2e.Process):
        return [value]
    if isinstance(value, (tuple, list)):
        return [p for v in value for p in _processes_in(v)]
    return []


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if not rep.failed:
        return
    procs = []
    for value in getattr(item, "funcargs", {}).values():
        procs += [p for p in _processes_in(value) if p not in procs]
    procs += [p for p in e2e.ALL_PROCESSES if p.nodeid == item.nodeid and p not in procs]
    for p in procs:
        state = "running" if p.alive() else f"exited {p.proc.returncode if p.proc else '-'}"
        rep.sections.append((f"{p.label} [{state}] {p.describe()}", p.report()))


def pytest_sessionfinish(session, exitstatus):
    # the processes' stderr went into failure reports already; remove their temp dirs
    for p in e2e.ALL_PROCESSES:
        p.kill()
        p.cleanup()


def bulk_manifest(n_big=BULK_BIG, n_mid=BULK_MID):
    """Namespace bulk: headless `big` with n_big ready endpoints 10.244.100.x and headless
    `mid` with n_mid endpoints 10.244.101.x."""
    docs = []
    for name, n, third in (("big", n_big, 100), ("mid", n_mid, 101)):
        docs.append(f"""apiVersion: v1
kind: Service
metadata:
  name: {name}
  namespace: bulk
spec:
  clusterIP: None
  ports:
    - name: http
      protocol: TCP
      port: 80
""")
        eps = "".join(f"""  - addresses: ["10.244.{third}.{i}"]
    conditions:
      ready: true
""" for i in range(1, n + 1))
        docs.append(f"""apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: {name}-generated
  namespace: bulk
  labels:
    kubernetes.io/service-name: {name}
addressType: IPv4
ports:
  - name: http
    protocol: TCP
    port: 8080
endpoints:
{eps}""")
    return "---\n".join(docs)


@pytest.fixture(scope="session")
def bulk_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("bulk") / "bulk.yaml"
    path.write_text(bulk_manifest())
    return path


@pytest.fixture(scope="session")
def cluster_manifests(bulk_file):
    return [e2e.CLUSTER_DATA, bulk_file]


@pytest.fixture(scope="module")
def source(request):
    return getattr(request, "param", "manifests")


@pytest.fixture(scope="module")
def server(cluster_manifests, source):
    """The cluster data on 127.0.0.1 (and [::1] when available), defaults otherwise
    (--ttl 5, --pods insecure), one per test module: read from the manifests, or (source
    "api") listed from a fake API server that holds the same objects."""
    if source == "manifests":
        srv = e2e.Server(cluster_manifests, v6=e2e.have_ipv6_loopback(), label="cluster")
        srv.start()
        yield srv
        srv.stop()
        return
    api = FakeAPIServer()
    for obj in e2e.manifest_objects(cluster_manifests):
        api.create(obj)
    api.start()
    srv = e2e.Server(v6=e2e.have_ipv6_loopback(), label="cluster-api",
                     extra_args=["--kubeconfig", api.kubeconfig()])
    try:
        srv.start()
        srv.wait_synced()
        yield srv
        srv.stop()
    finally:
        srv.kill()
        api.stop()
