#!/usr/bin/python3
"""The lab test's client, run in the client namespace (ip netns exec sy-client).

Talks to the lab's echo servers, which answer each line (TCP) or datagram
(UDP) with "POD_NAME what was sent". Standard library only; every result is
one JSON line on stdout.

    lab_client.py udp HOST PORT COUNT
        COUNT datagrams, each from a new socket (a new source port, so a new
        flow): {"pods": {pod: answers}, "lost": n, "strangers": [sources
        other than HOST:PORT]}

    lab_client.py churn HOST PORT PAUSE_MS
        New TCP connections one after another (connect, one line, its
        answer, close; then a pause) until a line arrives on stdin or stdin
        closes:
        {"pods": {pod: answers}, "failures": [reason, ...]}

    lab_client.py hold HOST PORT COUNT
        Opens COUNT connections and keeps them; prints {"opened": COUNT},
        then follows commands on stdin, one JSON line each:
          ask        a line on every open connection: {"answers": [pod or
                     "error: ..." or "closed", ...]}
          finish I   connection I ends as a client ends a session: a last
                     line, its answer, then our half closed and the server's
                     end awaited: {"answer": pod, "clean": true} (clean: the
                     server closed with a FIN, not a reset or a timeout)
          quit
"""

import json
import select
import socket
import sys
import time

TIMEOUT = 3.0


def pod_of(answer, sent):
    """The pod name in an answer to `sent`, or None."""
    text = answer.decode(errors="replace").rstrip("\n")
    suffix = " " + sent
    return text[: -len(suffix)] if text.endswith(suffix) and len(text) > len(suffix) else None


def out(obj):
    print(json.dumps(obj), flush=True)


def udp(host, port, count):
    pods, lost, strangers = {}, 0, []
    for i in range(count):
        sent = f"query-{i}"
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.settimeout(1.0)
            s.sendto(sent.encode(), (host, port))
            try:
                data, source = s.recvfrom(2048)
            except socket.timeout:
                lost += 1
                continue
        if source != (host, port):
            strangers.append(f"{source[0]}:{source[1]}")
        key = pod_of(data, sent) or f"bad answer {data!r}"
        pods[key] = pods.get(key, 0) + 1
    out({"pods": pods, "lost": lost, "strangers": strangers})


def one_connection(host, port, i):
    """One short TCP session: the pod that answered, or raises."""
    sent = f"hello-{i}"
    with socket.create_connection((host, port), timeout=TIMEOUT) as s:
        s.sendall((sent + "\n").encode())
        answer = s.makefile("rb").readline()
    pod = pod_of(answer, sent)
    if pod is None:
        raise OSError(f"bad answer {answer!r}")
    return pod


def churn(host, port, pause):
    pods, failures, i = {}, [], 0
    while not select.select([sys.stdin], [], [], 0)[0]:
        i += 1
        try:
            pod = one_connection(host, port, i)
            pods[pod] = pods.get(pod, 0) + 1
        except OSError as e:
            failures.append(f"connection {i} at {time.strftime('%H:%M:%S')}: {e}")
        time.sleep(pause)
    out({"pods": pods, "failures": failures})


def hold(host, port, count):
    conns = []
    for _ in range(count):
        s = socket.create_connection((host, port), timeout=TIMEOUT)
        conns.append((s, s.makefile("rb")))
    out({"opened": len(conns)})
    closed = set()
    for line in sys.stdin:
        words = line.split()
        if not words or words[0] == "quit":
            break
        if words[0] == "ask":
            answers = []
            for i, (s, f) in enumerate(conns):
                if i in closed:
                    answers.append("closed")
                    continue
                try:
                    s.sendall(b"ping\n")
                    answers.append(pod_of(f.readline(), "ping") or "error: bad or no answer")
                except OSError as e:
                    answers.append(f"error: {e}")
            out({"answers": answers})
        elif words[0] == "finish":
            i = int(words[1])
            s, f = conns[i]
            closed.add(i)
            result = {"answer": None, "clean": False}
            try:
                s.sendall(b"last\n")
                result["answer"] = pod_of(f.readline(), "last")
                s.shutdown(socket.SHUT_WR)
                rest = f.read()
                result["clean"] = rest == b""
                if rest:
                    result["error"] = f"more after the last answer: {rest!r}"
            except OSError as e:
                result["error"] = str(e)
            s.close()
            out(result)
        else:
            out({"error": f"unknown command {line.strip()!r}"})


def main():
    cmd, host, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
    if cmd == "udp":
        udp(host, port, int(sys.argv[4]))
    elif cmd == "churn":
        churn(host, port, int(sys.argv[4]) / 1000)
    elif cmd == "hold":
        hold(host, port, int(sys.argv[4]))
    else:
        sys.exit(f"unknown command {cmd}")


if __name__ == "__main__":
    main()
