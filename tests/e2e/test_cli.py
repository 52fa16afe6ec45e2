"""The command line (README, Command line): --check, --dump, --help, --version, usage errors,
--config with flags winning, broken manifests and a listen address in use."""

import ipaddress
import re
import socket

import dns.rcode
import pytest

import svcdns_e2e as e2e
from svcdns_e2e import assert_answer, records, run_cli, zone_lines

EXAMPLES = e2e.SOURCE / "examples"
BROKEN = e2e.DATA / "broken"
CIDR_ARGS = [a for c in e2e.SERVICE_CIDRS for a in ("--service-cidr", c)]
NO_UPSTREAM = list(e2e.NO_UPSTREAM)

# file -> the exact (line, col) of its error. Lines and columns are 1-based, at the start of
# the offending token: libyaml's problem mark for syntax errors, the value's scalar otherwise.
BROKEN_FILES = {
    "invalid-yaml.yaml": (8, 1),    # a tab in the indentation of `- name: http`
    "invalid-json.json": (4, 3),    # missing ',' before "metadata"
    "bad-ip.yaml": (8, 14),         # clusterIP: 10.96.0.256
    "bad-name.yaml": (5, 9),        # name: Foo_Bar
}
# The second `twin` Service: at its object (the document's mapping) or at its metadata.name;
# the message must name the first definition at the same kind of position.
DUP_FILE = "dup-service.yaml"
DUP_POSITIONS = {(13, 1): (2, 1), (16, 9): (5, 9)}


def error_line(stderr, path, line, col):
    pat = re.compile(r"^%s:%d:%d: error: \S.*$" % (re.escape(str(path)), line, col), re.M)
    return pat.search(stderr)


def services_count(text, n):
    return re.search(r"\b%d services?\b" % n, text) is not None


# --- --check ------------------------------------------------------------------------------


def test_check_examples():
    p = run_cli(["--check", "--manifests", str(EXAMPLES)] + NO_UPSTREAM)
    assert p.returncode == 0, p.stderr
    # echo (defined twice, the later wins) and gihyo
    assert services_count(p.stdout, 2), f"no '2 services' in the summary:\n{p.stdout}"


def test_check_kubectl_list():
    p = run_cli(["--check", "--manifests", str(e2e.DATA / "kubectl-list.yaml")]
                + NO_UPSTREAM)
    assert p.returncode == 0, p.stderr
    assert services_count(p.stdout, 3), f"no '3 services' in the summary:\n{p.stdout}"


def test_check_cluster_data():
    p = run_cli(["--check", "--manifests", str(e2e.CLUSTER_DATA)] + CIDR_ARGS
                + NO_UPSTREAM)
    assert p.returncode == 0, p.stderr
    # default.yaml: 8 services, infra.json: 1
    assert services_count(p.stdout, 9), f"no '9 services' in the summary:\n{p.stdout}"


def test_check_does_not_need_listen_or_bind():
    # a --listen address that is in use does not matter to --check: it binds nothing
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
        u.bind(("127.0.0.1", 0))
        port = u.getsockname()[1]
        p = run_cli(["--check", "--manifests", str(e2e.CLUSTER_DATA), "--listen",
                     f"127.0.0.1:{port}"] + CIDR_ARGS + NO_UPSTREAM)
    assert p.returncode == 0, p.stderr


@pytest.mark.parametrize("name", sorted(BROKEN_FILES))
def test_check_broken_manifest(name):
    path = BROKEN / name
    line, col = BROKEN_FILES[name]
    p = run_cli(["--check", "--manifests", str(path)] + CIDR_ARGS + NO_UPSTREAM)
    assert p.returncode == 1, f"exit {p.returncode}\n{p.stdout}\n{p.stderr}"
    assert error_line(p.stderr, path, line, col), \
        f"no '{path}:{line}:{col}: error: ...' line on stderr:\n{p.stderr}"


def check_dup_error(stderr, path):
    for (line, col), (first_line, _) in DUP_POSITIONS.items():
        m = error_line(stderr, path, line, col)
        if m:
            # the first definition, by line at least (FILE:LINE or FILE:LINE:COL)
            assert re.search(r"%s:%d\b" % (re.escape(str(path)), first_line), m.group(0)), \
                f"the error does not name the first definition ({path}:{first_line}): " \
                f"{m.group(0)}"
            return
    raise AssertionError(f"no '{path}:13:1: error:' (or :16:9:) line on stderr:\n{stderr}")


def test_check_duplicate_service_in_one_file():
    path = BROKEN / DUP_FILE
    p = run_cli(["--check", "--manifests", str(path)] + CIDR_ARGS + NO_UPSTREAM)
    assert p.returncode == 1, f"exit {p.returncode}\n{p.stdout}\n{p.stderr}"
    check_dup_error(p.stderr, path)


# --- starting with a broken manifest ----------------------------------------------------------


