#!/usr/bin/python3
"""Run a command under a process that reaps orphans.

    subreaper.py [--pidfile F] [--child-pidfile F] [--grace S] [--linger] [--] CMD [ARG...]

containerd's shims detach from containerd and are re-parented to the nearest
"child subreaper" above them, or to PID 1 when there is none. On machines
whose PID 1 does not reap (containers, sandboxes), every exited shim then
stays a zombie. This wrapper marks itself a child subreaper
(prctl(PR_SET_CHILD_SUBREAPER)), runs CMD as its main child and reaps every
process that ends up as its child.

Signals: SIGTERM, SIGINT and SIGHUP are forwarded to the main child and mark
the wrapper as stopping.

Exit: once the main child has exited, the wrapper keeps reaping until it has
no children left. It waits at most --grace seconds (default 5) for them,
counted from the later of the main child's exit and the stop signal, then
SIGKILLs whatever is left and exits. With --linger, a main child that exits
without a stop signal (a crash, or a test's SIGKILL) does not start that
clock: the wrapper goes on reaping the orphans (containerd's shims survive a
containerd crash by design) until none are left or it is signalled.

The exit status is the main child's: its code, or 128 + signal number.
"""

import ctypes
import os
import signal
import sys
import time

PR_SET_CHILD_SUBREAPER = 36
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
WATCHED = set(STOP_SIGNALS) | {signal.SIGCHLD}


def die(msg):
    print(f"subreaper: {msg}", file=sys.stderr)
    sys.exit(125)


def parse(argv):
    opts = {"pidfile": None, "child_pidfile": None, "grace": 5.0, "linger": False}
    i = 0
    while i < len(argv):
        a = argv[i]
        if a == "--":
            i += 1
            break
        if a in ("-h", "--help"):
            print(__doc__)
            sys.exit(0)
        if not a.startswith("--"):
            break
        if a == "--linger":
            opts["linger"] = True
            i += 1
            continue
        if a in ("--pidfile", "--child-pidfile", "--grace"):
            if i + 1 >= len(argv):
                die(f"{a} needs a value")
            key = a[2:].replace("-", "_")
            opts[key] = float(argv[i + 1]) if key == "grace" else argv[i + 1]
            i += 2
            continue
        die(f"unknown option {a}")
    cmd = argv[i:]
    if not cmd:
        die("no command given (see --help)")
    return opts, cmd


def write_pid(path, pid):
    if path:
        tmp = f"{path}.tmp"
        with open(tmp, "w") as f:
            f.write(f"{pid}\n")
        os.replace(tmp, path)


def remove_pid(path, pid):
    """Removes a pid file unless someone has since written another pid."""
    if not path:
        return
    try:
        with open(path) as f:
            if f.read().strip() == str(pid):
                os.unlink(path)
    except OSError:
        pass


def children():
    """Pids whose parent is this process (scan of /proc/*/stat)."""
    me = os.getpid()
    out = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        # Field 4 (ppid) follows the ")" that closes the command name.
        fields = stat[stat.rfind(")") + 2:].split()
        if len(fields) > 1 and int(fields[1]) == me:
            out.append(int(name))
    return out


def status_code(status):
    if os.WIFEXITED(status):
        return os.WEXITSTATUS(status)
    if os.WIFSIGNALED(status):
        return 128 + os.WTERMSIG(status)
    return 1


def main():
    opts, cmd = parse(sys.argv[1:])

    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        die(f"prctl(PR_SET_CHILD_SUBREAPER): {os.strerror(ctypes.get_errno())}")

    # Signals are taken synchronously with sigtimedwait; block them first so
    # none is lost between spawning the child and entering the loop.
    signal.pthread_sigmask(signal.SIG_BLOCK, WATCHED)
    try:
        main_pid = os.posix_spawnp(
            cmd[0], cmd, os.environ,
            setsigmask=(),  # the child starts with nothing blocked
            setsigdef=tuple(WATCHED),
        )
    except OSError as e:
        die(f"cannot run {cmd[0]}: {e}")
    me = os.getpid()
    write_pid(opts["pidfile"], me)
    write_pid(opts["child_pidfile"], main_pid)

    main_status = None
    main_exit_at = None
    stop_at = None

    def deadline():
        if main_status is None:
            return None
        if stop_at is None and opts["linger"]:
            return None
        return max(main_exit_at, stop_at or 0.0) + opts["grace"]

    killed = False
    kill_at = None
    try:
        while True:
            # Reap everything that has exited.
            no_children = False
            while True:
                try:
                    pid, status = os.waitpid(-1, os.WNOHANG)
                except ChildProcessError:
                    no_children = True
                    break
                if pid == 0:
                    break
                if pid == main_pid and main_status is None:
                    main_status = status
                    main_exit_at = time.monotonic()
            if main_status is not None and no_children:
                break

            now = time.monotonic()
            limit = deadline()
            if limit is not None and now >= limit and not killed:
                left = children()
                if left:
                    print(f"subreaper: killing {len(left)} leftover process(es): "
                          f"{' '.join(map(str, left))}", file=sys.stderr)
                for pid in left:
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                killed = True
                kill_at = now
            if killed and now - kill_at > 10:
                print("subreaper: children did not go away after SIGKILL; giving up",
                      file=sys.stderr)
                break

            timeout = 1.0
            if limit is not None and not killed:
                timeout = max(0.01, min(timeout, limit - now))
            info = signal.sigtimedwait(WATCHED, timeout)
            if info is None or info.si_signo == signal.SIGCHLD:
                continue
            # A stop signal: pass it on to the main child while it lives.
            if stop_at is None:
                stop_at = time.monotonic()
            if main_status is None:
                try:
                    os.kill(main_pid, info.si_signo)
                except ProcessLookupError:
                    pass
    finally:
        remove_pid(opts["pidfile"], me)
        remove_pid(opts["child_pidfile"], main_pid)

    sys.exit(status_code(main_status) if main_status is not None else 1)


if __name__ == "__main__":
    main()
