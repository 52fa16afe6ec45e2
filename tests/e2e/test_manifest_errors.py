"""Availability first (README, Manifests): an object with an error is reported as
FILE:LINE:COL, left out and counted, and everything else is served; a file that does not
parse on reload keeps its last good objects while the other files update; --check exits 1 on
any error and --strict refuses to start with one. What loads is what the API server accepts
(tests/zones/test_manifest.c cites each rule)."""

import dns.rcode
import pytest

import svcdns_e2e as e2e


def service(name, ip, ns="default"):
    return (f"---\napiVersion: v1\nkind: Service\nmetadata:\n  name: {name}\n  namespace: {ns}\n"
            f"spec:\n  clusterIP: {ip}\n")


def address(srv, name):
    r = srv.query(name)
    return r.rcode(), [t.split()[-1] for t in e2e.rr_texts(r.answer, "A")]


@pytest.fixture
def many_with_one_bad(tmp_path):
    """500 Services in one List-free file, number 250 with a clusterIP that is no address."""
    text = "".join(service(f"s{i}", f"10.96.{i // 250}.{i % 250 + 1}") for i in range(500))
    text = text.replace("clusterIP: 10.96.1.1\n", "clusterIP: 10.96.1.300\n")
    path = tmp_path / "many.yaml"
    path.write_text(text)
    return path


def bad_line(path):
    return next(n for n, line in enumerate(path.read_text().splitlines(), 1)
                if "10.96.1.300" in line)


def test_one_bad_object_costs_only_itself(many_with_one_bad):
    http = e2e.free_port()
    with e2e.Server([many_with_one_bad], extra_args=["--http", f"127.0.0.1:{http}"]) as srv:
        err = srv.stderr()
        where = f"{many_with_one_bad}:{bad_line(many_with_one_bad)}:14: error: spec.clusterIP"
        assert where in err, err
        assert "write an IPv4 or IPv6 address" in err
        assert "errors=1 objects_left_out=1" in err
        assert address(srv, "s250.default.svc.local.")[0] == dns.rcode.NXDOMAIN
        for i in (0, 249, 251, 499):
            assert address(srv, f"s{i}.default.svc.local.") == (
                dns.rcode.NOERROR, [f"10.96.{i // 250}.{i % 250 + 1}"])
        m = e2e.metrics(http)
        assert m["svcdns_manifest_errors"] == 1
        assert m["svcdns_manifest_errors_total"] == 1
        assert m["svcdns_manifest_objects_invalid"] == 1


def test_check_reports_every_error_and_exits_1(many_with_one_bad):
    p = e2e.run_cli(["--check", "--manifests", many_with_one_bad])
    assert p.returncode == 1, p.stdout + p.stderr
    assert f"{many_with_one_bad}:{bad_line(many_with_one_bad)}:14: error:" in p.stderr
    assert "manifests loaded with errors: 1 files; 499 services" in p.stdout
    assert "1 error (above): 1 object with errors left out, everything else served" in p.stdout


def test_strict_refuses_to_start_with_any_error(many_with_one_bad):
    p = e2e.run_cli(["--strict", "--manifests", many_with_one_bad, "--listen",
                     f"127.0.0.1:{e2e.free_port()}", "--upstream", "none"])
    assert p.returncode == 1, p.stdout + p.stderr
    assert "1 error in the manifests; --strict: nothing was served" in p.stderr
    ok = many_with_one_bad.parent / "ok.yaml"
    ok.write_text(service("fine", "10.96.9.9"))
    assert e2e.run_cli(["--strict", "--check", "--manifests", ok]).returncode == 0


