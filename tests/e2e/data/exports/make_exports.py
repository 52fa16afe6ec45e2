#!/usr/bin/env python3
"""Writes kubectl-get-style exports (svc,endpointslices,pods,namespaces -A -o yaml) of small
clusters of several distributions, with the noise real exports carry."""
import hashlib
import json
import os
import sys

import yaml



class Lit(str):
    """A string written as a YAML literal block, as kubectl writes long annotations."""


def lit_rep(dumper, data):
    return dumper.represent_scalar("tag:yaml.org,2002:str", data, style="|")


yaml.add_representer(Lit, lit_rep, Dumper=yaml.SafeDumper)

TS = "2026-10-02T08:14:%02dZ"
rv = [48000]
def nrv():
    rv[0] += 17
    return str(rv[0])
def uid(*parts):
    h = hashlib.sha1("/".join(parts).encode()).hexdigest()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:32]}"

def managed(manager, fields, op="Update", sub=None):
    m = {"apiVersion": "v1", "fieldsType": "FieldsV1", "fieldsV1": fields, "manager": manager,
         "operation": op, "time": TS % 3}
    if sub:
        m["subresource"] = sub
    return m

def last_applied(obj):
    return Lit(json.dumps(obj, separators=(",", ":"), sort_keys=True) + "\n")

def service(ns, name, spec, labels=None, annotations=None, applied=False, status=None):
    meta = {"creationTimestamp": TS % 1, "name": name, "namespace": ns,
            "resourceVersion": nrv(), "uid": uid(ns, "svc", name)}
    if labels:
        meta["labels"] = labels
    ann = dict(annotations or {})
    if applied:
        ann["kubectl.kubernetes.io/last-applied-configuration"] = last_applied(
            {"apiVersion": "v1", "kind": "Service",
             "metadata": {"annotations": {}, "labels": labels or {}, "name": name, "namespace": ns},
             "spec": {k: v for k, v in spec.items() if k in ("ports", "selector", "type", "clusterIP")}})
    if ann:
        meta["annotations"] = ann
    meta["managedFields"] = [managed("kubectl-client-side-apply" if applied else "kube-controller-manager",
                                     {"f:metadata": {"f:labels": {".": {}}}, "f:spec": {"f:ports": {}, "f:selector": {}}})]
    s = {"apiVersion": "v1", "kind": "Service", "metadata": meta, "spec": spec,
         "status": status or {"loadBalancer": {}}}
    return s

def cluster_ip_spec(ips, ports, selector=None, typ="ClusterIP", dual=False, extra=None):
    spec = {"clusterIP": ips[0], "clusterIPs": ips, "internalTrafficPolicy": "Cluster",
            "ipFamilies": ["IPv4" if ":" not in ip else "IPv6" for ip in ips],
            "ipFamilyPolicy": "PreferDualStack" if dual else "SingleStack",
            "ports": ports, "sessionAffinity": "None", "type": typ}
    if selector:
        spec["selector"] = selector
    if typ in ("NodePort", "LoadBalancer"):
        spec["externalTrafficPolicy"] = "Cluster"
        for i, p in enumerate(spec["ports"]):
            p.setdefault("nodePort", 30080 + 17 * i + p["port"] % 100)
    if typ == "LoadBalancer":
        spec["allocateLoadBalancerNodePorts"] = True
    if extra:
        spec.update(extra)
    return spec

def port(name, p, target=None, proto="TCP", app=None):
    d = {"port": p, "protocol": proto, "targetPort": target if target is not None else p}
    if name is not None: d["name"] = name
    if app: d["appProtocol"] = app
    return d

