#!/usr/bin/env python3
"""Poll one name until the expected answer arrives (startup and reload timing, smoke checks).

  dnsprobe.py PORT NAME [--wait S] [--interval MS] [--expect noerror|nxdomain|any] [--since T]

Sends an A query to 127.0.0.1:PORT every interval until the expected answer arrives
(noerror = NOERROR with at least one answer record), then prints
  <rcode> <ancount> <seconds since --since (default: start)> <first A address or ->
and exits 0; prints TIMEOUT ... and exits 1 after --wait seconds. Standard library only, so
that it starts fast: it is started before the server whose startup it times.
"""
import argparse
import os
import socket
import struct
import sys
import time

RCODES = {0: "NOERROR", 2: "SERVFAIL", 3: "NXDOMAIN", 5: "REFUSED"}


def build(qid, name):
    q = b"".join(bytes([len(label)]) + label.encode() for label in name.rstrip(".").split("."))
    return struct.pack(">HHHHHH", qid, 0x0100, 1, 0, 0, 0) + q + b"\0" + struct.pack(">HH", 1, 1)


def first_a(resp, off):
    """The first A record's address in the answer section; off is where it starts."""
    for _ in range(struct.unpack(">H", resp[6:8])[0]):
        if resp[off] & 0xC0 == 0xC0:
            off += 2
        else:
            while resp[off]:
                off += resp[off] + 1
            off += 1
        rtype, _, _, rdlen = struct.unpack(">HHIH", resp[off:off + 10])
        off += 10
        if rtype == 1 and rdlen == 4:
            return socket.inet_ntoa(resp[off:off + 4])
        off += rdlen
    return "-"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("port", type=int)
    ap.add_argument("name")
    ap.add_argument("--wait", type=float, default=0.5, help="give up after this many seconds")
    ap.add_argument("--interval", type=float, default=5.0, help="ms between tries")
    ap.add_argument("--expect", default="noerror", choices=["noerror", "nxdomain", "any"])
    ap.add_argument("--since", type=float, default=None, help="epoch time elapsed is counted from")
    a = ap.parse_args()
    t0 = a.since if a.since else time.time()
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(a.interval / 1000.0)
    qid = os.getpid() & 0xFFFF
    deadline = time.time() + a.wait
    while True:
        qid = (qid + 1) & 0xFFFF
        pkt = build(qid, a.name)
        try:
            s.sendto(pkt, ("127.0.0.1", a.port))
            while True:  # skip late replies to earlier tries
                resp, _ = s.recvfrom(4096)
                if len(resp) >= 12 and struct.unpack(">H", resp[:2])[0] == qid:
                    break
            rcode = resp[3] & 0x0F
            an = struct.unpack(">H", resp[6:8])[0]
            if (a.expect == "any" or (a.expect == "noerror" and rcode == 0 and an > 0)
                    or (a.expect == "nxdomain" and rcode == 3)):
                print(RCODES.get(rcode, str(rcode)), an, "%.3f" % (time.time() - t0),
                      first_a(resp, len(pkt)))
                return 0
        except OSError:  # timeout, or nothing listening yet (ICMP port unreachable)
            pass
        if time.time() > deadline:
            print("TIMEOUT", 0, "%.3f" % (time.time() - t0), "-")
            return 1
        time.sleep(a.interval / 1000.0)


if __name__ == "__main__":
    sys.exit(main())
