#!/usr/bin/python3
"""The measuring half of scripts/bench/e2e (which sets up the topology of
topo.sh, builds the helpers and tears everything down; run that, not this).

For each count of other Services: installs the generated tables (iptables in
sye-ipt, nftables in sye-nft, a config file for the appliance), then for each
repetition runs every load through every way, the order of the ways rotated
per repetition; the appliance runs only while it is measured (its worker
polls CPU 1, which the kernel routers need). Prints the table of medians.
"""
import argparse
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.realpath(__file__))
sys.path.insert(0, HERE)
import cpu  # noqa: E402
import gen  # noqa: E402

SERVERS = ["sye-s%d" % i for i in (1, 2, 3)]
BACKENDS = ["10.245.0.1%d" % i for i in (1, 2, 3)]
WAYS = {"plain": "rt", "appliance": "ap", "iptables": "ipt", "nftables": "nft"}
LOADS = ["http keep-alive", "http close", "udp"]
UNIT = {"http keep-alive": "req/s", "http close": "req/s", "udp": "pkt/s"}
METRICS = "http://127.0.0.1:9476/metrics"
ADMIN = "127.0.0.1:9477"


class BenchError(Exception):
    pass


class ClientHung(Exception):
    pass


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def nsx(ns, *cmd):
    return ["ip", "netns", "exec", ns] + list(cmd)


def pinned(args, *cmd):
    """cmd on CPU 0 (the load side), at the bench's nice level."""
    return ["nice", "-n", str(args.nice), "taskset", "-c", "0"] + list(cmd)


def run(cmd, **kw):
    return subprocess.run(cmd, check=True, text=True, **kw)


def output(cmd, timeout=60):
    return subprocess.run(cmd, check=True, text=True, capture_output=True, timeout=timeout).stdout


class Procs:
    """Every long-running process this script starts, by pid (also written to
    WORK/pids so that scripts/bench/e2e's trap can stop them after a crash)."""

    def __init__(self, work):
        self.work = work
        self.live = []

    def start(self, name, cmd):
        log_path = os.path.join(self.work, name + ".log")
        with open(log_path, "w") as out:
            proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                    start_new_session=True)
        self.live.append(proc)
        with open(os.path.join(self.work, "pids"), "a") as f:
            f.write("%d\n" % proc.pid)
        return proc

    def stop(self, proc, first=signal.SIGTERM, grace=10.0):
        for sig, wait in ((first, grace), (signal.SIGKILL, 3.0)):
            if proc.poll() is not None:
                break
            try:
                os.kill(proc.pid, sig)
                proc.wait(timeout=wait)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                pass
        if proc in self.live:
            self.live.remove(proc)

    def stop_all(self):
        for proc in list(self.live):
            self.stop(proc, grace=3.0)


def tail(path, lines=15):
    try:
        with open(path, errors="replace") as f:
            return "".join(f.readlines()[-lines:])
    except OSError:
        return ""


# --- counters from the namespaces ---------------------------------------------


def udp_received(ns):
    """Datagrams that reached the UDP layer of namespace ns (delivered or
    dropped at a full socket: either way the proxy delivered them)."""
    text = output(nsx(ns, "cat", "/proc/net/snmp"))
    rows = [line.split()[1:] for line in text.splitlines() if line.startswith("Udp:")]
    udp = dict(zip(rows[0], (int(v) for v in rows[1])))
    return udp["InDatagrams"] + udp["RcvbufErrors"]


def kernel_rx(way):
    """Packets the kernel router of `way` received on its two legs."""
    w = WAYS[way]
    text = output(nsx("sye-" + w, "cat", "/sys/class/net/%s-c/statistics/rx_packets" % w,
                      "/sys/class/net/%s-b/statistics/rx_packets" % w))
    return sum(int(x) for x in text.split())


def conntrack_count(ns):
    try:
        return int(output(nsx(ns, "cat", "/proc/sys/net/netfilter/nf_conntrack_count")).strip())
    except (subprocess.CalledProcessError, ValueError):
        return 0


