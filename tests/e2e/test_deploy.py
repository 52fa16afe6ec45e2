"""The Kubernetes deployment (deploy/kubernetes/): each manifest parsed with PyYAML and held
to what the README promises (list and watch only on the kinds svcdns reads, two replicas on
different nodes, system-cluster-critical, non-root with only NET_BIND_SERVICE, probes on
/health and /ready, kube-dns on 10.96.0.10), and the svcdns arguments and config each one
carries run with `svcdns --check`: the Deployment's against the fake API server with the
in-cluster credentials at their fixed path (a private mount namespace, root only), the
sidecar's against the manifests of its ConfigMap."""

import os
import pathlib
import re
import subprocess

import pytest
import yaml

import svcdns_e2e as e2e
from fake_apiserver import FakeAPIServer

DEPLOY = e2e.SOURCE / "deploy" / "kubernetes"
KINDS_READ = {("", "services"), ("", "namespaces"), ("", "pods"),
              ("discovery.k8s.io", "endpointslices")}


def load(name):
    return [d for d in yaml.safe_load_all((DEPLOY / name).read_text()) if d]


def one(name, kind):
    docs = [d for d in load(name) if d["kind"] == kind]
    assert len(docs) == 1, f"{name}: {len(docs)} {kind} objects"
    return docs[0]


def test_every_manifest_parses_and_names_its_namespace():
    files = sorted(DEPLOY.glob("*.yaml"))
    assert {f.name for f in files} >= {"rbac.yaml", "configmap.yaml", "deployment.yaml",
                                        "service.yaml", "sidecar-example.yaml"}
    for f in files:
        for doc in load(f.name):
            assert doc.get("apiVersion") and doc.get("kind"), f
            if doc["kind"] not in ("ClusterRole", "ClusterRoleBinding"):
                assert doc["metadata"].get("namespace"), (f, doc["metadata"])


def test_rbac_lists_and_watches_exactly_the_kinds_svcdns_reads():
    role = one("rbac.yaml", "ClusterRole")
    granted = set()
    for rule in role["rules"]:
        assert sorted(rule["verbs"]) == ["list", "watch"], rule
        granted |= {(g, r) for g in rule["apiGroups"] for r in rule["resources"]}
    assert granted == KINDS_READ
    # and those are the collections svcdns requests (zones/kube.c)
    source = (e2e.SOURCE / "zones" / "kube.c").read_text()
    paths = set(re.findall(r'"(/apis?/[a-z0-9./]*/(?:[a-z]+))"', source))
    assert paths == {"/api/v1/services", "/api/v1/namespaces", "/api/v1/pods",
                     "/apis/discovery.k8s.io/v1/endpointslices"}, paths
    sa = one("rbac.yaml", "ServiceAccount")
    binding = one("rbac.yaml", "ClusterRoleBinding")
    assert binding["roleRef"]["name"] == role["metadata"]["name"]
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": sa["metadata"]["name"],
                                    "namespace": sa["metadata"]["namespace"]}]
    deployment = one("deployment.yaml", "Deployment")
    assert deployment["spec"]["template"]["spec"]["serviceAccountName"] == sa["metadata"]["name"]


