#!/usr/bin/env python3
"""qclient.py PORT QUERYFILE N [--idle-pid PID] : send the first N queries of a dnsperf query
file to 127.0.0.1:PORT one at a time, and print the response codes that came back.

Made for counting a server's instructions per query (callgrind.sh): every query is sent
only after the answer to the one before, and, with --idle-pid, only once every thread of that
process sleeps again. The server then handles each query from the same idle state, one query
per event-loop wakeup, and the same N queries cost the same instructions on every run;
without the wait, whether the next query arrives before the server goes back to sleep is
chance, and the counts move by 10-20%.

The query IDs are the line numbers, so the same N queries are the same bytes every time.
A query unanswered for 5 s is sent again, up to 3 times; then the script fails.
"""
import argparse
import collections
import glob
import socket
import struct
import sys
import time

from dnsprobe import RCODES, build


def wait_idle(pid, deadline=10.0):
    """Until every thread of pid is sleeping (S) or the deadline; valgrind threads waiting for
    their turn sleep too, so this sees the one running thread go back to epoll_wait."""
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        states = []
        for stat in glob.glob(f"/proc/{pid}/task/*/stat"):
            try:
                with open(stat) as f:
                    states.append(f.read().rsplit(")", 1)[1].split()[0])
            except OSError:
                pass  # a thread that just ended
        if states and all(s in "SI" for s in states):
            return
        time.sleep(0.0002)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("port", type=int)
    ap.add_argument("queries", help="dnsperf query file: NAME TYPE per line (TYPE is ignored: A)")
    ap.add_argument("n", type=int)
    ap.add_argument("--idle-pid", type=int, help="wait for this process to sleep before each query")
    a = ap.parse_args()
    with open(a.queries) as f:
        names = [line.split()[0] for _, line in zip(range(a.n), f)]
    if len(names) < a.n:
        sys.exit(f"qclient: {a.queries} has fewer than {a.n} queries")
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(5)
    rcodes = collections.Counter()
    for i, name in enumerate(names):
        qid = i & 0xFFFF
        pkt = build(qid, name)
        for _ in range(3):
            if a.idle_pid:
                wait_idle(a.idle_pid)
            s.sendto(pkt, ("127.0.0.1", a.port))
            try:
                while True:  # skip late replies to an earlier try
                    resp = s.recv(4096)
                    if len(resp) >= 12 and struct.unpack(">H", resp[:2])[0] == qid:
                        break
                break
            except socket.timeout:
                continue
        else:
            sys.exit(f"qclient: no answer to {name} after 3 tries")
        rcodes[RCODES.get(resp[3] & 0x0F, str(resp[3] & 0x0F))] += 1
    print(" ".join(f"{k}={v}" for k, v in sorted(rcodes.items())))


if __name__ == "__main__":
    main()