def softnet_dropped():
    """Packets dropped at full per-CPU backlogs (RPS targets), all CPUs."""
    total = 0
    with open("/proc/net/softnet_stat") as f:
        for line in f:
            total += int(line.split()[1], 16)
    return total


METRIC = re.compile(r'^(switchyard_[a-z_]+)(?:\{([^}]*)\})?\s+([0-9.eE+-]+)\s*$')


def appliance_metrics():
    """{name or name{reason}: sum over cores} from the appliance's /metrics."""
    text = output(nsx("sye-ap", "curl", "-s", "-m", "2", METRICS), timeout=10)
    sums = {}
    for line in text.splitlines():
        m = METRIC.match(line)
        if not m:
            continue
        name, labels, value = m.group(1), m.group(2) or "", float(m.group(3))
        reason = re.search(r'reason="([^"]+)"', labels)
        key = "%s{%s}" % (name, reason.group(1)) if reason else name
        sums[key] = sums.get(key, 0.0) + value
    return sums


# --- the bench ------------------------------------------------------------------


class Bench:
    def __init__(self, args):
        self.args = args
        self.work = args.work
        self.procs = Procs(self.work)
        self.servers = []  # nginx and UDP sink processes
        self.appliance = None
        self.results = []  # dicts, one per measured run
        self.loads = {}  # Services count -> {way: seconds to install}

    # servers ------------------------------------------------------------------

    def start_servers(self):
        for i, ns in enumerate(SERVERS, 1):
            conf = os.path.join(self.work, "nginx-%s.conf" % ns)
            tmp = os.path.join(self.work, "nginx-%s" % ns)
            os.makedirs(tmp, exist_ok=True)
            with open(conf, "w") as f:
                f.write(NGINX_CONF.format(tmp=tmp, name=ns))
            self.servers.append(self.procs.start("nginx-" + ns, nsx(ns, *pinned(self.args, "nginx", "-c", conf, "-p", tmp))))
            self.servers.append(self.procs.start("sink-" + ns, nsx(ns, *pinned(self.args, self.args.udp, "sink", "9000"))))
        deadline = time.monotonic() + 10
        for ns, ip in zip(SERVERS, BACKENDS):
            while True:
                r = subprocess.run(nsx(ns, "curl", "-s", "-m", "1", "-o", "/dev/null", "-w", "%{http_code}", "http://%s/" % ip),
                                   capture_output=True, text=True)
                if r.stdout == "200":
                    break
                if time.monotonic() > deadline:
                    raise BenchError("nginx in %s does not answer:\n%s" % (ns, tail(os.path.join(self.work, "nginx-%s.log" % ns))))
                time.sleep(0.1)

    # tables -------------------------------------------------------------------

    def install_kernel_tables(self, count):
        t = time.monotonic()
        text = gen.iptables(count, BACKENDS, not self.args.no_random_fully)
        run(nsx("sye-ipt", self.args.iptables_restore), input=text)
        took_ipt = time.monotonic() - t
        t = time.monotonic()
        subprocess.run(nsx("sye-nft", "nft", "delete", "table", "ip", "sye-kube-proxy"), capture_output=True)
        path = os.path.join(self.work, "nft-%d.nft" % count)
        with open(path, "w") as f:
            f.write(gen.nft(count, BACKENDS, not self.args.no_random_fully))
        run(nsx("sye-nft", "nft", "-f", path))
        took_nft = time.monotonic() - t
        self.loads[count] = {"iptables": took_ipt, "nftables": took_nft}
        log("  tables for %d other Services: iptables-restore %.1f s, nft -f %.1f s" % (count, took_ipt, took_nft))

    def appliance_config(self, count):
        pmd = self.args.pmd
        path = os.path.join(self.work, "switchyard-%d.toml" % count)
        with open(path, "w") as f:
            f.write(APPLIANCE_CONF.format(pmd=pmd, worker=self.args.worker_cpu))
            f.write(gen.switchyard(count, BACKENDS))
        return path

    # the appliance --------------------------------------------------------------

    def start_appliance(self, config, count):
        t = time.monotonic()
        name = "switchyard-%d" % count
        # Each instance masquerades with an address of its own: the servers
        # still hold the previous instance's connections in TIME_WAIT (60 s),
        # and a new process cannot know which of its source ports those used
        # (see dataplane/src/flow/ports.rs); a new address meets none of them.
        self.instances = getattr(self, "instances", 0) + 1
        with open(config) as f:
            text = f.read()
        config = config.replace(".toml", "-%d.toml" % self.instances)
        masq = 'ipv4 = "10.245.0.254"'
        if masq not in text:
            raise BenchError("the appliance config has no %s line to give this instance its own address" % masq)
        with open(config, "w") as f:
            f.write(text.replace(masq, 'ipv4 = "10.245.0.%d"' % (254 - self.instances % 200)))
        # Its worker pins itself to CPU 1 (the config); the control thread runs
        # on CPU 0 with the load.
        self.appliance = self.procs.start(name, nsx("sye-ap", "nice", "-n", str(self.args.nice), self.args.binary, "run", "-c", config))
        # Usually up in a second; on a machine loaded by others the start has
        # been seen to take up to half a minute.
        deadline = time.monotonic() + 120
        while True:
            if self.appliance.poll() is not None:
                raise BenchError("switchyard exited (status %s):\n%s" % (self.appliance.returncode, tail(os.path.join(self.work, name + ".log"))))
            try:
                # Up once it answers (the Service tables are compiled before
                # the endpoint starts); serving is checked below.
                if appliance_metrics().get("switchyard_published_generation", 0) >= 1:
                    break
            except (subprocess.CalledProcessError, subprocess.TimeoutExpired):
                pass
            if time.monotonic() > deadline:
                raise BenchError("switchyard did not come up in 120 s:\n%s" % tail(os.path.join(self.work, name + ".log")))
            time.sleep(0.1)
        # First requests: the appliance resolves the servers and learns the client.
        self.via("appliance")
        for _ in range(50):
            r = subprocess.run(nsx("sye-cl", "curl", "-s", "-m", "1", "-o", "/dev/null", "-w", "%{http_code}", "http://10.97.0.1/"),
                               capture_output=True, text=True)
            if r.stdout == "200":
                break
        else:
            raise BenchError("no answer through the appliance:\n%s" % tail(os.path.join(self.work, name + ".log")))
        return time.monotonic() - t

    def stop_appliance(self):
        if self.appliance is not None:
            self.procs.stop(self.appliance, first=signal.SIGINT, grace=40.0)
            self.appliance = None

    # one run ------------------------------------------------------------------

    def via(self, way):
        run(nsx("sye-cl", "ip", "route", "replace", "10.97.0.0/16", "via", GATEWAY[way], "dev", "cl-" + WAYS[way]))

    def measure(self, way, load, count, rep):
        # Debian's wrk now and then never exits after its run (a known wrk
        # bug, not the network: the next run is fine); such a run is retried.
        for attempt in range(3):
            try:
                return self.measure_once(way, load, count, rep)
            except ClientHung as e:
                log("    %s; retrying" % e)
        raise BenchError("the client hung three times: %s %s %d" % (way, load, count))

    def measure_once(self, way, load, count, rep):
        self.via(way)
        d = self.args.duration
        groups = {"servers": [p.pid for p in self.servers]}
        threads = {}
        if self.appliance is not None:
            threads["switchyard"] = self.appliance.pid
        ksoft = cpu.kernel_threads("ksoftirqd/")
        for name, pid in ksoft.items():
            groups[name] = [pid]
        before_udp = sum(udp_received(ns) for ns in SERVERS) if load == "udp" else 0
        before_drop = softnet_dropped()
        before_app = appliance_metrics() if way == "appliance" else {}
        before_rx = kernel_rx(way) if way != "appliance" else before_app.get("switchyard_rx_packets_total", 0.0)
        if load == "udp":
            cmd = nsx("sye-cl", *pinned(self.args, self.args.udp, "blast", "10.97.0.1", "9000", str(d),
                                        str(self.args.udp_flows), str(self.args.udp_size)))
        else:
            cmd = nsx("sye-cl", *pinned(self.args, "wrk", "-t1", "-c%d" % self.args.connections, "-d%ds" % d))
            if load == "http close":
                cmd += ["-H", "Connection: close"]
            cmd.append("http://10.97.0.1/")
        client = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
        groups["client"] = [client.pid]
        # Sample the middle of the run: start-up and the end stay out.
        time.sleep(0.25 * d)
        s0 = cpu.Sample(groups, threads)
        t0 = time.monotonic()
        time.sleep(0.5 * d)
        s1 = cpu.Sample(groups, threads)
        elapsed = time.monotonic() - t0
        try:
            out, _ = client.communicate(timeout=d + 30)
        except subprocess.TimeoutExpired:
            client.kill()
            client.communicate()
            raise ClientHung("the client did not finish in %d s: %s" % (d + 30, " ".join(cmd)))
        usage = cpu.usage(s0, s1, elapsed)
        res = {"way": way, "load": load, "services": count, "rep": rep, "usage": usage}
        if load == "udp":
            m = re.search(r"sent (\d+) refused (\d+)", out)
            if not m:
                raise BenchError("udp blast: %s" % out)
            received = sum(udp_received(ns) for ns in SERVERS) - before_udp
            res["sent"] = int(m.group(1))
            res["rate"] = received / d
            res["loss"] = 100.0 * (1 - received / res["sent"]) if res["sent"] else 0.0
        else:
            m = re.search(r"Requests/sec:\s+([0-9.]+)", out)
            if not m:
                raise BenchError("wrk printed no rate:\n%s" % out)
            res["rate"] = float(m.group(1))
            lat = re.search(r"Latency\s+([0-9.]+)(us|ms|s)\b", out)
            if lat:
                res["latency_ms"] = float(lat.group(1)) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[lat.group(2)]
            errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
            res["errors"] = sum(int(x) for x in errors.groups()) if errors else 0
            non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
            res["errors"] += int(non2xx.group(1)) if non2xx else 0
        res["backlog_drops"] = softnet_dropped() - before_drop
        if way == "appliance":
            after = appliance_metrics()
            res["proxy_rx"] = after.get("switchyard_rx_packets_total", 0.0) - before_rx
            res["appliance"] = {k: after[k] - before_app.get(k, 0.0) for k in after
                                if k.startswith(("switchyard_drops_total", "switchyard_flow_evictions_total",
                                                 "switchyard_rx_packets_total", "switchyard_tx_packets_total"))}
        else:
            res["proxy_rx"] = kernel_rx(way) - before_rx
        if way in ("iptables", "nftables"):
            res["conntrack"] = conntrack_count("sye-" + WAYS[way])
        res["limit"] = limit(way, usage, res, d)
        self.results.append(res)
        log("    %-9s %-15s %6d  %10.0f %-5s  %s" % (way, load, count, res["rate"], UNIT[load], res["limit"]))
        time.sleep(0.5)

    # the whole bench --------------------------------------------------------------

    def go(self):
        self.start_servers()
        ways = ["appliance", "plain", "iptables", "nftables"]
        for count in self.args.services:
            log("== %d other Services" % count)
            self.install_kernel_tables(count)
            config = self.appliance_config(count)
            for rep in range(self.args.reps):
                order = ways[rep % len(ways):] + ways[:rep % len(ways)]
                for way in order:
                    if way == "appliance":
                        up = self.start_appliance(config, count)
                        self.loads.setdefault(count, {})["appliance"] = up
                    try:
                        for load in LOADS:
                            self.measure(way, load, count, rep)
                    finally:
                        if way == "appliance":
                            self.stop_appliance()
            if count == self.args.services[-1]:
                self.appliance_snapshot(config, count)

    def appliance_snapshot(self, config, count):
        """The appliance's own view after a short run: `switchyard counters`."""
        self.start_appliance(config, count)
        try:
            subprocess.run(nsx("sye-cl", *pinned(self.args, "wrk", "-t1", "-c20", "-d1s", "-H", "Connection: close",
                                                 "http://10.97.0.1/")), capture_output=True, timeout=30)
            self.counters = output(nsx("sye-ap", self.args.binary, "counters", "--admin", ADMIN))
        finally:
            self.stop_appliance()