@pytest.mark.parametrize("name", sorted(BROKEN_FILES) + [DUP_FILE])
def test_start_with_broken_manifest_reports_it_and_serves_the_rest(name):
    """Availability first: the error is printed at its position, the broken object is left
    out, and the server starts (tests/e2e/test_manifest_errors.py has the rest)."""
    path = BROKEN / name
    with e2e.Server([path]) as srv:
        assert "module=manifests errors=" in srv.stderr()
    if name == DUP_FILE:
        check_dup_error(srv.stderr(), path)
    else:
        line, col = BROKEN_FILES[name]
        assert error_line(srv.stderr(), path, line, col), srv.stderr()


@pytest.mark.parametrize("name", sorted(BROKEN_FILES) + [DUP_FILE])
def test_strict_start_with_broken_manifest_fails(name):
    path = BROKEN / name
    srv = e2e.Server([path], extra_args=["--strict"])
    try:
        # start() raises when the process exits before it answers, or does not answer
        with pytest.raises(e2e.ServerError):
            srv.start()
    finally:
        srv.kill()
    assert srv.returncode == 1, f"exit status {srv.proc.returncode} (expected 1)\n{srv.stderr()}"
    if name == DUP_FILE:
        check_dup_error(srv.stderr(), path)
    else:
        line, col = BROKEN_FILES[name]
        assert error_line(srv.stderr(), path, line, col), srv.stderr()


# --- --dump -------------------------------------------------------------------------------


def dump(manifests, extra=()):
    args = ["--dump"]
    for m in manifests:
        args += ["--manifests", str(m)]
    p = run_cli(args + list(extra) + NO_UPSTREAM)
    assert p.returncode == 0, p.stderr
    return p.stdout


def find_rr(lines, name, rtype, rdata=None):
    """Lines whose fields are: name ttl IN type rdata..."""
    out = []
    for f in lines:
        if len(f) >= 5 and f[0].lower() == name and f[2] == "IN" and f[3] == rtype:
            if rdata is None or " ".join(f[4:]) == rdata:
                out.append(f)
    return out


def test_dump_cluster_data():
    lines = zone_lines(dump([e2e.CLUSTER_DATA], CIDR_ARGS))
    assert find_rr(lines, "echo.default.svc.local.", "A", "10.96.100.10"), lines
    rr = find_rr(lines, "echo.default.svc.local.", "A", "10.96.100.10")[0]
    assert rr[1] == "5"
    assert find_rr(lines, "dual.default.svc.local.", "AAAA", "fd00:10:96::20")
    assert find_rr(lines, "_http._tcp.echo.default.svc.local.", "SRV",
                   "0 100 80 echo.default.svc.local.")
    assert find_rr(lines, "gihyo.default.svc.local.", "CNAME", "gihyo.jp.")
    assert sorted(" ".join(f[4:]) for f in find_rr(lines, "headless.default.svc.local.", "A")) \
        == ["10.244.2.1", "10.244.2.2", "10.244.2.4"]
    soa = find_rr(lines, "local.", "SOA")
    assert len(soa) == 1, lines
    f = soa[0]
    assert f[4:6] == ["ns.dns.local.", "hostmaster.local."], f
    assert f[7:] == ["7200", "1800", "86400", "5"], f


def test_dump_ttl_flag():
    lines = zone_lines(dump([e2e.CLUSTER_DATA], CIDR_ARGS + ["--ttl", "42"]))
    rr = find_rr(lines, "echo.default.svc.local.", "A", "10.96.100.10")
    assert rr and rr[0][1] == "42", rr


def test_dump_examples_matches_server():
    out1 = dump([EXAMPLES])
    assert out1 == dump([EXAMPLES]), "--dump is not deterministic"
    rrs = find_rr(zone_lines(out1), "echo.default.svc.local.", "A")
    assert len(rrs) == 1, out1
    addr = rrs[0][4]
    assert ipaddress.ip_address(addr) in ipaddress.ip_network("10.96.0.0/12")
    with e2e.Server([EXAMPLES], service_cidrs=None) as srv:
        assert_answer(srv.query("echo.default.svc.local.", "A"), "A", [addr])


# --- --help, --version, usage -------------------------------------------------------------


HELP_FLAGS = ["--manifests", "--listen", "--cluster-domain", "--service-cidr", "--ttl", "--pods",
              "--reload-interval", "--workers", "--config", "--check", "--dump", "--log-level", "--help",
              "--version", "--kubernetes", "--kubeconfig"]


def test_help():
    p = run_cli(["--help"])
    assert p.returncode == 0, p.stderr
    missing = [f for f in HELP_FLAGS if not re.search(re.escape(f) + r"(?![\w-])", p.stdout)]
    assert not missing, f"--help does not mention {missing}:\n{p.stdout}"


def test_version():
    p = run_cli(["--version"])
    assert p.returncode == 0, p.stderr
    assert "svcdns" in p.stdout, p.stdout
    assert re.search(r"\b\d+\.\d+(\.\d+)?\b", p.stdout), p.stdout


