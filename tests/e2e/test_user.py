"""--user: started as root, svcdns binds port 53, then becomes the user (uid, gid, groups) with
no capabilities left, and still answers and reloads; a user that does not exist stops the
start; as someone else than root only the user itself may be named."""

import os
import pathlib
import shutil
import signal
import tempfile

import pytest

import svcdns_e2e as e2e

WEB = "apiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec: {clusterIP: 10.96.0.20}\n"
API = "apiVersion: v1\nkind: Service\nmetadata: {name: api}\nspec: {clusterIP: 10.96.0.21}\n"


@pytest.fixture
def readable_manifests():
    """A manifest directory that any user may read (pytest's tmp_path is root's alone)."""
    d = pathlib.Path(tempfile.mkdtemp(prefix="svcdns-e2e-user-", dir="/tmp"))
    d.chmod(0o755)
    (d / "web.yaml").write_text(WEB)
    (d / "web.yaml").chmod(0o644)
    yield d
    shutil.rmtree(d, ignore_errors=True)


def proc_status(pid):
    fields = {}
    for line in pathlib.Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        fields[key] = value.split()
    return fields


def test_root_drops_to_the_user_after_binding_port_53(readable_manifests):
    if os.geteuid() != 0:
        pytest.skip("dropping privileges needs a start as root")
    nobody = e2e.run(["id", "-u", "nobody"]).stdout.strip()
    nogroup = e2e.run(["id", "-g", "nobody"]).stdout.strip()
    with e2e.network_namespace({}) as ns, \
            e2e.Server([readable_manifests], netns=ns, extra_args=["--user", "nobody"]) as srv:
        assert srv.wait_for_log(f"event=privileges_dropped user=nobody uid={nobody} "
                                f"gid={nogroup} "), srv.stderr()
        st = proc_status(srv.proc.pid)
        assert st["Uid"] == [nobody] * 4, st["Uid"]  # real, effective, saved, file system
        assert st["Gid"] == [nogroup] * 4, st["Gid"]
        assert st["Groups"] == [g for g in e2e.run(["id", "-G", "nobody"]).stdout.split()], st
        for cap in ("CapInh", "CapPrm", "CapEff", "CapAmb"):
            assert int(st[cap][0], 16) == 0, (cap, st[cap])
        assert st["NoNewPrivs"] == ["1"], st["NoNewPrivs"]
        r = e2e.dig_reply("dig", 53, "web.default.svc.local", netns=ns)
        assert r["status"] == "NOERROR" and r["answer"][0][3] == "10.96.0.20", r
        # The manifests are read as nobody now: a new one is served after a reload.
        (readable_manifests / "api.yaml").write_text(API)
        (readable_manifests / "api.yaml").chmod(0o644)
        srv.proc.send_signal(signal.SIGHUP)
        assert e2e.wait_until(
            lambda: e2e.dig_reply("dig", 53, "api.default.svc.local",
                                  netns=ns)["status"] == "NOERROR", 10), srv.stderr()
        assert "level=error" not in srv.stderr(), srv.stderr()


def test_a_user_that_does_not_exist_stops_the_start(tmp_path):
    p = e2e.run_cli(["--user", "svcdns-no-such-user", "--manifests", tmp_path,
                     "--listen", f"127.0.0.1:{e2e.free_port()}"])
    assert p.returncode == 1
    assert "--user svcdns-no-such-user: no such user on this system" in p.stderr, p.stderr
    assert "serving" not in p.stderr


def test_as_another_user_only_that_user_may_be_named(readable_manifests):
    if os.geteuid() != 0:
        pytest.skip("starting svcdns as another user needs root")
    as_nobody = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"]
    p = e2e.run(as_nobody + [e2e.BIN, "--user", "root", "--manifests", readable_manifests,
                             "--listen", f"127.0.0.1:{e2e.free_port()}"], check=False)
    assert p.returncode == 1, p.stderr
    assert "--user root: svcdns runs as uid" in p.stderr and "not root" in p.stderr, p.stderr
    # Naming the user it already is: it serves (no change to make).
    with e2e.Server([readable_manifests], wrapper=as_nobody,
                    extra_args=["--user", "nobody"]) as srv:
        assert srv.query("web.default.svc.local.").answer
        assert "privileges_dropped" not in srv.stderr()