def limit(way, usage, res, duration):
    """Which CPU ran out, and what ran on it (percent of one CPU). For UDP,
    where packets were lost says it first: at the kernel's per-CPU backlog
    (the router's CPU did not keep up), before the appliance counted them
    (its af_packet ring was full: the appliance's CPU did not keep up), or
    in the appliance (its drop counters)."""
    c0, c1 = usage["cpu"].get(0), usage["cpu"].get(1)
    g = usage["groups"]
    t = usage["threads"]
    if c0 is None or c1 is None:
        return "?"
    load_side = "client %.0f%%, servers %.0f%%, softirq %.0f%%" % (g.get("client", 0), g.get("servers", 0), c0["softirq"])
    if way == "appliance":
        # The busiest thread is the polling worker; the rest is the control
        # thread (on CPU 0) and helpers.
        worker = max(t.values(), default=0.0)
        control = sum(t.values()) - worker
        load_side += ", appliance control %.0f%%" % control
        proxy = "worker %.0f%% (polls), softirq %.0f%%" % (worker, c1["softirq"])
    else:
        proxy = "router softirq %.0f%%" % c1["softirq"]
    lost_before = res.get("sent", 0) - res.get("proxy_rx", 0)
    if res.get("loss", 0) >= 2 and way == "appliance" and lost_before > 0.5 * res["loss"] / 100 * res["sent"]:
        where = "CPU1 appliance (af_packet ring full)"
    elif res.get("loss", 0) >= 2 and res.get("backlog_drops", 0) > 0.5 * res["loss"] / 100 * res["sent"]:
        where = "CPU1 proxy (backlog full)"
    elif way != "appliance" and c1["softirq"] + g.get("ksoftirqd/1", 0) >= 85:
        # The kernel router's work is softirq (inline or in ksoftirqd); CPU 1
        # busy with other users' processes is not the router running out.
        where = "CPU1 proxy"
    elif c0["busy"] >= 90:
        where = "CPU0 load"
    elif way == "appliance":
        where = "CPU1 appliance"
    else:
        where = "neither CPU full"
    ksoft = g.get("ksoftirqd/0", 0) + g.get("ksoftirqd/1", 0)
    if usage["others"] >= 25:
        where += " (noisy: others %.0f%%)" % usage["others"]
    return "%s | CPU0 %.0f%% (%s) | CPU1 %.0f%% (%s) | ksoftirqd %.0f%%, others %.0f%%" % (
        where, c0["busy"], load_side, c1["busy"], proxy, ksoft, usage["others"])


