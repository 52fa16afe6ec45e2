"""Running under systemd: the sd_notify protocol (READY=1 once it answers, RELOADING=1 and
READY=1 around a reload, STOPPING=1 on the way out) on a socket the test binds, and
deploy/svcdns.service checked by systemd-analyze."""

import os
import re
import shutil
import signal
import socket

import dns.rcode
import pytest

import svcdns_e2e as e2e

MANIFEST = "apiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec: {clusterIP: 10.96.0.20}\n"


def receive(sock, timeout=15.0):
    sock.settimeout(timeout)
    return sock.recv(4096).decode()


@pytest.mark.parametrize("abstract", [False, True])
def test_notify_protocol(tmp_path, abstract):
    manifest = tmp_path / "web.yaml"
    manifest.write_text(MANIFEST)
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        if abstract:
            name = f"svcdns-test-{os.getpid()}-{id(sock)}"
            sock.bind("\0" + name)
            address = "@" + name
        else:
            address = str(tmp_path / "notify")
            sock.bind(address)
        srv = e2e.Server([manifest], env={"NOTIFY_SOCKET": address})
        try:
            srv.spawn()
            ready = receive(sock)
            # Ready means answering: no retry needed from here.
            assert srv.query("web.default.svc.local.").rcode() == dns.rcode.NOERROR
            assert ready.splitlines()[0] == "READY=1", ready
            assert re.search(r"^STATUS=serving \d+ records under local$", ready, re.M), ready
            srv.proc.send_signal(signal.SIGHUP)
            reloading = receive(sock)
            assert reloading.splitlines()[0] == "RELOADING=1", reloading
            assert re.search(r"^MONOTONIC_USEC=\d+$", reloading, re.M), reloading
            assert receive(sock).startswith("READY=1\n")
            srv.proc.send_signal(signal.SIGTERM)
            assert receive(sock) == "STOPPING=1"
            assert srv.proc.wait(timeout=10) == 0
        finally:
            srv.stop()


def test_without_notify_socket_nothing_is_sent(tmp_path):
    manifest = tmp_path / "web.yaml"
    manifest.write_text(MANIFEST)
    with e2e.Server([manifest], env={"NOTIFY_SOCKET": ""}) as srv:
        assert srv.query("web.default.svc.local.").rcode() == dns.rcode.NOERROR


def test_the_unit_file_verifies(tmp_path):
    assert shutil.which("systemd-analyze"), f"systemd-analyze is missing: {e2e.INSTALL_HINT}"
    unit = (e2e.SOURCE / "deploy" / "svcdns.service").read_text()
    assert "ExecStart=/usr/local/bin/svcdns --config /etc/svcdns/svcdns.yaml" in unit
    # The installed path is not there in a test: point it at the binary under test.
    (tmp_path / "svcdns.service").write_text(unit.replace("/usr/local/bin/svcdns", e2e.BIN))
    p = e2e.run(["systemd-analyze", "verify", tmp_path / "svcdns.service"], check=False,
                timeout=60)
    assert p.returncode == 0 and p.stderr.strip() == "", p.stderr


def test_the_example_config_loads(tmp_path):
    """deploy/svcdns.yaml is what the unit reads: it must pass --check (with the manifest
    directory moved to one the test owns)."""
    config = (e2e.SOURCE / "deploy" / "svcdns.yaml").read_text()
    assert "manifests: [/etc/svcdns/manifests]" in config
    (tmp_path / "manifests").mkdir()
    (tmp_path / "manifests" / "web.yaml").write_text(MANIFEST)
    path = tmp_path / "svcdns.yaml"
    path.write_text(config.replace("/etc/svcdns/manifests", str(tmp_path / "manifests")))
    p = e2e.run_cli(["--config", str(path), "--check"])
    assert p.returncode == 0, p.stderr
    assert "under cluster.local" in p.stdout, p.stdout
