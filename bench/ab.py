#!/usr/bin/env python3
"""A/B of servers side by side: `docker run --rm busybox true` alternated between them.

    bench/ab.py ROUNDS SOCKET...        e.g. bench/ab.py 150 /run/a/api.sock /run/b/api.sock

Each round runs the command once against every server, in turn (the order reversed every
other round), so that a change of the machine's speed (this VM's moves by ~1.5x within
minutes) falls on all of them alike; prints each server's median, mean and 10th/90th
percentiles in ms. CMD overrides the docker arguments (default: run --rm busybox true).
The servers (hako serve builds, each with its own root and socket) are the caller's.
"""
import os
import statistics
import subprocess
import sys
import time


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    rounds = int(sys.argv[1])
    socks = sys.argv[2:]
    cmd = os.environ.get("CMD", "run --rm busybox true").split()
    times = {s: [] for s in socks}
    for i in range(rounds):
        for s in socks if i % 2 == 0 else socks[::-1]:
            env = dict(os.environ, DOCKER_HOST="unix://" + s)
            start = time.perf_counter()
            subprocess.run(["docker"] + cmd, env=env, check=True, stdout=subprocess.DEVNULL)
            times[s].append((time.perf_counter() - start) * 1000)
    for s in socks:
        v = sorted(times[s])
        print("%-40s median %.2f  mean %.2f  p10 %.2f  p90 %.2f" % (
            s, statistics.median(v), statistics.mean(v), v[len(v) // 10], v[len(v) * 9 // 10]))


if __name__ == "__main__":
    main()
