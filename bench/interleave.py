#!/usr/bin/env python3
"""Interleaved timing of a few shell commands, for a machine other jobs share.

    interleave.py [--runs N] [--warmup W] [--json FILE] [--md FILE] [--ref NAME]
                  -n NAME [--prepare CMD] [--daemon PIDFILE] CMD  [-n NAME ...]

hyperfine runs all of one command's runs, then all of the next one's: on this 2-core VM
that other sessions' builds share, the load often changed between two commands' blocks
(one bench run saw tar -x at load 1.8 and hako at load 4.7). Here every round runs each
command once, in turn, so a change of load hits all of them alike, and the table gives
the median of the rounds. Each command also gets its CPU time (user + system of the
command and its children, from getrusage), which other load disturbs far less than the
wall time.

`--prepare` runs untimed before each run of its command (e.g. a fresh filesystem).
`--daemon PIDFILE` adds the CPU time a daemon (dockerd) and its reaped children spent
during the run, for a command that is only a client of the daemon doing the work.
The JSON has hyperfine's shape (results[].command/times/user/system/mean/stddev) plus
per-run `cpu` times.
"""
import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time


def parse(argv):
    p = argparse.ArgumentParser()
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--json")
    p.add_argument("--md")
    p.add_argument("--ref", help="the command the ratios are relative to (default: first)")
    p.add_argument("--ms", action="store_true",
                   help="times in milliseconds, and no line per round (short commands)")
    opts, rest = p.parse_known_args(argv)
    cmds = []
    i = 0
    while i < len(rest):
        if rest[i] != "-n":
            sys.exit(f"expected -n NAME, got {rest[i]!r}")
        c = {"name": rest[i + 1], "prepare": None, "daemon": None}
        i += 2
        while rest[i] in ("--prepare", "--daemon"):
            c[rest[i][2:]] = rest[i + 1]
            i += 2
        c["cmd"] = rest[i]
        i += 1
        cmds.append(c)
    return opts, cmds


def sh(cmd):
    subprocess.run(["sh", "-c", cmd], check=True, stdin=subprocess.DEVNULL)


def daemon_cpu(pidfile):
    """(user, system) seconds of the daemon in `pidfile` plus its reaped children."""
    if not pidfile:
        return 0.0, 0.0
    pid = open(pidfile).read().strip()
    # Fields after the command name: utime is the 14th field, then stime, cutime, cstime.
    f = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    hz = os.sysconf("SC_CLK_TCK")
    return (int(f[11]) + int(f[13])) / hz, (int(f[12]) + int(f[14])) / hz


def timed(cmd, daemon=None):
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    d0 = daemon_cpu(daemon)
    t0 = time.monotonic()
    sh(cmd)
    wall = time.monotonic() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    d1 = daemon_cpu(daemon)
    return (wall, after.ru_utime - before.ru_utime + d1[0] - d0[0],
            after.ru_stime - before.ru_stime + d1[1] - d0[1])


def load():
    return os.getloadavg()[0]


def main():
    opts, cmds = parse(sys.argv[1:])
    for c in cmds:
        c.update(times=[], user=[], system=[], load=[])
    rounds = opts.warmup + opts.runs
    for r in range(rounds):
        warm = r < opts.warmup
        line = []
        for c in cmds:
            if c["prepare"]:
                sh(c["prepare"])
            l0 = load()
            wall, user, system = timed(c["cmd"], c["daemon"])
            line.append(f"{c['name']} {wall:.2f}s (cpu {user + system:.2f}s)")
            if not warm:
                c["times"].append(wall)
                c["user"].append(user)
                c["system"].append(system)
                c["load"].append(l0)
        tag = "warmup" if warm else f"round {r - opts.warmup + 1}/{opts.runs}"
        if not opts.ms:
            print(f"  {tag:<12} load {load():4.1f}: " + ", ".join(line), flush=True)

    ref = next((c for c in cmds if c["name"] == opts.ref), cmds[0])
    med = lambda xs: statistics.median(xs)
    cpu = lambda c: [u + s for u, s in zip(c["user"], c["system"])]
    rows = []
    for c in cmds:
        rows.append((
            c["name"], med(c["times"]), statistics.mean(c["times"]),
            statistics.stdev(c["times"]) if len(c["times"]) > 1 else 0.0,
            med(c["times"]) / med(ref["times"]), med(cpu(c)), med(cpu(c)) / med(cpu(ref)),
        ))
    head = ("command", "median", "mean", "stddev", f"vs {ref['name']}", "cpu", "cpu ratio")
    w = max(12, len(head[4]) + 2)
    # Seconds, or milliseconds with --ms.
    k, u = (1000.0, "ms") if opts.ms else (1.0, "s")
    print(f"\n{head[0]:<14}{head[1]:>10}{head[2]:>10}{head[3]:>10}{head[4]:>{w}}{head[5]:>10}{head[6]:>11}")
    for n, m, mean, sd, ratio, c, cratio in rows:
        print(f"{n:<14}{m * k:>8.2f}{u:<2}{mean * k:>8.2f}{u:<2}{sd * k:>8.2f}{u:<2}"
              f"{ratio:>{w - 1}.2f}x{c * k:>8.2f}{u:<2}{cratio:>10.2f}x")
    print(f"(load average at the start of the timed runs: "
          f"{min(min(c['load']) for c in cmds):.1f}-{max(max(c['load']) for c in cmds):.1f})")

    if opts.json:
        results = []
        for c in cmds:
            results.append({
                "command": c["name"], "times": c["times"], "user": c["user"],
                "system": c["system"], "cpu": cpu(c), "load": c["load"],
                "mean": statistics.mean(c["times"]),
                "stddev": statistics.stdev(c["times"]) if len(c["times"]) > 1 else None,
                "median": med(c["times"]),
            })
        with open(opts.json, "w") as f:
            json.dump({"results": results}, f, indent=1)
    if opts.md:
        with open(opts.md, "w") as f:
            f.write(f"| {' | '.join(head)} |\n|{'---|' * len(head)}\n")
            for n, m, mean, sd, ratio, c, cratio in rows:
                f.write(f"| `{n}` | {m * k:.2f} {u} | {mean * k:.2f} {u} | {sd * k:.2f} {u} | {ratio:.2f}x "
                        f"| {c * k:.2f} {u} | {cratio:.2f}x |\n")


if __name__ == "__main__":
    main()