GATEWAY = {"plain": "198.51.100.1", "iptables": "198.51.100.9", "nftables": "198.51.100.17", "appliance": "198.51.100.25"}

NGINX_CONF = """daemon off;
master_process off;
worker_processes 1;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log warn;
events {{ worker_connections 8192; }}
http {{
  access_log off;
  keepalive_requests 1000000;
  keepalive_timeout 60s;
  client_body_temp_path {tmp};
  proxy_temp_path {tmp};
  fastcgi_temp_path {tmp};
  uwsgi_temp_path {tmp};
  scgi_temp_path {tmp};
  server {{
    listen 80 backlog=4096;
    location / {{ return 200 "{name}\\n"; }}
  }}
}}
"""

APPLIANCE_CONF = """# scripts/bench/e2e: the appliance between sye-cl and the servers' bridge.
[dataplane]
eal_args = ["--no-huge", "-m", "512", "--no-shconf", "--no-pci", "-l", "0", "--no-telemetry",
            "--log-level", "lib.eal:error",
            "--vdev", "net_{pmd}0,iface=ap-c", "--vdev", "net_{pmd}1,iface=ap-b"]
workers = [{worker}]
# The kernel paths may track nf_conntrack_max = 262144 connections (two
# tuples each); the same room here.
flow_capacity = 524288

[[port]]
name = "net_{pmd}0"
mac = "02:53:59:e2:e0:01"
ipv4 = "198.51.100.25"

[[port]]
name = "net_{pmd}1"
mac = "02:53:59:e2:e0:02"
ipv4 = "10.245.0.254"
ipv4_subnet = "10.245.0.0/24"
masquerade = true

[metrics]
listen = "127.0.0.1:9476"

[admin]
listen = "{admin}"

""".replace("{admin}", ADMIN)


