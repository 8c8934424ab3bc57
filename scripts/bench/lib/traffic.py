"""Benchmark traffic for scripts/bench/dataplane: a pcap of client -> VIP
frames and the appliance config that serves those VIPs.

Pure Python (no scapy), so it runs with whatever python3 is on PATH. Every
frame has correct IPv4 and TCP/UDP checksums and is 60 bytes on the wire
(64 with the FCS), one frame per flow:

- VIPs 10.96.0.1 .. 10.96.0.<vips>, each serving TCP/80 and UDP/53;
- flows alternate TCP (ACK segments, i.e. established mid-stream) and UDP;
- clients 198.18.0.0/15, source ports from 10000 up: all 5-tuples distinct;
- backends 10.244.<vip>.<10+n>:8080 (TCP) / :5353 (UDP), reached through
  the backend port by the route 10.244.0.0/16.

Run as a script to write a pcap:  python3 traffic.py OUT.pcap [FLOWS] [VIPS]
"""

import struct
import sys

CLIENT_MAC = bytes.fromhex("020000000201")
APPLIANCE_MAC = bytes.fromhex("020000000001")
GATEWAY_MAC = "02:00:00:00:01:fe"
CLIENT_PORT_IPV4 = "192.0.2.1"
BACKEND_PORT_IPV4 = "10.244.255.254"
BACKEND_PREFIX = "10.244.0.0/16"
FRAME_LEN = 60

TCP, UDP = 6, 17
TCP_PORT, UDP_PORT = 80, 53
TCP_TARGET, UDP_TARGET = 8080, 5353


def vip(i):
    return "10.96.0.%d" % (1 + i)


def _ip(s):
    return bytes(int(x) for x in s.split("."))


def _csum(data):
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return (~total) & 0xFFFF


def frame(src, sport, dst, dport, proto):
    """One Ethernet/IPv4/TCP-or-UDP frame of FRAME_LEN bytes."""
    src_b, dst_b = _ip(src), _ip(dst)
    l4_len = FRAME_LEN - 14 - 20
    if proto == TCP:
        payload = b"\0" * (l4_len - 20)
        # seq, ack, data offset 5, flags PSH|ACK, window.
        l4 = struct.pack("!HHIIBBHHH", sport, dport, 0x01020304, 0x05060708, 5 << 4, 0x18, 65535, 0, 0) + payload
    else:
        payload = b"\0" * (l4_len - 8)
        l4 = struct.pack("!HHHH", sport, dport, l4_len, 0) + payload
    pseudo = src_b + dst_b + struct.pack("!BBH", 0, proto, l4_len)
    check = _csum(pseudo + l4)
    if proto == UDP and check == 0:
        check = 0xFFFF
    off = 16 if proto == TCP else 6
    l4 = l4[:off] + struct.pack("!H", check) + l4[off + 2:]
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + l4_len, 0x1234, 0x4000, 64, proto, 0, src_b, dst_b)
    ip = ip[:10] + struct.pack("!H", _csum(ip)) + ip[12:]
    eth = APPLIANCE_MAC + CLIENT_MAC + b"\x08\x00"
    out = eth + ip + l4
    assert len(out) == FRAME_LEN
    return out


def flows(count, vips):
    """(src, sport, dst, dport, proto) of `count` distinct flows."""
    for i in range(count):
        proto = TCP if i % 2 == 0 else UDP
        client = 0xC6120000 + 1 + (i // 4) % 130000  # 198.18.0.0/15
        src = "%d.%d.%d.%d" % (client >> 24, (client >> 16) & 255, (client >> 8) & 255, client & 255)
        sport = 10000 + (i % 50000)
        dport = TCP_PORT if proto == TCP else UDP_PORT
        yield src, sport, vip((i // 2) % vips), dport, proto


def write_pcap(path, count, vips):
    with open(path, "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        for n, (src, sport, dst, dport, proto) in enumerate(flows(count, vips)):
            data = frame(src, sport, dst, dport, proto)
            f.write(struct.pack("<IIII", n // 1000000, n % 1000000, len(data), len(data)))
            f.write(data)


def config(*, eal_args, vips, backends, masquerade, run_seconds, metrics_listen, flow_capacity=1 << 18):
    """The appliance's TOML config: port 0 = clients (pcap), port 1 = backends (null)."""
    q = lambda s: '"%s"' % s  # noqa: E731
    lines = [
        "[dataplane]",
        "eal_args = [%s]" % ", ".join(q(a) for a in eal_args),
        "workers = [1]",
        "flow_capacity = %d" % flow_capacity,
        "run_seconds = %d" % run_seconds,
        "",
        "[[port]]",
        'name = "net_pcap0"',
        "ipv4 = %s" % q(CLIENT_PORT_IPV4),
        "",
        "[[port]]",
        'name = "net_null1"',
        "ipv4 = %s" % q(BACKEND_PORT_IPV4),
        "masquerade = %s" % ("true" if masquerade else "false"),
        "",
        "[[route]]",
        "prefix = %s" % q(BACKEND_PREFIX),
        'port = "net_null1"',
        "gateway_mac = %s" % q(GATEWAY_MAC),
        "",
        "[metrics]",
        "listen = %s" % q(metrics_listen),
    ]
    for v in range(vips):
        for proto, port, target in (("TCP", TCP_PORT, TCP_TARGET), ("UDP", UDP_PORT, UDP_TARGET)):
            bk = ", ".join(q("10.244.%d.%d:%d" % (v, 10 + b, target)) for b in range(backends))
            lines += [
                "",
                "[[service]]",
                'name = "bench/svc%d:%s"' % (v, proto.lower()),
                "vip = %s" % q(vip(v)),
                "port = %d" % port,
                "protocol = %s" % q(proto),
                "backends = [%s]" % bk,
            ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    out = sys.argv[1]
    count = int(sys.argv[2]) if len(sys.argv) > 2 else 4096
    vips = int(sys.argv[3]) if len(sys.argv) > 3 else 8
    write_pcap(out, count, vips)
