#!/usr/bin/env bash
# The topology of scripts/bench/e2e: one client, four ways through, one set of
# servers. Every name starts with sye- (namespaces) or lives inside a sye-
# namespace, so nothing here touches the test lab's sy-* names.
#
#   netns sye-cl (client)                     ways through                 netns sye-sw          servers
#   cl-rt  198.51.100.2/29  <-> rt-c  .1/29   sye-rt  plain routing  rt-b 10.245.0.1   br-rt ┐
#   cl-ipt 198.51.100.10/29 <-> ipt-c .9/29   sye-ipt iptables       ipt-b 10.245.0.2  br-ipt┤ bridge   br-s1 <-> sye-s1 eth0 10.245.0.11
#   cl-nft 198.51.100.18/29 <-> nft-c .17/29  sye-nft nftables       nft-b 10.245.0.3  br-nft┤ sye-br   br-s2 <-> sye-s2 eth0 10.245.0.12
#   cl-ap  198.51.100.26/29 <-> ap-c          sye-ap  the appliance  ap-b              br-ap ┘          br-s3 <-> sye-s3 eth0 10.245.0.13
#                                 (DPDK port 0, 198.51.100.25;   port 1, 10.245.0.254, masquerade)
#
# The client picks a way by its route to the VIPs (10.97.0.0/16): `topo.sh
# via rt|ipt|nft|ap`. Plain routing reaches the servers without NAT: each
# server also holds the measured VIP 10.97.0.1 on its loopback, and sye-rt
# has an ECMP route for it over the three servers with an L4 hash, so the
# same URL spreads over the same servers as through a NAT.
#
# CPUs: CPU 0 runs the client, the servers and their network stacks; CPU 1
# runs the proxy. The appliance's worker is pinned there by its config; the
# kernel routers get there by RPS on their veth ends (mask 2), while the
# client's and servers' ends steer back to CPU 0 (mask 1). That way every
# way through gets one CPU and the load side the other.
#
# Offloads (tx checksum, TSO, GSO) are off on every veth end, as DPDK
# af_packet needs (see scripts/lab/net); the same for all ways, so every way
# carries the same MTU-sized frames.
#
#   topo.sh up | down | via rt|ipt|nft|ap
#
# Needs root; run by scripts/bench/e2e, which also removes it.
set -euo pipefail

SERVERS=${SYE_SERVERS:-3}
WAYS=(rt ipt nft ap)

nsx() { local ns=$1; shift; ip netns exec "$ns" "$@"; }
off() { nsx "$1" ethtool -K "$2" tx off tso off gso off >/dev/null 2>&1 || true; }
rps() { nsx "$1" sh -c "echo $3 > /sys/class/net/$2/queues/rx-0/rps_cpus" 2>/dev/null || true; }
# Router side of way $1 on the client link: x.1, x.9, x.17, x.25.
gw() { case $1 in rt) echo 1 ;; ipt) echo 9 ;; nft) echo 17 ;; ap) echo 25 ;; esac; }

