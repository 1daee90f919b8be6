#!/usr/bin/env python3
"""The whole machine's CPU per `docker run --rm busybox true`, server by server.

    bench/cpu.py ROUNDS BLOCK SOCKET...

Runs BLOCK runs against each server in turn (ROUNDS times, the order alternating), and
reads /proc/stat around each block: busy CPU (user, nice, system, irq, softirq) and wall
time per run, medians over the rounds. The CPU is everything the run costs the machine: the
docker CLI's own (about 20 ms on this VM), the server, shims, runtime, the container and the
kernel's work for them (namespaces torn down in workqueues, RCU). On a 2-core VM a run is
as much a matter of CPU as of waiting: `docker run` against `hako serve` keeps both cores
busy ~60% of its wall time. Run it on an otherwise idle machine; sockets as for bench/ab.py
(unix:///path or /path).
"""
import os
import statistics
import subprocess
import sys
import time


def busy_and_idle():
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    user, nice, system, idle, iowait, irq, softirq = v[:7]
    return user + nice + system + irq + softirq, idle + iowait


def block(sock, n, cmd):
    env = dict(os.environ, DOCKER_HOST=sock if "://" in sock else "unix://" + sock)
    hz = os.sysconf("SC_CLK_TCK")
    b0, _ = busy_and_idle()
    t0 = time.perf_counter()
    for _ in range(n):
        subprocess.run(["docker"] + cmd, env=env, check=True, stdout=subprocess.DEVNULL)
    wall = (time.perf_counter() - t0) * 1000 / n
    b1, _ = busy_and_idle()
    return wall, (b1 - b0) * 1000 / hz / n


def main():
    if len(sys.argv) < 4:
        sys.exit(__doc__)
    rounds, n, socks = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3:]
    cmd = os.environ.get("CMD", "run --rm busybox true").split()
    got = {s: ([], []) for s in socks}
    for r in range(rounds):
        for s in socks if r % 2 == 0 else socks[::-1]:
            wall, cpu = block(s, n, cmd)
            got[s][0].append(wall)
            got[s][1].append(cpu)
    for s in socks:
        wall, cpu = got[s]
        print(
            f"{s}: wall {statistics.median(wall):.1f} ms/run, "
            f"busy CPU {statistics.median(cpu):.1f} ms/run "
            f"({rounds} blocks of {n}, medians)"
        )


if __name__ == "__main__":
    main()