# --- the report -------------------------------------------------------------------


def median_run(runs):
    """The run whose rate is the median (the lower middle for an even count)."""
    ordered = sorted(runs, key=lambda r: r["rate"])
    return ordered[(len(ordered) - 1) // 2]


def fmt_rate(x):
    return "{:,.0f}".format(x)


def report(bench):
    args = bench.args
    res = bench.results
    cell = {}
    for r in res:
        cell.setdefault((r["load"], r["services"], r["way"]), []).append(r)
    med = {k: statistics.median(r["rate"] for r in v) for k, v in cell.items()}

    print()
    print("End-to-end: the same client load through each way (median of %d runs of %d s; the appliance on %s)"
          % (args.reps, args.duration, "net_" + args.pmd))
    print("CPU 0: client (wrk / UDP blaster) and the 3 servers (nginx, UDP sink) with their network stacks;"
          " CPU 1: the proxy (the appliance's worker, or the kernel router by RPS).")
    print()
    hdr = "%-16s %-10s %8s %14s %-6s %17s %8s %8s %8s  %s" % (
        "load", "way", "services", "rate", "", "min-max", "÷plain", "÷iptabl", "÷nft", "limit (median run)")
    print(hdr)
    print("-" * len(hdr))
    for load in LOADS:
        for count in args.services:
            plain = med.get((load, count, "plain"))
            for way in ("plain", "appliance", "iptables", "nftables"):
                runs = cell.get((load, count, way))
                if not runs:
                    continue
                m = med[(load, count, way)]
                lo = min(r["rate"] for r in runs)
                hi = max(r["rate"] for r in runs)
                vs_plain = "%.2f" % (m / plain) if plain else "-"
                vs_ipt = vs_nft = ""
                if way == "appliance":
                    ipt = med.get((load, count, "iptables"))
                    nft = med.get((load, count, "nftables"))
                    vs_ipt = "%.2f" % (m / ipt) if ipt else "-"
                    vs_nft = "%.2f" % (m / nft) if nft else "-"
                where = median_run(runs)["limit"].split(" | ")[0]
                print("%-16s %-10s %8s %14s %-6s %17s %8s %8s %8s  %s" % (
                    load, way, count if way != "plain" else "(%d)" % count, fmt_rate(m), UNIT[load],
                    "%s-%s" % (fmt_rate(lo), fmt_rate(hi)), vs_plain, vs_ipt, vs_nft, where))
        print()
    print("services: other Services installed besides the measured one (plain routing has no Service tables; its")
    print("rows are the floor measured in the same phase). ÷plain: median rate over plain routing's; ÷iptabl and")
    print("÷nft: the appliance's median over the kernel NAT way's. UDP rate: datagrams that reached the servers.")

    print()
    print("Where the time went (median run of each cell; % of one CPU over the middle half of the run):")
    for load in LOADS:
        for count in args.services:
            for way in ("plain", "appliance", "iptables", "nftables"):
                runs = cell.get((load, count, way))
                if not runs:
                    continue
                r = median_run(runs)
                extra = []
                if load == "udp":
                    extra.append("sent %s/s, loss %.1f%% (%.1f%% before the proxy counted them)" % (
                        fmt_rate(r["sent"] / args.duration), r["loss"],
                        100.0 * max(0, r["sent"] - r.get("proxy_rx", 0)) / max(1, r["sent"])))
                else:
                    requests = r["rate"] * args.duration
                    extra.append("%.1f proxy pkts/req" % (r.get("proxy_rx", 0) / max(1.0, requests)))
                    if "latency_ms" in r:
                        extra.append("mean latency %.2f ms" % r["latency_ms"])
                    if r.get("errors"):
                        extra.append("wrk errors %d" % r["errors"])
                if r.get("backlog_drops"):
                    extra.append("backlog drops %d" % r["backlog_drops"])
                app = r.get("appliance")
                if app:
                    drops = {k[len("switchyard_drops_total{"):-1]: int(v) for k, v in app.items()
                             if k.startswith("switchyard_drops_total{") and v}
                    if drops:
                        extra.append("appliance drops %s" % drops)
                    ev = int(app.get("switchyard_flow_evictions_total", 0))
                    if ev:
                        extra.append("flow evictions %d" % ev)
                if "conntrack" in r:
                    extra.append("conntrack entries %d" % r["conntrack"])
                print("  %-15s %-9s %6s  %s%s" % (
                    load, way, count, r["limit"], ("; " + ", ".join(extra)) if extra else ""))
    print()
    print("CPU0/CPU1: busy share of each CPU (from /proc/stat; >= 90% counts as ran out); softirq: the kernel's packet")
    print("work on that CPU. client/servers/worker: run time of those processes/threads (schedstat), which includes the")
    print("softirq work done in their context, so the parts overlap. worker: the appliance's polling thread (it polls")
    print("whether or not there is work: its share shows how much of CPU 1 it got). others: every process outside this")
    print("bench (other users of the machine), both CPUs; with a high value that run is noisy.")

    print()
    print("Setting up the tables:")
    for count, t in bench.loads.items():
        print("  %6d other Services: iptables-restore %.1f s, nft -f %.1f s, appliance start to serving %.1f s" % (
            count, t.get("iptables", 0), t.get("nftables", 0), t.get("appliance", 0)))
    if getattr(bench, "counters", None):
        print()
        print("switchyard counters (after a 1 s Connection: close run, %d other Services):" % args.services[-1])
        print(bench.counters.rstrip())
    if args.json:
        with open(args.json, "w") as f:
            json.dump(res, f, indent=1)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--work", required=True)
    p.add_argument("--binary", required=True)
    p.add_argument("--udp", required=True, help="the built udp helper")
    p.add_argument("--services", default="10,10000", help="counts of other Services, comma-separated")
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--duration", type=int, default=4, help="seconds per run")
    p.add_argument("--connections", type=int, default=50, help="wrk connections")
    p.add_argument("--udp-flows", type=int, default=64)
    p.add_argument("--udp-size", type=int, default=18, help="UDP payload bytes (18: 60-byte frames)")
    p.add_argument("--pmd", choices=["af_packet", "af_xdp"], default="af_packet")
    p.add_argument("--worker-cpu", type=int, default=1)
    p.add_argument("--iptables-restore", default="iptables-restore")
    p.add_argument("--no-random-fully", action="store_true")
    p.add_argument("--nice", type=int, default=-10, help="nice level of the client, servers and appliance")
    p.add_argument("--json", help="also write every run's result to this file")
    args = p.parse_args()
    args.services = [int(x) for x in args.services.split(",") if x]
    bench = Bench(args)
    try:
        bench.go()
        report(bench)
    finally:
        bench.stop_appliance()
        bench.procs.stop_all()


def _on_signal(signum, _frame):
    raise KeyboardInterrupt("signal %d" % signum)


if __name__ == "__main__":
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _on_signal)
    try:
        main()
    except BenchError as e:
        print("bench/e2e: %s" % e, file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        print("bench/e2e: interrupted", file=sys.stderr)
        sys.exit(130)
    except subprocess.CalledProcessError as e:
        print("bench/e2e: %s" % e, file=sys.stderr)
        sys.exit(1)