up() {
  for ns in sye-cl sye-sw "${WAYS[@]/#/sye-}"; do ip netns add "$ns"; done
  for i in $(seq 1 "$SERVERS"); do ip netns add "sye-s$i"; done
  # IPv4 only: no router solicitations or MLD reports in the measurements.
  for ns in sye-cl sye-sw "${WAYS[@]/#/sye-}" $(seq -f 'sye-s%g' 1 "$SERVERS"); do
    nsx "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
  done
  for ns in sye-cl sye-sw "${WAYS[@]/#/sye-}"; do nsx "$ns" ip link set lo up; done

  nsx sye-sw ip link add sye-br type bridge
  nsx sye-sw ip link set sye-br up
  # The bridge only switches: no netfilter on bridged frames in this namespace.
  nsx sye-sw sysctl -qw net.bridge.bridge-nf-call-iptables=0 2>/dev/null || true

  for w in "${WAYS[@]}"; do
    local ns=sye-$w g
    g=$(gw "$w")
    # Client link.
    ip link add "cl-$w" netns sye-cl type veth peer name "$w-c" netns "$ns"
    nsx sye-cl ip addr add "198.51.100.$((g + 1))/29" dev "cl-$w"
    nsx sye-cl ip link set "cl-$w" up
    nsx "$ns" ip link set "$w-c" up
    # Server-side link, on the bridge.
    ip link add "$w-b" netns "$ns" type veth peer name "br-$w" netns sye-sw
    nsx sye-sw ip link set "br-$w" master sye-br
    nsx sye-sw ip link set "br-$w" up
    nsx "$ns" ip link set "$w-b" up
    for dev in "$w-c" "$w-b"; do off "$ns" "$dev"; rps "$ns" "$dev" 2; done
    off sye-cl "cl-$w"; rps sye-cl "cl-$w" 1
    off sye-sw "br-$w"
    nsx sye-cl ip neigh flush dev "cl-$w" 2>/dev/null || true
  done
  for w in rt ipt nft; do
    local ns=sye-$w g i
    g=$(gw "$w")
    case $w in rt) i=1 ;; ipt) i=2 ;; nft) i=3 ;; esac
    nsx "$ns" ip addr add "198.51.100.$g/29" dev "$w-c"
    nsx "$ns" ip addr add "10.245.0.$i/24" dev "$w-b"
    nsx "$ns" sysctl -qw net.ipv4.ip_forward=1
    nsx "$ns" sysctl -qw net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.default.rp_filter=0
  done
  # Plain routing: ECMP over the servers, hashed on the L4 5-tuple.
  nsx sye-rt sysctl -qw net.ipv4.fib_multipath_hash_policy=1
  local hops=()
  for i in $(seq 1 "$SERVERS"); do hops+=(nexthop via "10.245.0.1$i" dev rt-b); done
  nsx sye-rt ip route add 10.97.0.1/32 "${hops[@]}"
  # The appliance's namespace: its veths belong to DPDK; the kernel there has
  # no addresses, no forwarding and no IPv6 (above), so it ignores the frames.

  for i in $(seq 1 "$SERVERS"); do
    local ns=sye-s$i
    ip link add eth0 netns "$ns" type veth peer name "br-s$i" netns sye-sw
    nsx sye-sw ip link set "br-s$i" master sye-br
    nsx sye-sw ip link set "br-s$i" up
    off sye-sw "br-s$i"
    nsx "$ns" ip link set lo up
    nsx "$ns" ip addr add 10.97.0.1/32 dev lo
    nsx "$ns" ip addr add "10.245.0.1$i/24" dev eth0
    nsx "$ns" ip link set eth0 up
    nsx "$ns" sysctl -qw net.ipv4.conf.eth0.arp_ignore=1 net.ipv4.conf.all.arp_ignore=1
    nsx "$ns" sysctl -qw net.core.somaxconn=4096 net.ipv4.tcp_max_syn_backlog=4096
    nsx "$ns" ip route add default via 10.245.0.1
    off "$ns" eth0; rps "$ns" eth0 1
  done
  # The client opens many short connections: a wide port range, and reuse of
  # its own TIME_WAIT ports.
  nsx sye-cl sysctl -qw net.ipv4.ip_local_port_range="1024 65000" net.ipv4.tcp_tw_reuse=1
  via rt
}

via() {
  local w=$1 g
  g=$(gw "$w")
  [ -n "$g" ] || { echo "topo.sh: no way $w" >&2; exit 2; }
  nsx sye-cl ip route replace 10.97.0.0/16 via "198.51.100.$g" dev "cl-$w"
}

down() {
  # Deleting a namespace deletes the veth ends inside it and so their peers.
  local ns
  for ns in $(ip netns list | awk '$1 ~ /^sye-/ {print $1}'); do
    ip netns del "$ns" 2>/dev/null || true
  done
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  via) via "${2:-}" ;;
  -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
  *) echo "usage: topo.sh up|down|via rt|ipt|nft|ap (see --help)" >&2; exit 2 ;;
esac
