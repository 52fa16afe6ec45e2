#!/usr/bin/env python3
"""The scaled mode: svcdns following a Kubernetes API server (the fake of tests/e2e) that holds
N Services, each with an EndpointSlice of 3 ready endpoints, in 100 namespaces.

Measures, with svcdns pinned to CPU 0 (--workers 1) and this script and the fake on CPU 1:
  first sync      from svcdns's start to the first NOERROR for the zone apex (every kind
                  listed, 500 objects a page); also svcdns's own CPU seconds up to then, which
                  the fake's speed does not move
  RSS             VmRSS 2 s after the first sync, and the peak VmHWM; the same objects as
                  manifest files (one JSON List per namespace) for comparison
  per event       a stream of EndpointSlice changes (one endpoint's address each) at --rate
                  per second for --duration seconds: svcdns's CPU (utime + stime of its
                  process) over the window per event applied (svcdns_kubernetes_events_total)
                  and as a share of one core; the time from a change to its first answer for
                  every 10th change (a probe polling every 5 ms from another thread)

Results: a markdown table on stdout and figures.tsv in the results directory.
Standard library plus dnspython; runs from tests/bench/kube.sh."""

import argparse
import json
import os
import pathlib
import random
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.request

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "e2e"))

import dns.message  # noqa: E402
import dns.query  # noqa: E402
import dns.rcode  # noqa: E402

from fake_apiserver import FakeAPIServer  # noqa: E402

ZONE = "cluster.local"
NAMESPACES = 100
ENDPOINTS = 3
TICK = os.sysconf("SC_CLK_TCK")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def answers(port, name, rdtype="A", timeout=0.5):
    try:
        r = dns.query.udp(dns.message.make_query(name, rdtype), "127.0.0.1", port=port,
                          timeout=timeout)
    except Exception:  # noqa: BLE001 - not up yet
        return None
    return r


def cpu_seconds(pid):
    fields = pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK   # utime, stime


def status_kib(pid, key):
    for line in pathlib.Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return 0


def metric(http_port, name):
    with urllib.request.urlopen(f"http://127.0.0.1:{http_port}/metrics", timeout=5) as r:
        for line in r.read().decode().splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
    return 0.0


class Svcdns:
    """svcdns on CPU 0, stopped by its PID."""

    def __init__(self, binary, args, log):
        self.port = free_port()
        self.http_port = free_port()
        argv = ["taskset", "-c", "0", binary, "--cluster-domain", ZONE, "--workers", "1",
                "--upstream", "none", "--listen", f"127.0.0.1:{self.port}",
                "--http", f"127.0.0.1:{self.http_port}", "--reload-interval", "0"] + args
        self.log = open(log, "wb")
        self.start = time.monotonic()
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=self.log,
                                     stderr=self.log)

    def wait(self, name, rcode=dns.rcode.NOERROR, timeout=600):
        """Seconds from the start to the first answer with rcode."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(f"svcdns exited with {self.proc.returncode}; see {self.log.name}")
            r = answers(self.port, name, timeout=0.05)
            if r is not None and r.rcode() == rcode:
                return time.monotonic() - self.start
            time.sleep(0.005)
        raise SystemExit(f"no answer for {name} in {timeout} s; see {self.log.name}")

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


def populate(n):
    api = FakeAPIServer(watch_timeout=3600)
    names = [f"ns{j}" for j in range(NAMESPACES)]
    for ns in names:
        api.add_namespace(ns)
    for i in range(n):
        a = i + 10   # 10.96.0.10 on: clear of the network address and the first host
        ip = f"10.{96 + a // 65536 % 16}.{a // 256 % 256}.{a % 256}"
        eps = [f"10.{128 + (i * ENDPOINTS + e) // 65536 % 64}.{(i * ENDPOINTS + e) // 256 % 256}."
               f"{(i * ENDPOINTS + e) % 256}" for e in range(ENDPOINTS)]
        api.add_service(f"svc{i}", names[i % NAMESPACES], cluster_ip=ip, endpoints=eps)
    api.compact()   # the fake's history of the setup: nobody watches from before it
    return api


def write_manifests(api, directory):
    """The fake's objects as one JSON List per namespace, as `kubectl get -o json` prints."""
    directory.mkdir(parents=True, exist_ok=True)
    by_ns = {}
    for res in ("services", "endpointslices"):
        for obj in api.objects(res):
            by_ns.setdefault(obj["metadata"]["namespace"], []).append(obj)
    for ns, items in by_ns.items():
        (directory / f"{ns}.json").write_text(json.dumps({"apiVersion": "v1", "kind": "List",
                                                          "items": items}))


def probe(port, name, started, out):
    """Polls name until it answers, then records the seconds since started."""
    deadline = started + 5
    while time.monotonic() < deadline:
        r = answers(port, name, timeout=0.2)
        if r is not None and r.rcode() == dns.rcode.NOERROR and r.answer:
            out.append(time.monotonic() - started)
            return
        time.sleep(0.005)
    out.append(float("inf"))


