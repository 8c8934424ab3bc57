"""CPU accounting from /proc for scripts/bench/e2e: per-CPU time by kind
(/proc/stat) and per-process run time (schedstat of every thread) over the
measured part of a run, so the report can say which CPU ran out and what ran
on it.

On this kernel a task's run time includes the softirq work (packet
processing) done in its context, so a process's share and a CPU's softirq
share overlap; the CPU's busy share is the one that says whether it ran out.
"""
import os

TICK = os.sysconf("SC_CLK_TCK")


def cpu_times():
    """{cpu index: {kind: seconds}} from /proc/stat."""
    kinds = ["user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal"]
    out = {}
    with open("/proc/stat") as f:
        for line in f:
            parts = line.split()
            if parts and parts[0].startswith("cpu") and parts[0] != "cpu":
                out[int(parts[0][3:])] = {k: int(v) / TICK for k, v in zip(kinds, parts[1:9])}
    return out


def thread_seconds(pid):
    """{thread name:tid: seconds run} of every thread of pid (empty if gone)."""
    out = {}
    base = "/proc/%d/task" % pid
    try:
        tids = os.listdir(base)
    except OSError:
        return out
    for tid in tids:
        try:
            with open("%s/%s/schedstat" % (base, tid)) as f:
                ns = int(f.read().split()[0])
            with open("%s/%s/comm" % (base, tid)) as f:
                name = f.read().strip()
        except (OSError, ValueError, IndexError):
            continue
        out["%s:%s" % (name, tid)] = ns / 1e9
    return out


def process_seconds(pid):
    return sum(thread_seconds(pid).values())


def kernel_threads(prefix):
    """{name: pid} of the threads whose name starts with prefix (ksoftirqd/)."""
    out = {}
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                with open("/proc/%s/comm" % pid) as f:
                    name = f.read().strip()
            except OSError:
                continue
            if name.startswith(prefix):
                out[name] = int(pid)
    return out


def all_pids():
    return [int(p) for p in os.listdir("/proc") if p.isdigit()]


class Sample:
    """A snapshot of the CPUs, of named groups of our processes, of the
    threads of some of them (the appliance: worker vs control), and of every
    other process on the machine (other users' load)."""

    def __init__(self, groups, threads):
        self.cpus = cpu_times()
        self.groups = {label: sum(process_seconds(p) for p in pids) for label, pids in groups.items()}
        self.threads = {}
        for label, pid in threads.items():
            for name, t in thread_seconds(pid).items():
                self.threads["%s/%s" % (label, name)] = t
        ours = {p for pids in groups.values() for p in pids} | set(threads.values())
        self.others = {p: process_seconds(p) for p in all_pids() if p not in ours and p > 2}


def usage(before, after, elapsed):
    """Percent of one CPU: each CPU's busy and softirq share, each group,
    each sampled thread, and the other processes together (those alive at
    both samples: a lower bound)."""
    out = {"cpu": {}, "groups": {}, "threads": {}}
    for cpu, b in before.cpus.items():
        a = after.cpus.get(cpu, b)
        d = {k: a[k] - b[k] for k in b}
        total = sum(d.values()) or 1e-9
        out["cpu"][cpu] = {
            "busy": 100.0 * (total - d["idle"] - d["iowait"]) / total,
            "softirq": 100.0 * d["softirq"] / total,
        }
    for label, b in before.groups.items():
        out["groups"][label] = 100.0 * (after.groups.get(label, b) - b) / elapsed
    for label, b in before.threads.items():
        if label in after.threads:
            out["threads"][label] = 100.0 * (after.threads[label] - b) / elapsed
    others = sum(after.others[p] - t for p, t in before.others.items() if p in after.others)
    out["others"] = 100.0 * others / elapsed
    return out