def slice_(ns, svc, suffix, family, endpoints, ports, node="node-1", zone=None):
    meta = {"annotations": {"endpoints.kubernetes.io/last-change-trigger-time": TS % 7},
            "creationTimestamp": TS % 2, "generateName": svc + "-",
            "generation": 3,
            "labels": {"endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io",
                       "kubernetes.io/service-name": svc},
            "name": f"{svc}-{suffix}", "namespace": ns,
            "ownerReferences": [{"apiVersion": "v1", "blockOwnerDeletion": True, "controller": True,
                                 "kind": "Service", "name": svc, "uid": uid(ns, "svc", svc)}],
            "resourceVersion": nrv(), "uid": uid(ns, "eps", svc, suffix),
            "managedFields": [managed("kube-controller-manager",
                                      {"f:addressType": {}, "f:endpoints": {}, "f:ports": {}},
                                      op="Update")]}
    meta["managedFields"][0]["apiVersion"] = "discovery.k8s.io/v1"
    eps = []
    for e in endpoints:
        ep = {"addresses": [e["ip"]],
              "conditions": {"ready": e.get("ready", True), "serving": e.get("ready", True),
                             "terminating": False},
              "nodeName": e.get("node", node)}
        if "hostname" in e:
            ep["hostname"] = e["hostname"]
        if "pod" in e:
            ep["targetRef"] = {"kind": "Pod", "name": e["pod"], "namespace": ns, "uid": uid(ns, "pod", e["pod"])}
        if zone:
            ep["zone"] = zone
            ep["hints"] = {"forZones": [{"name": zone}]}
        eps.append(ep)
    return {"addressType": family, "apiVersion": "discovery.k8s.io/v1", "endpoints": eps,
            "kind": "EndpointSlice", "metadata": meta,
            "ports": [{"name": p.get("name", ""), "port": p.get("target", p["port"]),
                       "protocol": p.get("protocol", "TCP")} for p in ports]}

def pod(ns, name, ips, labels=None, host_network=False, hostname=None, subdomain=None, ready=True,
        node="node-1", node_ip="172.18.0.2", phase="Running"):
    meta = {"creationTimestamp": TS % 4, "generateName": name.rsplit("-", 1)[0] + "-",
            "labels": labels or {}, "name": name, "namespace": ns, "resourceVersion": nrv(),
            "uid": uid(ns, "pod", name),
            "managedFields": [managed("kubelet", {"f:status": {"f:conditions": {}, "f:podIPs": {}}},
                                      sub="status")]}
    spec = {"containers": [{"image": "registry.k8s.io/pause:3.9", "imagePullPolicy": "IfNotPresent",
                            "name": "main", "resources": {"requests": {"cpu": "100m", "memory": "70Mi"}},
                            "terminationMessagePath": "/dev/termination-log",
                            "terminationMessagePolicy": "File"}],
            "dnsPolicy": "ClusterFirstWithHostNet" if host_network else "ClusterFirst",
            "enableServiceLinks": True, "nodeName": node, "preemptionPolicy": "PreemptLowerPriority",
            "priority": 0, "restartPolicy": "Always", "schedulerName": "default-scheduler",
            "securityContext": {}, "serviceAccountName": "default",
            "terminationGracePeriodSeconds": 30,
            "tolerations": [{"effect": "NoExecute", "key": "node.kubernetes.io/not-ready",
                             "operator": "Exists", "tolerationSeconds": 300}]}
    if host_network:
        spec["hostNetwork"] = True
    if hostname:
        spec["hostname"] = hostname
    if subdomain:
        spec["subdomain"] = subdomain
    status = {"conditions": [
        {"lastProbeTime": None, "lastTransitionTime": TS % 5, "status": "True", "type": "Initialized"},
        {"lastProbeTime": None, "lastTransitionTime": TS % 6, "status": "True" if ready else "False", "type": "Ready"},
        {"lastProbeTime": None, "lastTransitionTime": TS % 6, "status": "True", "type": "PodScheduled"}],
        "hostIP": node_ip, "hostIPs": [{"ip": node_ip}], "phase": phase, "qosClass": "Burstable",
        "startTime": TS % 5}
    if ips:
        status["podIP"] = ips[0]
        status["podIPs"] = [{"ip": ip} for ip in ips]
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec, "status": status}

def namespace(name, labels=None, annotations=None):
    meta = {"creationTimestamp": TS % 0, "labels": {"kubernetes.io/metadata.name": name, **(labels or {})},
            "name": name, "resourceVersion": nrv(), "uid": uid("ns", name),
            "managedFields": [managed("kube-apiserver", {"f:metadata": {"f:labels": {}}})]}
    if annotations:
        meta["annotations"] = annotations
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": meta,
            "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"}}