def stream(api, svc, rate, duration, n):
    """EndpointSlice changes at rate per second: each gives one Service's first endpoint a
    new address. Returns (changes, latencies of every 10th)."""
    slices = {o["metadata"]["labels"]["kubernetes.io/service-name"]: o["metadata"]["name"]
              for o in api.objects("endpointslices")}
    rng = random.Random(7)
    latencies, probes = [], []
    start = time.monotonic()
    k = 0
    while time.monotonic() - start < duration:
        due = start + k / rate
        now = time.monotonic()
        if due > now:
            time.sleep(due - now)
        i = rng.randrange(n)
        ns = f"ns{i % NAMESPACES}"
        ip = f"10.200.{k // 250 % 250}.{k % 250 + 1}"
        changed = time.monotonic()
        api.modify("endpointslices", slices[f"svc{i}"], ns,
                   fn=lambda o, ip=ip: o["endpoints"][0].update(addresses=[ip]))
        if k % 10 == 0:
            name = f"{ip.replace('.', '-')}.svc{i}.{ns}.svc.{ZONE}."
            t = threading.Thread(target=probe, args=(svc.port, name, changed, latencies))
            t.start()
            probes.append(t)
        k += 1
    for t in probes:
        t.join()
    return k, latencies


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--svcdns", required=True)
    ap.add_argument("--services", type=int, default=100000)
    ap.add_argument("--rate", type=float, default=100)
    ap.add_argument("--duration", type=float, default=30)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    os.sched_setaffinity(0, {1})
    figures = []

    def fig(name, value, unit):
        figures.append((name, value, unit))
        print(f"  {name}: {value:.3f} {unit}", file=sys.stderr)

    print(f"kube: {args.services} Services with {ENDPOINTS} endpoints each, in the fake",
          file=sys.stderr)
    t = time.monotonic()
    api = populate(args.services)
    api.start()
    print(f"kube: populated in {time.monotonic() - t:.1f} s", file=sys.stderr)
    svc = None
    try:
        svc = Svcdns(args.svcdns, ["--kubeconfig", api.kubeconfig()], out / "svcdns-api.log")
        fig("first sync (s)", svc.wait(ZONE + "."), "s")
        fig("svcdns CPU during the first sync (s)", cpu_seconds(svc.proc.pid), "s")
        time.sleep(2)
        fig("RSS after the first sync (MiB)", status_kib(svc.proc.pid, "VmRSS") / 1024, "MiB")
        fig("peak RSS, VmHWM (MiB)", status_kib(svc.proc.pid, "VmHWM") / 1024, "MiB")
        before_cpu = cpu_seconds(svc.proc.pid)
        before_events = metric(svc.http_port,
                               'svcdns_kubernetes_events_total{kind="endpointslices"}')
        t = time.monotonic()
        changes, latencies = stream(api, svc, args.rate, args.duration, args.services)
        time.sleep(1)
        window = time.monotonic() - t
        cpu = cpu_seconds(svc.proc.pid) - before_cpu
        events = metric(svc.http_port,
                        'svcdns_kubernetes_events_total{kind="endpointslices"}') - before_events
        fig("changes made", changes, "")
        fig("events applied", events, "")
        fig("change rate (/s)", changes / args.duration, "/s")
        fig("svcdns CPU per event (us)", cpu / max(events, 1) * 1e6, "us")
        fig("svcdns CPU share of one core during the stream (%)", cpu / window * 100, "%")
        latencies.sort()
        fig("change to answer, p50 (ms)", statistics.median(latencies) * 1e3, "ms")
        fig("change to answer, p99 (ms)",
            latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1e3, "ms")
        fig("change to answer, max (ms)", latencies[-1] * 1e3, "ms")
        api_rss = status_kib(svc.proc.pid, "VmRSS") / 1024
        fig("RSS after the stream (MiB)", api_rss, "MiB")
        svc.stop()
        svc = None
        write_manifests(api, out / "manifests")
        svc = Svcdns(args.svcdns, ["--manifests", str(out / "manifests")],
                     out / "svcdns-manifests.log")
        fig("manifests: start to first answer (s)", svc.wait(ZONE + "."), "s")
        time.sleep(2)
        files_rss = status_kib(svc.proc.pid, "VmRSS") / 1024
        fig("manifests: RSS (MiB)", files_rss, "MiB")
        fig("RSS, API / manifests", api_rss / files_rss, "")
    finally:
        if svc is not None:
            svc.stop()
        api.stop()
    with open(out / "figures.tsv", "w") as f:
        for name, value, unit in figures:
            f.write(f"{name}\t{value}\t{unit}\n")
    print(f"| figure ({args.services} Services, {args.services * ENDPOINTS} endpoints) | value |")
    print("|---|---:|")
    for name, value, unit in figures:
        print(f"| {name} | {value:,.3f} |" if isinstance(value, float) else
              f"| {name} | {value:,} |")


if __name__ == "__main__":
    main()
