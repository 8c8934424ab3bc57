#!/usr/bin/python3
"""Service tables of the same shape for each path of scripts/bench/e2e.

One measured Service (TCP 80 and UDP 9000 on VIP 10.97.0.1, backends the
server namespaces) plus N other Services (TCP 80 each, three endpoints that
exist on no host; they are never hit, they only make the tables big), written
as:

  iptables   iptables-restore input of kube-proxy's iptables shape: nat
             PREROUTING/OUTPUT -> KUBE-SERVICES (one rule per Service port,
             the measured one in the middle, i.e. an average walk) ->
             KUBE-SVC-* (mark for masquerade, then `statistic --mode random
             --probability 1/n, 1/(n-1), ...`) -> KUBE-SEP-* (DNAT);
             KUBE-POSTROUTING masquerades marked packets (--random-fully, as
             kube-proxy does where the kernel has it); filter KUBE-FORWARD.
  nft        `nft -f` input of kube-proxy's nftables shape: a verdict map
             `ip daddr . meta l4proto . th dport` -> per-Service-port chain
             with `numgen random mod n vmap` -> endpoint chain (DNAT), a
             mark-for-masquerade chain and a masquerading chain.
  switchyard [[service]] entries for the appliance's config file.

    gen.py iptables|nft|switchyard --services N --backends A,B,C
"""
import argparse
import hashlib
import sys

VIP = "10.97.0.1"
TCP_PORT = 80
UDP_PORT = 9000
MARK = "0x4000"


