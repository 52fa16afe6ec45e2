"""Live reload: a changed manifest directory (inotify) or SIGHUP swaps in a new snapshot; a
broken manifest is reported with FILE:LINE:COL and the last good data keeps serving; queries
are answered throughout, and SIGTERM after many reloads still exits 0 (under ASan: no
snapshot leaked or freed while in use)."""

import os
import signal
import threading
import time

import dns.rcode
import pytest

import svcdns_e2e as e2e


def service(name, ip, ns="default"):
    return (f"apiVersion: v1\nkind: Service\nmetadata:\n  name: {name}\n  namespace: {ns}\n"
            f"spec:\n  clusterIP: {ip}\n")


def addresses(srv, name):
    reply = srv.query(name)
    return reply.rcode(), sorted(rr.address for rrset in reply.answer for rr in rrset)


def wait_for(srv, name, want, timeout=5.0):
    deadline = time.monotonic() + timeout
    got = None
    while time.monotonic() < deadline:
        got = addresses(srv, name)
        if got == want:
            return
        time.sleep(0.05)
    pytest.fail(f"{name}: wanted {want}, still {got} after {timeout}s\n{srv.stderr()}")


@pytest.fixture
def manifests(tmp_path):
    d = tmp_path / "manifests"
    d.mkdir()
    (d / "web.yaml").write_text(service("web", "10.96.1.1"))
    return d


def test_a_new_file_in_a_watched_directory_is_served_without_a_signal(manifests):
    with e2e.Server([manifests]) as srv:
        assert addresses(srv, "web.default.svc.local.") == (dns.rcode.NOERROR, ["10.96.1.1"])
        assert addresses(srv, "api.default.svc.local.")[0] == dns.rcode.NXDOMAIN
        (manifests / "api.yaml").write_text(service("api", "10.96.2.2"))
        wait_for(srv, "api.default.svc.local.", (dns.rcode.NOERROR, ["10.96.2.2"]))
        (manifests / "api.yaml").unlink()
        wait_for(srv, "api.default.svc.local.", (dns.rcode.NXDOMAIN, []))
        assert "module=reload trigger=change" in srv.stderr()


def test_sighup_reloads_a_manifest_given_as_a_file(manifests):
    path = manifests / "web.yaml"
    with e2e.Server([path]) as srv:
        path.write_text(service("web", "10.96.1.9"))
        srv.proc.send_signal(signal.SIGHUP)
        wait_for(srv, "web.default.svc.local.", (dns.rcode.NOERROR, ["10.96.1.9"]))
        assert "trigger=sighup" in srv.stderr() or "trigger=change" in srv.stderr()


def soa_serial(srv):
    reply = srv.query("local.", "SOA")
    return reply.answer[0][0].serial


def test_the_soa_serial_is_the_newest_manifest_time_and_only_goes_forward(manifests):
    path = manifests / "web.yaml"
    os.utime(path, (1_700_000_000, 1_700_000_000))
    (manifests / "old.yaml").write_text(service("old", "10.96.1.2"))
    os.utime(manifests / "old.yaml", (1_600_000_000, 1_600_000_000))
    with e2e.Server([manifests]) as srv:
        assert soa_serial(srv) == 1_700_000_000
        # The newest file goes: the newest time left is older, yet the serial moves on.
        path.unlink()
        wait_for(srv, "web.default.svc.local.", (dns.rcode.NXDOMAIN, []))
        assert soa_serial(srv) == 1_700_000_001
        # A newer file, moved in whole (one reload): its time is the serial.
        staged = manifests.parent / "new.yaml"
        staged.write_text(service("new", "10.96.1.3"))
        os.utime(staged, (1_800_000_000, 1_800_000_000))
        staged.rename(manifests / "new.yaml")
        wait_for(srv, "new.default.svc.local.", (dns.rcode.NOERROR, ["10.96.1.3"]))
        assert soa_serial(srv) == 1_800_000_000


def test_a_change_in_a_subdirectory_is_found_by_the_poll(manifests):
    """inotify is not recursive: a file edited in a subdirectory (or on a file system without
    change events) is found by the --reload-interval poll, and only by it."""
    sub = manifests / "team-a"
    sub.mkdir()
    (sub / "api.yaml").write_text(service("api", "10.96.2.2"))
    with e2e.Server([manifests], extra_args=["--reload-interval", "0"]) as srv:
        assert addresses(srv, "api.default.svc.local.") == (dns.rcode.NOERROR, ["10.96.2.2"])
        (sub / "api.yaml").write_text(service("api", "10.96.2.3"))
        time.sleep(2.5)
        assert addresses(srv, "api.default.svc.local.") == (dns.rcode.NOERROR, ["10.96.2.2"])
    (sub / "api.yaml").write_text(service("api", "10.96.2.2"))
    with e2e.Server([manifests], extra_args=["--reload-interval", "1s"]) as srv:
        assert addresses(srv, "api.default.svc.local.") == (dns.rcode.NOERROR, ["10.96.2.2"])
        (sub / "api.yaml").write_text(service("api", "10.96.2.3"))
        wait_for(srv, "api.default.svc.local.", (dns.rcode.NOERROR, ["10.96.2.3"]))
        (sub / "api.yaml").unlink()
        wait_for(srv, "api.default.svc.local.", (dns.rcode.NXDOMAIN, []))
        assert "trigger=poll" in srv.stderr()


