#!/usr/bin/python3
"""Independent checksum check of a pcap: scapy recomputes every IPv4 header
and TCP/UDP checksum from scratch and compares with what is in the file.

Usage: scapy_checksums.py FILE.pcap -> prints a JSON summary; exit 1 on any
mismatch. Must run under Debian's /usr/bin/python3 (python3-scapy).
"""
import json
import sys

from scapy.all import IP, IPv6, TCP, UDP, Ether, rdpcap


def main(path):
    checked, bad = 0, []
    for i, pkt in enumerate(rdpcap(path)):
        if IP not in pkt and IPv6 not in pkt:
            continue
        fresh = pkt.copy()
        if IP in fresh:
            del fresh[IP].chksum
        for layer in (TCP, UDP):
            if layer in fresh:
                if layer is UDP and IP in pkt and pkt[UDP].chksum == 0:
                    continue  # IPv4 UDP without a checksum
                del fresh[layer].chksum
        fresh = Ether(bytes(fresh))
        for layer in (IP, TCP, UDP):
            if layer in pkt and pkt[layer].chksum != fresh[layer].chksum:
                bad.append({"packet": i, "layer": layer.__name__,
                            "found": pkt[layer].chksum, "want": fresh[layer].chksum})
        checked += 1
    print(json.dumps({"checked": checked, "bad": bad[:20], "bad_count": len(bad)}))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
