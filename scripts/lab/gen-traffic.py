#!/usr/bin/python3
"""Writes a pcap of client flows to Service VIPs, for the pcap demo
(scripts/demo-pcap).

Each flow is a TCP SYN then a request (or a UDP query then a second one),
from clients 198.51.100.1-250 with distinct source ports, addressed to the
appliance's client-side MAC.

    gen-traffic.py OUT.pcap --flows 2000 --vip 10.96.0.10:80/tcp --vip 10.96.0.53:53/udp
"""
import argparse
import random


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out")
    ap.add_argument("--flows", type=int, default=2000)
    ap.add_argument("--vip", action="append", required=True, help="address:port/tcp|udp")
    ap.add_argument("--dst-mac", default="02:00:00:00:00:01")
    ap.add_argument("--src-mac", default="02:00:00:00:00:c0")
    ap.add_argument("--packets-per-flow", type=int, default=2)
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()
    # After the arguments, so that --help works without scapy.
    from scapy.all import IP, TCP, UDP, Ether, Raw, wrpcap

    rng = random.Random(args.seed)
    vips = []
    for v in args.vip:
        addr, rest = v.split(":")
        port, proto = rest.split("/")
        vips.append((addr, int(port), proto.lower()))

    flows, seen = [], set()
    while len(flows) < args.flows:
        client = f"198.51.100.{rng.randint(1, 250)}"
        sport = rng.randint(1024, 65000)
        vip = vips[len(flows) % len(vips)]
        if (client, sport, vip) in seen:
            continue
        seen.add((client, sport, vip))
        flows.append((client, sport, vip))

    packets = []
    for n in range(args.packets_per_flow):
        for client, sport, (addr, port, proto) in flows:
            l3 = Ether(src=args.src_mac, dst=args.dst_mac) / IP(src=client, dst=addr, ttl=64)
            if proto == "tcp":
                flags = "S" if n == 0 else "PA"
                payload = b"" if n == 0 else b"GET / HTTP/1.1\r\nHost: demo\r\n\r\n"
                packets.append(l3 / TCP(sport=sport, dport=port, flags=flags, seq=1000 + n) / Raw(payload))
            else:
                packets.append(l3 / UDP(sport=sport, dport=port) / Raw(b"\x12\x34query%d" % n))
    wrpcap(args.out, packets)
    print(f"wrote {len(packets)} packets of {len(flows)} flows to {args.out}")


if __name__ == "__main__":
    main()