def test_health_and_queries_are_answered_while_a_large_reload_builds(tmp_path):
    """The snapshot is built on a thread: a reload of 50k Services (about a second) does not
    hold up /health, which kubelet's probes give one second by default, nor DNS."""
    import urllib.request
    path = tmp_path / "big.yaml"
    path.write_text("".join(
        f"---\napiVersion: v1\nkind: Service\nmetadata: {{name: s{i}, namespace: ns{i % 50}}}\n"
        f"spec: {{clusterIP: 10.{96 + i // 65536}.{i // 256 % 256}.{i % 256}, "
        f"ports: [{{name: http, port: 80}}]}}\n" for i in range(50000)))
    http_port = e2e.free_port()
    with e2e.Server([path], extra_args=["--http", f"127.0.0.1:{http_port}"]) as srv:
        os.utime(path)  # changed: the reload reads all of it again
        srv.proc.send_signal(signal.SIGHUP)
        during, slowest = 0, 0.0
        deadline = time.monotonic() + 120
        while "trigger=sighup" not in srv.stderr():
            assert time.monotonic() < deadline, srv.stderr()
            t0 = time.monotonic()
            with urllib.request.urlopen(f"http://127.0.0.1:{http_port}/health", timeout=5) as r:
                assert r.status == 200
            assert srv.query("s7.ns7.svc.local.").rcode() == dns.rcode.NOERROR
            slowest = max(slowest, time.monotonic() - t0)
            during += "trigger=sighup" not in srv.stderr()
        assert during >= 3, f"only {during} probes while the reload ran"
        assert slowest < 0.5, f"a probe took {slowest:.2f} s during the reload"


def test_a_broken_manifest_keeps_the_last_good_data_and_says_where(manifests):
    with e2e.Server([manifests]) as srv:
        broken = manifests / "broken.yaml"
        broken.write_text("apiVersion: v1\nkind: Service\nmetadata: {name: x\nspec: {}\n")
        assert srv.wait_for_log("a file that does not parse keeps its last good objects", 5), \
            srv.stderr()
        assert f"{broken}:4:" in srv.stderr(), srv.stderr()
        assert addresses(srv, "web.default.svc.local.") == (dns.rcode.NOERROR, ["10.96.1.1"])
        # Fixed, it loads again, with everything else in the directory.
        broken.write_text(service("x", "10.96.3.3"))
        wait_for(srv, "x.default.svc.local.", (dns.rcode.NOERROR, ["10.96.3.3"]))
        assert addresses(srv, "web.default.svc.local.") == (dns.rcode.NOERROR, ["10.96.1.1"])


def test_a_configmap_volume_update_is_seen(tmp_path):
    """kubelet's AtomicWriter: files are symlinks through ..data, which is swapped atomically
    to a new timestamped directory."""
    vol = tmp_path / "vol"
    vol.mkdir()
    first = vol / "..2026_11_26_00_00_00.1"
    first.mkdir()
    (first / "web.yaml").write_text(service("web", "10.96.1.1"))
    os.symlink(first.name, vol / "..data")
    os.symlink("..data/web.yaml", vol / "web.yaml")
    with e2e.Server([vol]) as srv:
        assert addresses(srv, "web.default.svc.local.") == (dns.rcode.NOERROR, ["10.96.1.1"])
        second = vol / "..2026_11_26_00_01_00.2"
        second.mkdir()
        (second / "web.yaml").write_text(service("web", "10.96.1.2"))
        os.symlink(second.name, vol / "..data_tmp")
        os.rename(vol / "..data_tmp", vol / "..data")
        wait_for(srv, "web.default.svc.local.", (dns.rcode.NOERROR, ["10.96.1.2"]))


def test_queries_are_answered_throughout_repeated_reloads(manifests):
    """Two workers answer while 30 reloads swap snapshots under them: every reply is a full
    answer from one snapshot or the other, none is lost, and the old snapshots are freed only
    when no worker reads them (the ASan build checks that)."""
    with e2e.Server([manifests], workers=2) as srv:
        stop = threading.Event()
        results, errors = [], []

        def ask():
            while not stop.is_set():
                try:
                    results.append(addresses(srv, "web.default.svc.local."))
                except Exception as exc:  # a timeout is a lost answer
                    errors.append(repr(exc))

        threads = [threading.Thread(target=ask) for _ in range(2)]
        for t in threads:
            t.start()
        try:
            for i in range(30):
                ip = "10.96.1.1" if i % 2 else "10.96.1.2"
                # Replaced whole, as editors and kubelet do: a reload that reads a file while
                # it is being rewritten in place sees it empty, and rightly serves no web.
                (manifests / "web.yaml.tmp").write_text(service("web", ip))
                os.rename(manifests / "web.yaml.tmp", manifests / "web.yaml")
                srv.proc.send_signal(signal.SIGHUP)
                time.sleep(0.05)
        finally:
            stop.set()
            for t in threads:
                t.join()
        assert not errors, errors[:5]
        assert len(results) > 100
        assert {r for r in map(repr, results)} <= {
            repr((dns.rcode.NOERROR, ["10.96.1.1"])), repr((dns.rcode.NOERROR, ["10.96.1.2"]))}
        assert "module=reload trigger=sighup serial=" in srv.stderr()
    # Server.__exit__ required exit status 0 after SIGTERM.
