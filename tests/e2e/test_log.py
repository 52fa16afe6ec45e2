"""Logs: a query name cannot forge a log line (names are written as dig writes them), in the
text format and in --log-format json, whose every line parses as JSON."""

import json
import re

import dns.message
import dns.name
import dns.rcode
import pytest

import svcdns_e2e as e2e

# A label that would end the query's line and start one that looks like a reload failure.
FORGED = b"\n2026-01-01T00:00:00.000Z level=error module=reload x=\""
QNAME = dns.name.Name([FORGED, b"default", b"svc", b"local", b""])
TEXT_LINE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z level=(error|warn|info|debug) "
                       r"module=\w+ ")
# dig's form of the label (lower-cased, as the query log writes names): \010 for the newline,
# \. for the dot inside the label, \032 for spaces, \" for the quote.
ESCAPED = "\\0102026-01-01t00:00:00\\.000z\\032level=error\\032module=reload\\032x=\\\""


def send_forged(srv):
    r = e2e.send_query(dns.message.make_query(QNAME, "A"), srv.port)
    assert r.rcode() == dns.rcode.NXDOMAIN, r
    assert srv.wait_for_log("module=query" if "json" not in srv.extra_args else
                            '"module":"query"'), srv.stderr()


def test_text_log_escapes_the_name(cluster_manifests):
    with e2e.Server(cluster_manifests, log_queries=True) as srv:
        send_forged(srv)
        lines = srv.stderr().splitlines()
        assert lines, srv.stderr()
        for line in lines:
            assert TEXT_LINE.match(line), f"not a log line: {line!r}"
            assert not line.lower().startswith("2026-01-01t00:00:00"), f"forged: {line!r}"
        # The harness's readiness probe (SOA) is logged too; ours is the A query.
        queries = [line for line in lines if " module=query " in line and " type=1 " in line]
        assert len(queries) == 1, lines
        assert f" name={ESCAPED}.default.svc.local. " in queries[0], queries[0]
        assert not [line for line in lines if " module=reload " in line], lines
        log = [q for q in srv.query_log() if q["type"] == "1"]
        assert log[0]["name"] == f"{ESCAPED}.default.svc.local.", log


def test_json_log_lines_parse_and_keep_the_name_in_its_field(cluster_manifests):
    with e2e.Server(cluster_manifests, log_queries=True,
                    extra_args=["--log-format", "json"]) as srv:
        send_forged(srv)
        lines = srv.stderr().splitlines()
        assert len(lines) >= 3, srv.stderr()  # listening, serving, the query
        records = [json.loads(line) for line in lines]  # every line is one JSON object
        for rec in records:
            assert set(rec) >= {"ts", "level", "module"}, rec
            assert rec["module"] != "reload", rec
        queries = [rec for rec in records if rec["module"] == "query" and rec["type"] == 1]
        assert len(queries) == 1, records
        q = queries[0]
        assert q["name"] == f"{ESCAPED}.default.svc.local.", q
        assert q["rcode"] == "NXDOMAIN" and q["proto"] == "udp" and q["level"] == "info", q
        assert isinstance(q["id"], int) and isinstance(q["duration_ms"], float), q
        serving = [rec for rec in records if rec.get("msg") == "serving"]
        assert serving and serving[0]["zone"] == "local", records


def test_json_log_carries_manifest_errors_as_fields(tmp_path):
    """With --log-format json even a broken manifest is reported as JSON lines."""
    bad = tmp_path / "bad.yaml"
    bad.write_text("apiVersion: v1\nkind: Service\nmetadata: {name: Echo_1}\n"
                   "spec: {clusterIP: \"10.96.0.300\"}\n")
    p = e2e.run_cli(["--manifests", str(bad), "--log-format", "json", "--check"])
    assert p.returncode == 1, p.stderr
    lines = [line for line in p.stderr.splitlines() if line.startswith("{")]
    records = [json.loads(line) for line in lines]
    errors = [rec for rec in records if rec["module"] == "manifest"]
    assert len(errors) == 2, p.stderr
    assert all(rec["file"] == str(bad) and rec["severity"] == "error" for rec in errors), errors
    assert any('"Echo_1"' in rec["message"] and rec["line"] == 3 for rec in errors), errors


def test_log_format_must_be_known(tmp_path):
    p = e2e.run_cli(["--log-format", "yaml", "--check", "--manifests", str(tmp_path)])
    assert p.returncode == 1
    assert '--log-format: "yaml" is not one of text, json' in p.stderr, p.stderr


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_log_format_from_the_config_file(tmp_path, cluster_manifests, fmt):
    config = tmp_path / "svcdns.yaml"
    config.write_text(f"log-format: {fmt}\nlog-queries: true\n")
    with e2e.Server(cluster_manifests, extra_args=["--config", config]) as srv:
        srv.query("echo.default.svc.local.")
        assert srv.wait_for_log("query"), srv.stderr()
        lines = srv.stderr().splitlines()
        if fmt == "json":
            queries = [rec for rec in map(json.loads, lines)
                       if rec["module"] == "query" and rec["type"] == 1]
            assert queries[0]["name"] == "echo.default.svc.local.", lines
        else:
            queries = [line for line in lines if " module=query " in line and " type=1 " in line]
            assert " name=echo.default.svc.local. " in queries[0], lines
            assert all(TEXT_LINE.match(line) for line in lines), lines