def common(svc_base, node_ip, dns_ns="kube-system", dns_name="kube-dns", dns_ip_last="0.10",
           api_eps=None, extra_ns=(), zone=None):
    """kubernetes + cluster DNS + an app, a headless StatefulSet, an ExternalName."""

    def ip(last):
        return svc_base + last

    items_svc, items_eps, items_pods = [], [], []
    items_svc.append(service("default", "kubernetes",
        cluster_ip_spec([ip("0.1")], [port("https", 443, 6443)]),
        labels={"component": "apiserver", "provider": "kubernetes"}))
    items_eps.append(slice_("default", "kubernetes", "", "IPv4",
        [{"ip": a} for a in (api_eps or [node_ip])], [{"name": "https", "port": 443, "target": 6443}], zone=zone))
    items_eps[-1]["metadata"]["name"] = "kubernetes"
    items_eps[-1]["metadata"]["labels"]["endpointslice.kubernetes.io/managed-by"] = "endpointslicemirroring-controller.k8s.io"
    items_svc.append(service(dns_ns, dns_name,
        cluster_ip_spec([ip(dns_ip_last)], [port("dns", 53, 53, "UDP"), port("dns-tcp", 53, 53, "TCP"),
                                            port("metrics", 9153)], selector={"k8s-app": "kube-dns"}),
        labels={"k8s-app": "kube-dns", "kubernetes.io/cluster-service": "true", "kubernetes.io/name": "CoreDNS"},
        annotations={"prometheus.io/port": "9153", "prometheus.io/scrape": "true"}))
    items_eps.append(slice_(dns_ns, dns_name, "x7k2p", "IPv4",
        [{"ip": "10.244.0.2", "pod": "coredns-5dd5756b68-2xkqj"}, {"ip": "10.244.0.3", "pod": "coredns-5dd5756b68-9wqzn"}],
        [{"name": "dns", "port": 53, "protocol": "UDP"}, {"name": "dns-tcp", "port": 53}, {"name": "metrics", "port": 9153}], zone=zone))
    for n, a in (("coredns-5dd5756b68-2xkqj", "10.244.0.2"), ("coredns-5dd5756b68-9wqzn", "10.244.0.3")):
        items_pods.append(pod(dns_ns, n, [a], {"k8s-app": "kube-dns", "pod-template-hash": "5dd5756b68"}, node_ip=node_ip))
    # host-network pods share the node's address
    for n in ("kube-proxy-8m2vd", "etcd-node-1"):
        items_pods.append(pod("kube-system", n, [node_ip], {"component": n.split("-")[0]}, host_network=True, node_ip=node_ip))
    # an application
    items_svc.append(service("shop", "web",
        cluster_ip_spec([ip("120.7")], [port("http", 80, 8080), port("metrics", 9090)], selector={"app": "web"}),
        labels={"app": "web"}, applied=True))
    items_eps.append(slice_("shop", "web", "abcde", "IPv4",
        [{"ip": "10.244.1.10", "pod": "web-7d9f8b6c5-aaaaa"}, {"ip": "10.244.1.11", "pod": "web-7d9f8b6c5-bbbbb", "ready": False}],
        [{"name": "http", "port": 80, "target": 8080}, {"name": "metrics", "port": 9090}], zone=zone))
    items_pods.append(pod("shop", "web-7d9f8b6c5-aaaaa", ["10.244.1.10"], {"app": "web"}, node_ip=node_ip))
    items_pods.append(pod("shop", "web-7d9f8b6c5-bbbbb", ["10.244.1.11"], {"app": "web"}, ready=False, node_ip=node_ip))
    # an unnamed single port (EndpointSlice port name "")
    items_svc.append(service("shop", "cart",
        cluster_ip_spec([ip("120.8")], [port(None, 8080)], selector={"app": "cart"}), applied=True))
    items_eps.append(slice_("shop", "cart", "q1w2e", "IPv4", [{"ip": "10.244.1.12", "pod": "cart-0"}],
                            [{"port": 8080}], zone=zone))
    items_pods.append(pod("shop", "cart-0", ["10.244.1.12"], {"app": "cart"}, node_ip=node_ip))
    # a headless StatefulSet
    items_svc.append(service("shop", "db",
        {"clusterIP": "None", "clusterIPs": ["None"], "internalTrafficPolicy": "Cluster",
         "ipFamilies": ["IPv4"], "ipFamilyPolicy": "SingleStack", "ports": [port("postgres", 5432)],
         "publishNotReadyAddresses": False, "selector": {"app": "db"}, "sessionAffinity": "None",
         "type": "ClusterIP"}, labels={"app": "db"}, applied=True))
    items_eps.append(slice_("shop", "db", "zx9cv", "IPv4",
        [{"ip": "10.244.2.20", "hostname": "db-0", "pod": "db-0"}, {"ip": "10.244.2.21", "hostname": "db-1", "pod": "db-1"}],
        [{"name": "postgres", "port": 5432}], zone=zone))
    for n, a in (("db-0", "10.244.2.20"), ("db-1", "10.244.2.21")):
        items_pods.append(pod("shop", n, [a], {"app": "db", "statefulset.kubernetes.io/pod-name": n},
                              hostname=n, subdomain="db", node_ip=node_ip))
    # an ExternalName
    items_svc.append(service("shop", "payments",
        {"externalName": "api.payments.example.com", "sessionAffinity": "None", "type": "ExternalName"},
        applied=True))
    namespaces = ["default", "kube-node-lease", "kube-public", "kube-system", "shop", *extra_ns]
    if dns_ns not in namespaces:
        namespaces.append(dns_ns)
    return items_svc, items_eps, items_pods, [namespace(n) for n in sorted(set(namespaces))]

