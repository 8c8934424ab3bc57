#!/usr/bin/python3
"""Summarises what the appliance sent towards the pods: for each backend, how
many flows and packets it got, and whether every checksum is right (exit
status 1 if one is not). Part of the pcap demo (scripts/demo-pcap).

    pcap-report.py TO-PODS.pcap
"""
import argparse
import collections
import sys


def main(path):
    from scapy.all import IP, TCP, UDP, rdpcap

    flows = collections.defaultdict(set)
    packets = collections.Counter()
    bad = 0
    for pkt in rdpcap(path):
        if IP not in pkt:
            continue
        l4 = pkt[TCP] if TCP in pkt else pkt[UDP] if UDP in pkt else None
        if l4 is None:
            continue
        backend = f"{pkt[IP].dst}:{l4.dport}"
        flows[backend].add((pkt[IP].src, l4.sport))
        packets[backend] += 1
        fresh = pkt.copy()
        del fresh[IP].chksum
        del fresh[l4.__class__].chksum
        fresh = fresh.__class__(bytes(fresh))
        if fresh[IP].chksum != pkt[IP].chksum or fresh[l4.__class__].chksum != l4.chksum:
            bad += 1
    total = sum(len(f) for f in flows.values()) or 1
    print(f"{'BACKEND':<22} {'FLOWS':>7} {'PACKETS':>8}  SHARE")
    for backend in sorted(flows):
        n = len(flows[backend])
        print(f"{backend:<22} {n:>7} {packets[backend]:>8}  {'#' * round(40 * n / total)} {100 * n / total:.1f}%")
    print(f"checksums: {sum(packets.values()) - bad} good, {bad} bad (recomputed by scapy)")
    return 1 if bad else 0


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("pcap", metavar="TO-PODS.pcap", help="what the appliance sent towards the pods")
    sys.exit(main(ap.parse_args().pcap))