def test_the_deployment_is_a_hardened_cluster_dns():
    d = one("deployment.yaml", "Deployment")
    pod = d["spec"]["template"]["spec"]
    labels = d["spec"]["template"]["metadata"]["labels"]
    assert d["spec"]["replicas"] == 2
    assert d["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert pod["priorityClassName"] == "system-cluster-critical"
    assert pod["dnsPolicy"] == "Default"      # upstreams are the node's, never svcdns itself
    anti = pod["affinity"]["podAntiAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    assert anti[0]["topologyKey"] == "kubernetes.io/hostname"
    assert anti[0]["labelSelector"]["matchLabels"].items() <= labels.items()
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] != 0
    [c] = pod["containers"]
    sc = c["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True and sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"] == {"drop": ["ALL"], "add": ["NET_BIND_SERVICE"]}
    assert c["resources"]["requests"]["memory"] and c["resources"]["requests"]["cpu"]
    ports = {p["name"]: p for p in c["ports"]}
    assert (ports["dns"]["containerPort"], ports["dns"]["protocol"]) == (53, "UDP")
    assert (ports["dns-tcp"]["containerPort"], ports["dns-tcp"]["protocol"]) == (53, "TCP")
    config = yaml.safe_load(one("configmap.yaml", "ConfigMap")["data"]["svcdns.yaml"])
    http_port = int(config["http"].rsplit(":", 1)[1])
    assert ports["metrics"]["containerPort"] == http_port
    assert c["livenessProbe"]["httpGet"] == {"path": "/health", "port": "metrics"}
    assert c["readinessProbe"]["httpGet"] == {"path": "/ready", "port": "metrics"}
    # the config comes from the ConfigMap, mounted where the arguments look for it
    [mount] = c["volumeMounts"]
    [vol] = [v for v in pod["volumes"] if v["name"] == mount["name"]]
    assert vol["configMap"]["name"] == one("configmap.yaml", "ConfigMap")["metadata"]["name"]
    assert c["args"] == ["--config", f"{mount['mountPath']}/svcdns.yaml"]


def test_the_service_is_kube_dns_on_10_96_0_10():
    svc = one("service.yaml", "Service")
    assert (svc["metadata"]["name"], svc["metadata"]["namespace"]) == ("kube-dns", "kube-system")
    assert svc["spec"]["clusterIP"] == "10.96.0.10"
    ports = {(p["port"], p["protocol"]) for p in svc["spec"]["ports"]}
    assert ports == {(53, "UDP"), (53, "TCP"), (9153, "TCP")}
    pod_labels = one("deployment.yaml", "Deployment")["spec"]["template"]["metadata"]["labels"]
    assert svc["spec"]["selector"].items() <= pod_labels.items()


def check(args, wrapper=(), env=None, cwd=None):
    p = subprocess.run(list(wrapper) + [e2e.BIN, "--check"] + [str(a) for a in args],
                       capture_output=True, text=True, timeout=60, env=env, cwd=cwd)
    assert p.returncode == 0, f"svcdns --check {args}: exit {p.returncode}\n{p.stdout}{p.stderr}"
    return p


def test_the_deployments_arguments_and_config_check_against_an_api_server(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("the in-cluster credentials' fixed path needs a private mount namespace "
                    "(root)")
    c = one("deployment.yaml", "Deployment")["spec"]["template"]["spec"]["containers"][0]
    cfg = one("configmap.yaml", "ConfigMap")["data"]
    mount = c["volumeMounts"][0]["mountPath"]
    for name, text in cfg.items():
        (tmp_path / name).write_text(text)
    args = [a.replace(mount, str(tmp_path)) for a in c["args"]]
    with FakeAPIServer() as api:
        api.add_namespace("kube-system")
        api.add_service("kube-dns", "kube-system", cluster_ip="10.96.0.10")
        api.add_service("web", "kube-system", cluster_ip="10.96.0.20",
                        endpoints=["10.244.0.7"])
        sa_dir, env = api.serviceaccount_dir()
        p = check(args, wrapper=e2e.in_cluster_wrapper(sa_dir), env=dict(os.environ, **env))
        assert re.search(r"^kubernetes ok: https://127\.0\.0\.1:\d+ \(context in-cluster\); "
                         r"1 namespaces, 2 services, 1 endpoint slices, 0 pods listed; "
                         r"\d+ records under cluster\.local$", p.stdout, re.M), p.stdout
        # everything through the service account's token, nothing but lists
        assert {r["verb"] for r in api.requests} == {"list"}
        assert {r["user"] for r in api.requests} == {"system:serviceaccount:kube-system:svcdns"}


def test_the_sidecars_arguments_check_against_its_configmap(tmp_path):
    docs = load("sidecar-example.yaml")
    [cm] = [d for d in docs if d["kind"] == "ConfigMap"]
    [pod] = [d for d in docs if d["kind"] == "Pod"]
    spec = pod["spec"]
    [sidecar] = spec["initContainers"]
    assert sidecar["restartPolicy"] == "Always"          # a native sidecar
    assert spec["dnsPolicy"] == "None" and spec["dnsConfig"]["nameservers"] == ["127.0.0.1"]
    assert sidecar["startupProbe"]["httpGet"]["path"] == "/ready"
    assert sidecar["securityContext"]["capabilities"] == {"drop": ["ALL"],
                                                         "add": ["NET_BIND_SERVICE"]}
    [mount] = sidecar["volumeMounts"]
    [vol] = [v for v in spec["volumes"] if v["name"] == mount["name"]]
    assert vol["configMap"]["name"] == cm["metadata"]["name"]
    for name, text in cm["data"].items():
        (tmp_path / name).write_text(text)
    args = [a.replace(mount["mountPath"], str(tmp_path)) for a in sidecar["args"]]
    # it listens where the pod's resolv.conf points, and forwards elsewhere
    listen = [a.split("=", 1)[1] for a in args if a.startswith("--listen=")]
    upstream = [a.split("=", 1)[1] for a in args if a.startswith("--upstream=")]
    assert listen == ["127.0.0.1:53"] and upstream and "127.0.0.1" not in upstream[0]
    p = check(args)
    assert re.search(r"\b2 services \(1 ClusterIP, 0 headless, 1 ExternalName\)", p.stdout), \
        p.stdout


def test_the_images_runtime_packages_hold_every_library_svcdns_links():
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    installed = set()
    for m in re.finditer(r"apt-get install [^&]*", dockerfile):
        installed |= set(re.findall(r"\b(lib[\w.+-]+)", m.group(0)))
    needed = re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]",
                        e2e.run(["readelf", "-d", e2e.BIN]).stdout)
    assert needed
    for lib in needed:
        if re.match(r"lib(a|ub|l|t)san\.", lib):
            continue  # a sanitizer build's runtime; the image is built without SANITIZE
        out = e2e.run(["dpkg", "-S", f"*/{lib}"]).stdout
        package = out.split(":", 1)[0]
        assert package == "libc6" or package in installed, (lib, package, installed)
    assert "setcap cap_net_bind_service=+ep" in dockerfile
    assert re.search(r"^USER \d+", dockerfile, re.M)
