#!/usr/bin/env python3
"""Generate one synthetic cluster-DNS dataset in the format of every server the benchmark runs.

The same ClusterIP Services come out as:
  manifests/<ns>.yaml          Kubernetes Service manifests, one multi-document file per
                               namespace (svcdns)
  zones/cluster.local.zone     RFC 1035 master file (NSD, Knot DNS)
  unbound-local-data.conf      local-zone + local-data include (Unbound)
  hosts                        /etc/hosts format (dnsmasq addn-hosts, Knot Resolver hints)
  zones/example.test.zone      the upstream's zone, for the forwarding test
  queries/hits.txt             dnsperf input: random existing Service A names
  queries/misses.txt           dnsperf input: search-path misses inside cluster.local (NXDOMAIN)
  queries/forward.txt          dnsperf input: names in the upstream zone example.test
  queries/forward-warm.txt     every upstream name once, to fill the forwarders' caches

Names: svc<i>.ns<j>.svc.cluster.local, i global (0..N-1), j = i % namespaces.
ClusterIPs: 10.96.0.10 + i, inside 10.96.0.0/12. Upstream addresses are in 192.0.2.0/24
(TEST-NET-1); they are only ever data in answers, nothing is sent to them.
Standard library only; the same seed gives the same files.
"""
import argparse
import ipaddress
import os
import random

BASE_IP = int(ipaddress.IPv4Address("10.96.0.10"))
UP_BASE = int(ipaddress.IPv4Address("192.0.2.0"))
ZONE = "cluster.local"
UPZONE = "example.test"

# what pods look up most; with ndots:5 each walks the search list first (the misses)
EXTERNAL = [
    "google.com", "github.com", "api.github.com", "registry-1.docker.io", "quay.io",
    "s3.amazonaws.com", "sts.amazonaws.com", "pypi.org", "files.pythonhosted.org",
    "www.example.com", "login.microsoftonline.com", "storage.googleapis.com",
    "gcr.io", "k8s.gcr.io", "registry.k8s.io", "ghcr.io", "api.stripe.com",
    "hooks.slack.com", "smtp.gmail.com", "ocsp.digicert.com",
]


def ip_str(n):
    return str(ipaddress.IPv4Address(n))


def soa(origin, ttl):
    return (f"$ORIGIN {origin}.\n$TTL {ttl}\n"
            f"@ 3600 IN SOA ns.dns.{origin}. hostmaster.{origin}. 1 7200 1800 86400 5\n"
            f"@ 3600 IN NS ns.dns.{origin}.\n"
            f"ns.dns 3600 IN A 127.0.0.1\n")


def manifest(name, ns, ip):
    return ("---\napiVersion: v1\nkind: Service\nmetadata:\n"
            f"  name: {name}\n  namespace: {ns}\n  labels:\n    app: {name}\nspec:\n"
            f"  type: ClusterIP\n  clusterIP: {ip}\n"
            "  ports:\n  - name: http\n    port: 80\n    protocol: TCP\n    targetPort: 8080\n"
            f"  selector:\n    app: {name}\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--services", type=int, default=10000)
    ap.add_argument("--namespaces", type=int, default=100)
    ap.add_argument("--out", required=True)
    ap.add_argument("--queries", type=int, default=100000, help="lines per query file")
    # 5,000 names fit every forwarder's cache with room to spare (svcdns's default 10,000
    # entries are split over 64 shards, so 10,000 names would evict each other)
    ap.add_argument("--upstream-names", type=int, default=5000)
    ap.add_argument("--ttl", type=int, default=30)
    ap.add_argument("--extra", default="",
                    help="comma-separated extra services (svc.ns) appended, for reload probes")
    ap.add_argument("--seed", type=int, default=42)
    a = ap.parse_args()
    rnd = random.Random(a.seed)
    for d in ("zones", "queries", "manifests"):
        os.makedirs(os.path.join(a.out, d), exist_ok=True)

    svcs = [(f"svc{i}", f"ns{i % a.namespaces}", ip_str(BASE_IP + i)) for i in range(a.services)]
    for extra in filter(None, a.extra.split(",")):
        name, ns = extra.split(".")
        svcs.append((name, ns, ip_str(BASE_IP + len(svcs))))

    with open(os.path.join(a.out, "zones", f"{ZONE}.zone"), "w") as z, \
         open(os.path.join(a.out, "unbound-local-data.conf"), "w") as u, \
         open(os.path.join(a.out, "hosts"), "w") as h:
        z.write(soa(ZONE, a.ttl))
        u.write(f'local-zone: "{ZONE}." static\n')
        for name, ns, ip in svcs:
            z.write(f"{name}.{ns}.svc {a.ttl} IN A {ip}\n")
            u.write(f'local-data: "{name}.{ns}.svc.{ZONE}. {a.ttl} IN A {ip}"\n')
            h.write(f"{ip} {name}.{ns}.svc.{ZONE}\n")

    by_ns = {}
    for s in svcs:
        by_ns.setdefault(s[1], []).append(s)
    for ns, items in by_ns.items():
        with open(os.path.join(a.out, "manifests", f"{ns}.yaml"), "w") as f:
            f.write("".join(manifest(name, ns, ip) for name, ns, ip in items))

    # the upstream zone has long TTLs, so the forwarders' caches stay warm during a run
    with open(os.path.join(a.out, "zones", f"{UPZONE}.zone"), "w") as z:
        z.write(soa(UPZONE, 86400))
        for i in range(a.upstream_names):
            z.write(f"host{i} 86400 IN A {ip_str(UP_BASE + (i % 256))}\n")

    q = os.path.join(a.out, "queries")
    plain = svcs[:a.services]  # not the --extra ones: they exist only after a reload
    with open(os.path.join(q, "hits.txt"), "w") as f:
        for _ in range(a.queries):
            name, ns, _ip = rnd.choice(plain)
            f.write(f"{name}.{ns}.svc.{ZONE} A\n")
    # search-path misses, as a pod in <ns> (search <ns>.svc.Z svc.Z Z, ndots:5) sends them for
    # an outside name, plus existing service names in a namespace that does not exist
    nss = [f"ns{j}" for j in range(a.namespaces)]
    with open(os.path.join(q, "misses.txt"), "w") as f:
        for k in range(a.queries):
            ext = rnd.choice(EXTERNAL)
            r = k % 4
            if r == 0:
                name = f"{ext}.{rnd.choice(nss)}.svc.{ZONE}"
            elif r == 1:
                name = f"{ext}.svc.{ZONE}"
            elif r == 2:
                name = f"{ext}.{ZONE}"
            else:
                i = rnd.randrange(a.services)
                name = f"svc{i}.ns{(i + 1) % a.namespaces}x.svc.{ZONE}"
            f.write(f"{name} A\n")
    with open(os.path.join(q, "forward.txt"), "w") as f:
        for _ in range(a.queries):
            f.write(f"host{rnd.randrange(a.upstream_names)}.{UPZONE} A\n")
    with open(os.path.join(q, "forward-warm.txt"), "w") as f:
        for i in range(a.upstream_names):
            f.write(f"host{i}.{UPZONE} A\n")
    print(f"{a.out}: {len(svcs)} services in {a.namespaces} namespaces, "
          f"{a.upstream_names} upstream names")


if __name__ == "__main__":
    main()