@pytest.mark.parametrize("args", [["--no-such-flag"], ["--manifests", str(EXAMPLES), "--bogus"]])
def test_unknown_flag(args):
    p = run_cli(args)
    assert p.returncode == 2, f"exit {p.returncode}\n{p.stderr}"
    assert "--help" in p.stderr, p.stderr


@pytest.mark.parametrize("value", ["soon", "31d", "-1s", "1h30"])
def test_bad_reload_interval(value):
    p = run_cli(["--manifests", str(EXAMPLES), "--check", "--reload-interval", value])
    assert p.returncode == 1, f"exit {p.returncode}\n{p.stderr}"  # a bad value, as --serve-stale
    assert "--reload-interval" in p.stderr and "30s" in p.stderr, p.stderr


# --- --config -----------------------------------------------------------------------------


@pytest.fixture
def config_file(tmp_path):
    path = tmp_path / "svcdns.yaml"
    path.write_text("# svcdns configuration: long option names as keys\n"
                    "cluster-domain: cluster.local\n"
                    f"manifests: [{e2e.CLUSTER_DATA}]\n"
                    "ttl: 7\n")
    return path


def test_config_file(config_file):
    srv = e2e.Server([], cluster_domain=None, poll_zone="cluster.local",
                     extra_args=["--config", str(config_file)])
    with srv:
        qname = "echo.default.svc.cluster.local."
        assert_answer(srv.query(qname, "A"), "A", ["10.96.100.10"], ttl=7)
        assert srv.query("echo.default.svc.local.", "A").rcode() == dns.rcode.REFUSED


def test_config_flags_win(config_file):
    # flags before and after --config both beat the file
    srv = e2e.Server([], cluster_domain=None, poll_zone="local",
                     extra_args=["--ttl", "9", "--config", str(config_file),
                                 "--cluster-domain", "local"])
    with srv:
        assert_answer(srv.query("echo.default.svc.local.", "A"), "A", ["10.96.100.10"], ttl=9)
        # cluster.local is now a name inside local., not a zone of its own
        r = srv.query("echo.default.svc.cluster.local.", "A")
        assert r.rcode() == dns.rcode.NXDOMAIN, r
        soa = records(srv.query("local.", "SOA").answer, "SOA")
        assert soa and soa[0][2].minimum == 9


def test_config_check(config_file):
    p = run_cli(["--check", "--config", str(config_file)] + CIDR_ARGS + NO_UPSTREAM)
    assert p.returncode == 0, p.stderr
    assert services_count(p.stdout, 9), p.stdout


# --- listen address in use -------------------------------------------------------------------


def test_listen_address_in_use():
    srv = e2e.Server([e2e.CLUSTER_DATA])
    port = srv.port
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        udp.bind(("127.0.0.1", port))
        tcp.bind(("127.0.0.1", port))
        tcp.listen(1)
        srv.spawn()
        try:
            rc = srv.proc.wait(timeout=10)
        except Exception:  # noqa: BLE001
            rc = None
        srv.kill()
    finally:
        udp.close()
        tcp.close()
    assert rc == 1, f"exit status {rc} (expected 1)\n{srv.stderr()}"
    assert f"127.0.0.1:{port}" in srv.stderr(), srv.stderr()


# --- --manifest-cache ---------------------------------------------------------------------------


def test_a_restart_reads_unchanged_files_from_the_manifest_cache(tmp_path):
    """README, Manifests: clean, unchanged files are read back from --manifest-cache; a changed
    file is parsed again; the answers are the same either way."""
    d = tmp_path / "m"
    d.mkdir()
    for i in range(3):
        (d / f"f{i}.yaml").write_text(
            f"apiVersion: v1\nkind: Service\nmetadata: {{name: s{i}}}\n"
            f"spec: {{clusterIP: 10.96.7.{i + 1}}}\n")
    cache = tmp_path / "cache"
    args = ["--manifest-cache", cache]
    for round, want in ((0, "parsed=3 cached=0"), (1, "parsed=0 cached=3"),
                        (2, "parsed=1 cached=2")):
        if round == 2:
            (d / "f1.yaml").write_text(
                "apiVersion: v1\nkind: Service\nmetadata: {name: s1}\n"
                "spec: {clusterIP: 10.96.7.99}\n")
        with e2e.Server([d], extra_args=args) as srv:
            assert want in srv.stderr(), srv.stderr()
            r = srv.query("s1.default.svc.local.")
            assert e2e.rr_texts(r.answer, "A")[0].split()[-1] == (
                "10.96.7.99" if round == 2 else "10.96.7.2")
    # A damaged entry is a miss, never a crash or half a file.
    for entry in cache.iterdir():
        entry.write_bytes(entry.read_bytes()[:40])
    with e2e.Server([d], extra_args=args) as srv:
        assert "parsed=3 cached=0" in srv.stderr(), srv.stderr()
