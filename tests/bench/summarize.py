#!/usr/bin/env python3
"""summarize.py RESULTS_DIR -> the benchmark's one markdown table, on stdout.

Reads RESULTS_DIR/figures.tsv (lines of server, figure, value; one per measurement and
repetition) and RESULTS_DIR/env.txt. Every cell is the median over the repetitions and, in
brackets, its ratio to the best peer's figure (the peers: every server but svcdns and the
reflector). The best is the highest for rates, the lowest for everything else.
"""
import csv
import os
import statistics
import sys

ORDER = ["svcdns", "nsd", "knot", "unbound", "dnsmasq", "kresd", "reflector"]
NAMES = {"svcdns": "svcdns", "nsd": "NSD", "knot": "Knot DNS", "unbound": "Unbound",
         "dnsmasq": "dnsmasq", "kresd": "Knot Resolver", "reflector": "reflector"}
MIB = 1 / 1024  # figures.tsv has KiB

# (label, figure, higher is better, scale, decimals)
ROWS = [
    ("hits qps", "hits_qps", True, 1, 0),
    ("misses qps (search-path NXDOMAIN)", "misses_qps", True, 1, 0),
    ("forwarded, from cache qps", "forward_qps", True, 1, 0),
    ("hits qps ÷ reflector hits qps", "hits_ceiling", True, 1, 2),
    ("CPU µs/query hits (user + kernel)", "hits_us", False, 1, 2),
    ("CPU µs/query misses", "misses_us", False, 1, 2),
    ("CPU µs/query forwarded, cached", "forward_us", False, 1, 2),
    ("hits p50 / p99 at fixed rate (ms)", "hits_p", False, 1, 3),
    ("misses p50 / p99 (ms)", "misses_p", False, 1, 3),
    ("forwarded p50 / p99 (ms)", "forward_p", False, 1, 3),
    ("RSS 10k Services (MiB)", "rss10k", False, MIB, 1),
    ("RSS 100k Services (MiB)", "rss100k", False, MIB, 1),
    ("startup 100k, start to first answer (s)", "startup100k", False, 1, 2),
    ("restart 100k, svcdns's files in --manifest-cache (s)", "restart100k", False, 1, 2),
    ("full reload 100k, to first new answer (s)", "reload100k", False, 1, 2),
    ("one change at 100k: one file (svcdns) / one record (s)", "reload1_100k", False, 1, 3),
    ("peak RSS during the full reload, VmHWM (MiB)", "hwm_reload", False, MIB, 1),
    ("RSS 100k after the reload (MiB)", "rss100k_after", False, MIB, 1),
]


def number(x):
    try:
        return float(x)
    except ValueError:
        return None  # NA, FAIL


def main():
    d = sys.argv[1]
    vals = {}
    with open(os.path.join(d, "figures.tsv")) as f:
        for server, figure, value in csv.reader(f, delimiter="\t"):
            vals.setdefault((server, figure), []).append(value)

    def med(server, figure):
        xs = [v for v in map(number, vals.get((server, figure), [])) if v is not None]
        return statistics.median(xs) if xs else None

    servers = [s for s in ORDER if any(k[0] == s for k in vals)]
    fig = {}
    for s in servers:
        for _, key, *_ in ROWS:
            fig[s, key] = med(s, key)
        for t in ("hits", "misses", "forward"):
            u, k = med(s, f"{t}_us_usr"), med(s, f"{t}_us_sys")
            fig[s, f"{t}_us"] = None if u is None else u + k
            fig[s, f"{t}_us_split"] = (u, k)
            fig[s, f"{t}_p"] = med(s, f"{t}_p99")  # the ratio is taken on p99
            fig[s, f"{t}_p50"] = med(s, f"{t}_p50")
        ceiling = med("reflector", "hits_qps")
        h = fig[s, "hits_qps"]
        fig[s, "hits_ceiling"] = h / ceiling if h and ceiling else None

    peers = [s for s in servers if s not in ("svcdns", "reflector")]
    env = os.path.join(d, "env.txt")
    if os.path.exists(env):
        print("\n".join("    " + line for line in open(env).read().strip().splitlines()) + "\n")
    print("| figure | " + " | ".join(NAMES[s] for s in servers) + " |")
    print("|---|" + "---:|" * len(servers))
    for label, key, higher, scale, nd in ROWS:
        known = [fig[s, key] for s in peers if fig[s, key] is not None]
        best = (max(known) if higher else min(known)) if known else None
        cells = []
        for s in servers:
            v = fig[s, key]
            if v is None:
                cells.append("-")
                continue
            text = f"{v * scale:,.{nd}f}"
            if key.endswith("_us"):
                u, k = fig[s, key + "_split"]
                text += f" ({u:.2f} + {k:.2f})"
            elif key.endswith("_p"):
                p50 = fig[s, key + "50"]
                text = f"{p50:.{nd}f} / {text}" if p50 is not None else f"- / {text}"
            if best:
                text += f" [{v / best:.2f}×]"
            cells.append(text)
        print(f"| {label} | " + " | ".join(cells) + " |")
    print("\n[r×]: the figure ÷ the best peer's (NSD, Knot DNS, Unbound, dnsmasq, Knot Resolver);"
          " for qps higher is better, for everything else lower; latency ratios are of p99.")


if __name__ == "__main__":
    main()
