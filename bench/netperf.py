#!/usr/bin/env python3
"""Tiny TCP load tools for bench/net.sh (iperf3 is not installed here).

  netperf.py serve PORT              sink: read everything; or accept-and-close for `rate`
  netperf.py bulk HOST PORT MB       send MB mebibytes, print MB/s
  netperf.py rate HOST PORT SECONDS  connect, send a byte, wait for close; print conn/s

The server runs inside the container's network namespace (nsenter), so the path measured is
the published port's (NAT or proxy) and the container's veth, whatever the engine.
"""
import socket
import sys
import threading
import time


def serve(port):
    s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    s.bind(("::", port))
    s.listen(1024)

    def handle(c):
        with c:
            while True:
                b = c.recv(1 << 20)
                if not b or b == b"x":
                    return

    while True:
        c, _ = s.accept()
        threading.Thread(target=handle, args=(c,), daemon=True).start()


def connect(host, port):
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    c = socket.socket(fam, socket.SOCK_STREAM)
    c.connect((host, port))
    return c


def bulk(host, port, mb):
    buf = b"\0" * (1 << 20)
    c = connect(host, port)
    t0 = time.perf_counter()
    for _ in range(mb):
        c.sendall(buf)
    c.shutdown(socket.SHUT_WR)
    c.recv(1)
    dt = time.perf_counter() - t0
    print(f"{mb / dt:.1f}")


def rate(host, port, seconds):
    n = 0
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        c = connect(host, port)
        c.sendall(b"x")
        c.recv(1)
        c.close()
        n += 1
    print(f"{n / (time.perf_counter() - t0):.0f}")


if __name__ == "__main__":
    cmd = sys.argv[1]
    if cmd == "serve":
        serve(int(sys.argv[2]))
    elif cmd == "bulk":
        bulk(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
    elif cmd == "rate":
        rate(sys.argv[2], int(sys.argv[3]), float(sys.argv[4]))