def other_services(n):
    """(name, vip, port, proto, [backend ip]) of the N unused Services."""
    out = []
    for i in range(n):
        vip = "10.97.%d.%d" % (1 + i // 250, 1 + i % 250)
        backends = ["10.245.0.%d" % (100 + (3 * i + k) % 150) for k in range(3)]
        out.append(("bench/other-%d:http" % i, vip, TCP_PORT, "tcp", backends))
    return out


def all_services(n, backends):
    """The measured Service's two ports in the middle of the others."""
    measured = [
        ("bench/target:http", VIP, TCP_PORT, "tcp", backends),
        ("bench/target:udp", VIP, UDP_PORT, "udp", backends),
    ]
    others = other_services(n)
    mid = len(others) // 2
    return others[:mid] + measured + others[mid:]


def chain_id(prefix, *parts):
    """kube-proxy names chains by a hash of the Service port (and endpoint)."""
    digest = hashlib.sha256("/".join(str(p) for p in parts).encode()).hexdigest()
    return prefix + digest[:16].upper()


def iptables(n, backends, random_fully=True):
    services = all_services(n, backends)
    nat_chains = ["KUBE-SERVICES", "KUBE-NODEPORTS", "KUBE-POSTROUTING", "KUBE-MARK-MASQ"]
    rules = []
    for name, vip, port, proto, eps in services:
        svc = chain_id("KUBE-SVC-", name, proto)
        nat_chains.append(svc)
        rules.append("-A KUBE-SERVICES -d %s/32 -p %s -m comment --comment \"%s cluster IP\" -m %s --dport %d -j %s"
                     % (vip, proto, name, proto, port, svc))
        # kube-proxy with a cluster CIDR: traffic from outside it is masqueraded.
        rules.append("-A %s ! -s 10.245.0.0/16 -d %s/32 -p %s -m %s --dport %d -j KUBE-MARK-MASQ"
                     % (svc, vip, proto, proto, port))
        for k, ep in enumerate(eps):
            sep = chain_id("KUBE-SEP-", name, proto, ep)
            nat_chains.append(sep)
            left = len(eps) - k
            if left > 1:
                rules.append("-A %s -m comment --comment \"%s -> %s:%d\" -m statistic --mode random --probability %.11f -j %s"
                             % (svc, name, ep, port, 1.0 / left, sep))
            else:
                rules.append("-A %s -m comment --comment \"%s -> %s:%d\" -j %s" % (svc, name, ep, port, sep))
            rules.append("-A %s -s %s/32 -j KUBE-MARK-MASQ" % (sep, ep))
            rules.append("-A %s -p %s -m %s -j DNAT --to-destination %s:%d" % (sep, proto, proto, ep, port))
    rules.append("-A KUBE-SERVICES -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS")
    out = ["*nat"]
    out += [":%s - [0:0]" % c for c in nat_chains]
    out.append("-A PREROUTING -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES")
    out.append("-A OUTPUT -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES")
    out.append("-A POSTROUTING -m comment --comment \"kubernetes postrouting rules\" -j KUBE-POSTROUTING")
    out.append("-A KUBE-MARK-MASQ -j MARK --set-xmark %s/%s" % (MARK, MARK))
    out.append("-A KUBE-POSTROUTING -m mark ! --mark %s/%s -j RETURN" % (MARK, MARK))
    out.append("-A KUBE-POSTROUTING -j MARK --set-xmark %s/0x0" % MARK)
    out.append("-A KUBE-POSTROUTING -m comment --comment \"kubernetes service traffic requiring SNAT\" -j MASQUERADE"
               + (" --random-fully" if random_fully else ""))
    out += rules
    out.append("COMMIT")
    out.append("*filter")
    out.append(":KUBE-FORWARD - [0:0]")
    out.append("-A FORWARD -m comment --comment \"kubernetes forwarding rules\" -j KUBE-FORWARD")
    out.append("-A KUBE-FORWARD -m conntrack --ctstate INVALID -j DROP")
    out.append("-A KUBE-FORWARD -m mark --mark %s/%s -j ACCEPT" % (MARK, MARK))
    out.append("-A KUBE-FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT")
    out.append("COMMIT")
    return "\n".join(out) + "\n"


def nft(n, backends, random_fully=True):
    services = all_services(n, backends)
    out = ["table ip sye-kube-proxy {"]
    elements = []
    chains = []
    for name, vip, port, proto, eps in services:
        svc = chain_id("service-", name, proto)
        elements.append("%s . %s . %d : goto %s" % (vip, proto, port, svc))
        verdicts = []
        for k, ep in enumerate(eps):
            epc = chain_id("endpoint-", name, proto, ep)
            verdicts.append("%d : goto %s" % (k, epc))
            chains.append("  chain %s {\n    ip saddr %s jump mark-for-masquerade\n"
                          "    meta l4proto %s dnat to %s:%d\n  }" % (epc, ep, proto, ep, port))
        chains.append("  chain %s {\n    ip daddr %s %s dport %d ip saddr != 10.245.0.0/16 jump mark-for-masquerade\n"
                      "    numgen random mod %d vmap { %s }\n  }"
                      % (svc, vip, proto, port, len(eps), ", ".join(verdicts)))
    out.append("  map service-ips {\n    type ipv4_addr . inet_proto . inet_service : verdict")
    out.append("    elements = {\n      " + ",\n      ".join(elements) + "\n    }\n  }")
    out.append("  chain nat-prerouting {\n    type nat hook prerouting priority dstnat; policy accept;\n    jump services\n  }")
    out.append("  chain nat-output {\n    type nat hook output priority -100; policy accept;\n    jump services\n  }")
    out.append("  chain nat-postrouting {\n    type nat hook postrouting priority srcnat; policy accept;\n    jump masquerading\n  }")
    out.append("  chain filter-forward {\n    type filter hook forward priority filter; policy accept;\n"
               "    ct state invalid drop\n  }")
    out.append("  chain mark-for-masquerade {\n    mark set mark or %s\n  }" % MARK)
    out.append("  chain masquerading {\n    mark and %s == 0 return\n    mark set mark xor %s\n    masquerade%s\n  }"
               % (MARK, MARK, " fully-random" if random_fully else ""))
    out.append("  chain services {\n    ip daddr . meta l4proto . th dport vmap @service-ips\n  }")
    out += chains
    out.append("}")
    return "\n".join(out) + "\n"


def switchyard(n, backends):
    out = []
    for name, vip, port, proto, eps in all_services(n, backends):
        out.append("[[service]]\nname = \"%s\"\nvip = \"%s\"\nport = %d\nprotocol = \"%s\"\nbackends = [%s]\n"
                   % (name, vip, port, proto.upper(), ", ".join("\"%s:%d\"" % (ep, port) for ep in eps)))
    return "\n".join(out)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("kind", choices=["iptables", "nft", "switchyard"])
    p.add_argument("--services", type=int, required=True, help="other Services besides the measured one")
    p.add_argument("--backends", required=True, help="the measured Service's backend addresses, comma-separated")
    p.add_argument("--no-random-fully", action="store_true", help="masquerade without fully random source ports")
    args = p.parse_args()
    backends = [b for b in args.backends.split(",") if b]
    if args.kind == "iptables":
        sys.stdout.write(iptables(args.services, backends, not args.no_random_fully))
    elif args.kind == "nft":
        sys.stdout.write(nft(args.services, backends, not args.no_random_fully))
    else:
        sys.stdout.write(switchyard(args.services, backends))


if __name__ == "__main__":
    main()