def test_a_reload_where_one_of_three_files_breaks(tmp_path):
    d = tmp_path / "m"
    d.mkdir()
    for name, ip in (("a", "10.96.0.1"), ("b", "10.96.0.2"), ("c", "10.96.0.3")):
        (d / f"{name}.yaml").write_text(service(name, ip))
    http = e2e.free_port()
    with e2e.Server([d], extra_args=["--http", f"127.0.0.1:{http}"]) as srv:
        before = e2e.metrics(http)
        # One change breaks b.yaml (an editor mid-save) and changes a.yaml and c.yaml.
        (d / "b.yaml").write_text("apiVersion: v1\nkind: Service\nmetadata: {name: b2\n")
        (d / "a.yaml").write_text(service("a", "10.96.1.1"))
        (d / "c.yaml").write_text(service("c2", "10.96.1.3"))
        assert srv.wait_for_log("a file that does not parse keeps its last good objects", 5)
        e2e.wait_until(lambda: address(srv, "c2.default.svc.local.")[1] == ["10.96.1.3"], 5)
        assert address(srv, "a.default.svc.local.") == (dns.rcode.NOERROR, ["10.96.1.1"])
        assert address(srv, "c2.default.svc.local.") == (dns.rcode.NOERROR, ["10.96.1.3"])
        assert address(srv, "c.default.svc.local.")[0] == dns.rcode.NXDOMAIN
        assert address(srv, "b.default.svc.local.") == (dns.rcode.NOERROR, ["10.96.0.2"])
        assert f"{d / 'b.yaml'}: warning: the file does not parse; its objects as last read " \
               "are served until it does" in srv.stderr()
        m = e2e.metrics(http)
        failed = m["svcdns_reload_failed_total"] - before["svcdns_reload_failed_total"]
        assert failed >= 1  # the three writes may take one reload or a few
        assert m["svcdns_manifest_errors"] >= 1
        # Repaired: b.yaml's new content replaces the old, and the errors are gone.
        (d / "b.yaml").write_text(service("b2", "10.96.1.2"))
        e2e.wait_until(lambda: address(srv, "b2.default.svc.local.")[1] == ["10.96.1.2"], 5)
        assert address(srv, "b.default.svc.local.")[0] == dns.rcode.NXDOMAIN
        assert e2e.wait_until(lambda: e2e.metrics(http)["svcdns_manifest_errors"] == 0, 5)


def test_strict_reload_changes_nothing_until_every_file_is_good(tmp_path):
    d = tmp_path / "m"
    d.mkdir()
    (d / "a.yaml").write_text(service("a", "10.96.0.1"))
    (d / "b.yaml").write_text(service("b", "10.96.0.2"))
    with e2e.Server([d], extra_args=["--strict"]) as srv:
        (d / "b.yaml").write_text(service("b", "10.96.0.x"))
        (d / "a.yaml").write_text(service("a", "10.96.1.1"))
        assert srv.wait_for_log("--strict: kept serving the last good data", 5), srv.stderr()
        assert address(srv, "a.default.svc.local.") == (dns.rcode.NOERROR, ["10.96.0.1"])
        (d / "b.yaml").write_text(service("b", "10.96.1.2"))
        e2e.wait_until(lambda: address(srv, "b.default.svc.local.")[1] == ["10.96.1.2"], 5)
        assert address(srv, "a.default.svc.local.") == (dns.rcode.NOERROR, ["10.96.1.1"])


def test_stated_addresses_are_served_and_service_cidrs_allocate(tmp_path):
    """--service-cidr is only where svcdns allocates; ServiceCIDR objects add ranges."""
    path = tmp_path / "m.yaml"
    path.write_text(service("eks", "10.100.0.10") + service("gke", "34.118.224.10") +
                    "---\napiVersion: v1\nkind: Service\nmetadata: {name: auto}\n"
                    "spec: {ports: [{port: 80}]}\n"
                    "---\napiVersion: networking.k8s.io/v1\nkind: ServiceCIDR\n"
                    "metadata: {name: extra}\nspec: {cidrs: [192.0.2.0/29]}\n")
    with e2e.Server([path], service_cidrs=("198.51.100.0/30",)) as srv:
        assert address(srv, "eks.default.svc.local.") == (dns.rcode.NOERROR, ["10.100.0.10"])
        assert address(srv, "gke.default.svc.local.") == (dns.rcode.NOERROR, ["34.118.224.10"])
        assert address(srv, "auto.default.svc.local.") == (dns.rcode.NOERROR, ["198.51.100.2"])
    # The first range full (a /30 has one address to give), the ServiceCIDR's is next.
    path.write_text(path.read_text() + "---\napiVersion: v1\nkind: Service\n"
                    "metadata: {name: aaa}\nspec: {ports: [{port: 80}]}\n")
    with e2e.Server([path], service_cidrs=("198.51.100.0/30",)) as srv:
        assert address(srv, "aaa.default.svc.local.") == (dns.rcode.NOERROR, ["198.51.100.2"])
        rcode, addrs = address(srv, "auto.default.svc.local.")
        assert rcode == dns.rcode.NOERROR and addrs[0].startswith("192.0.2."), addrs