def export(items):
    return {"apiVersion": "v1", "items": items, "kind": "List", "metadata": {"resourceVersion": ""}}

def write(path, name, svc, eps, pods, nss, header):
    with open(path, "w") as f:
        f.write(header)
        yaml.safe_dump(export(svc + eps + pods + nss), f, sort_keys=True, default_flow_style=False, width=100)

out = sys.argv[1]
os.makedirs(out, exist_ok=True)
CMD = "# kubectl get svc,endpointslices,pods,namespaces -A -o yaml\n"

# kubeadm (kind): 10.96.0.0/12, dual-stack
s, e, p, n = common("10.96.", "172.18.0.2")
s.append(service("default", "dual", cluster_ip_spec(["10.96.200.5", "fd00:10:96::c8"], [port("http", 80)],
                 selector={"app": "dual"}, dual=True), applied=True))
e.append(slice_("default", "dual", "v4aaa", "IPv4", [{"ip": "10.244.0.30", "pod": "dual-1"}], [{"name": "http", "port": 80}]))
e.append(slice_("default", "dual", "v6bbb", "IPv6", [{"ip": "fd00:10:244::1e", "pod": "dual-1"}], [{"name": "http", "port": 80}]))
p.append(pod("default", "dual-1", ["10.244.0.30", "fd00:10:244::1e"], {"app": "dual"}))
write(f"{out}/kubeadm.yaml", "kubeadm", s, e, p, n, "# A kind (kubeadm) cluster, dual-stack: service CIDRs 10.96.0.0/12 and fd00:10:96::/112.\n" + CMD)

# EKS: 10.100.0.0/16
s, e, p, n = common("10.100.", "192.168.45.12", api_eps=["192.168.101.7", "192.168.160.44"], extra_ns=("amazon-cloudwatch",))
s.append(service("kube-system", "eks-extension-metrics-api",
    cluster_ip_spec(["10.100.168.198"], [port("metrics-api", 443, 10443)]),
    labels={"app.kubernetes.io/name": "eks-extension-metrics-api"}))
p.append(pod("kube-system", "aws-node-x2l9k", ["192.168.45.12"], {"k8s-app": "aws-node"}, host_network=True, node_ip="192.168.45.12"))
write(f"{out}/eks.yaml", "eks", s, e, p, n, "# An EKS cluster: service CIDR 10.100.0.0/16.\n" + CMD)

