"""Cluster exports as a new user feeds them: `kubectl get svc,endpointslices,pods,namespaces
-A -o yaml` of a kubeadm, EKS, k3s, AKS, OpenShift or GKE cluster (tests/e2e/data/exports),
loaded with no flags at all, and every Service in it asked for.

The expected answers are read from the export itself with PyYAML, by the rules of the
Kubernetes DNS specification (DESIGN.md section 3): a ClusterIP Service answers its
clusterIPs whatever range they are in, a headless one its ready endpoints, an ExternalName
its CNAME."""

import ipaddress

import pytest
import yaml

import svcdns_e2e as e2e

EXPORTS = sorted((e2e.DATA / "exports").glob("*.yaml"))


def load_items(path):
    with open(path) as f:
        return yaml.safe_load(f)["items"]


def expectations(items, domain="local"):
    """(name, rdtype, expected) for every Service: addresses as sorted text, or a CNAME
    target."""
    ready = {}
    for item in items:
        if item["kind"] != "EndpointSlice":
            continue
        svc = item["metadata"]["labels"]["kubernetes.io/service-name"]
        key = (item["metadata"]["namespace"], svc)
        for ep in item.get("endpoints") or []:
            if (ep.get("conditions") or {}).get("ready", True):
                ready.setdefault(key, []).extend(ep["addresses"])
    out = []
    for item in items:
        if item["kind"] != "Service":
            continue
        ns, name = item["metadata"]["namespace"], item["metadata"]["name"]
        spec = item["spec"]
        fqdn = f"{name}.{ns}.svc.{domain}."
        if spec.get("type") == "ExternalName":
            out.append((fqdn, "CNAME", [spec["externalName"].rstrip(".") + "."]))
            continue
        if spec.get("clusterIP") == "None":
            addrs = ready.get((ns, name), [])
        else:
            addrs = spec["clusterIPs"]
        for rdtype, version in (("A", 4), ("AAAA", 6)):
            want = sorted(a for a in addrs if ipaddress.ip_address(a).version == version)
            if want:
                out.append((fqdn, rdtype, want))
    return out


@pytest.mark.parametrize("path", EXPORTS, ids=[p.stem for p in EXPORTS])
def test_export_checks_clean_with_no_flags(path):
    p = e2e.run_cli(["--check", "--manifests", path])
    assert p.returncode == 0, p.stdout + p.stderr
    assert "error" not in p.stderr, p.stderr
    assert "manifests ok: 1 files" in p.stdout


@pytest.mark.parametrize("path", EXPORTS, ids=[p.stem for p in EXPORTS])
def test_export_answers_every_service(path):
    items = load_items(path)
    cases = expectations(items)
    assert len(cases) >= 6
    # No flags but where to listen: the default cluster domain and service CIDR.
    with e2e.Server([path], cluster_domain=None, service_cidrs=(), workers=None) as server:
        for fqdn, rdtype, want in cases:
            r = server.query(fqdn, rdtype)
            assert e2e.rcode_text(r) == "NOERROR", (fqdn, rdtype, e2e.rcode_text(r))
            got = sorted(t.split()[-1] for t in e2e.rr_texts(r.answer, rdtype))
            assert got == want, (fqdn, rdtype, got, want)


def test_export_under_the_cluster_domain_of_real_clusters():
    path = e2e.DATA / "exports" / "gke.yaml"
    with e2e.Server([path], cluster_domain="cluster.local", service_cidrs=()) as server:
        for fqdn, rdtype, want in expectations(load_items(path), "cluster.local"):
            got = sorted(t.split()[-1] for t in e2e.rr_texts(server.query(fqdn, rdtype).answer,
                                                             rdtype))
            assert got == want, (fqdn, rdtype)
        # The headless StatefulSet's pods by hostname, and the SRV of a named port.
        r = server.query("db-0.db.shop.svc.cluster.local.", "A")
        assert e2e.rr_texts(r.answer, "A")[0].split()[-1] == "10.244.2.20"
        r = server.query("_postgres._tcp.db.shop.svc.cluster.local.", "SRV")
        assert len(e2e.rr_texts(r.answer, "SRV")) == 2


def test_a_service_named_with_a_leading_digit_answers():
    """KEP-5311 (RelaxedServiceNameValidation): Service names are RFC 1123 labels; the
    Kubernetes e2e suite resolves such a Service by name."""
    path = e2e.DATA / "exports" / "k3s.yaml"
    with e2e.Server([path], service_cidrs=()) as server:
        r = server.query("1kubernetes.default.svc.local.", "A")
        assert [t.split()[-1] for t in e2e.rr_texts(r.answer, "A")] == ["10.43.1.1"]