# k3s: 10.43.0.0/16, traefik LoadBalancer, and a Service named with a leading digit
s, e, p, n = common("10.43.", "10.0.2.15")
s.append(service("kube-system", "traefik",
    cluster_ip_spec(["10.43.87.10"], [port("web", 80, "web"), port("websecure", 443, "websecure")],
                    selector={"app.kubernetes.io/name": "traefik"}, typ="LoadBalancer"),
    labels={"app.kubernetes.io/managed-by": "Helm", "app.kubernetes.io/name": "traefik"},
    annotations={"meta.helm.sh/release-name": "traefik", "meta.helm.sh/release-namespace": "kube-system"},
    status={"loadBalancer": {"ingress": [{"ip": "10.0.2.15", "ipMode": "VIP"}]}}))
s.append(service("default", "1kubernetes", cluster_ip_spec(["10.43.1.1"], [port("https", 443, 6443)])))
write(f"{out}/k3s.yaml", "k3s", s, e, p, n, "# A k3s cluster: service CIDR 10.43.0.0/16.\n" + CMD)

# AKS: 10.0.0.0/16
s, e, p, n = common("10.0.", "10.224.0.4", extra_ns=("gatekeeper-system",))
s.append(service("kube-system", "metrics-server", cluster_ip_spec(["10.0.158.190"], [port(None, 443, 4443)],
    selector={"k8s-app": "metrics-server"}), labels={"addonmanager.kubernetes.io/mode": "Reconcile", "k8s-app": "metrics-server"}))
write(f"{out}/aks.yaml", "aks", s, e, p, n, "# An AKS cluster: service CIDR 10.0.0.0/16.\n" + CMD)

# OpenShift: 172.30.0.0/16, DNS in openshift-dns
s, e, p, n = common("172.30.", "10.0.128.5", dns_ns="openshift-dns", dns_name="dns-default",
                    extra_ns=("openshift-ingress", "openshift-apiserver"))
s[1]["metadata"]["annotations"]["service.beta.openshift.io/serving-cert-secret-name"] = "dns-default-metrics-tls"
s.append(service("openshift-ingress", "router-internal-default",
    cluster_ip_spec(["172.30.211.14"], [port("http", 80, "http"), port("https", 443, "https"), port("metrics", 1936)],
                    selector={"ingresscontroller.operator.openshift.io/deployment-ingresscontroller": "default"})))
write(f"{out}/openshift.yaml", "openshift", s, e, p, n, "# An OpenShift cluster: service network 172.30.0.0/16.\n" + CMD)

# GKE: 34.118.224.0/20 (not RFC 1918), zones and hints
s, e, p, n = common("34.118.", "10.128.0.17", zone="us-central1-a", dns_ip_last="224.10")
s[0]["spec"]["clusterIP"] = s[0]["spec"]["clusterIPs"][0] = "34.118.224.1"
for svc in s:
    if svc["metadata"]["name"] == "web":
        svc["metadata"]["annotations"]["cloud.google.com/neg"] = '{"ingress":true}'
        svc["metadata"]["annotations"]["cloud.google.com/neg-status"] = Lit(json.dumps(
            {"network_endpoint_groups": {"80": "k8s1-5c2f5a42-shop-web-80-2d0b6b6d"}, "zones": ["us-central1-a"]}) + "\n")
        svc["spec"]["clusterIP"] = svc["spec"]["clusterIPs"][0] = "34.118.230.7"
    if svc["metadata"]["name"] == "cart":
        svc["spec"]["clusterIP"] = svc["spec"]["clusterIPs"][0] = "34.118.230.8"
s.append(service("kube-system", "default-http-backend",
    cluster_ip_spec(["34.118.233.97"], [port("http", 80, 8080)], selector={"k8s-app": "glbc"}, typ="NodePort"),
    labels={"addonmanager.kubernetes.io/mode": "Reconcile", "k8s-app": "glbc"}))
write(f"{out}/gke.yaml", "gke", s, e, p, n, "# A GKE cluster: service range 34.118.224.0/20.\n" + CMD)
