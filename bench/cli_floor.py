#!/usr/bin/env python3
"""The stock docker CLI's own share of `docker run --rm busybox true`.

    bench/cli_floor.py [RUNS]      (needs docker and hyperfine; no root)

Serves the five requests that command makes (HEAD /_ping, POST create, attach, wait,
start) from a unix socket, each answered at once, and times the CLI against it with
hyperfine. What is left is the CLI's start-up, its work between requests and its exit: no
server can make `docker run` faster than this. With dockerd's time D, a server reaches a
tenth of it only when its own part stays under D/10 minus this floor.

The answers are those dockerd gives: the wait's headers at once and its body after the
start (the CLI sends the start only once the wait's headers are in), the attach's 101 and
its end after the start.
"""
import os
import socket
import subprocess
import sys
import tempfile
import threading

HEAD = "Api-Version: 1.47\r\nOstype: linux\r\nDocker-Experimental: false\r\nServer: floor\r\n"
CID = "f" * 64


class Fake:
    def __init__(self, path):
        self.started = threading.Event()
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.bind(path)
        self.sock.listen(64)
        threading.Thread(target=self.accept, daemon=True).start()

    def accept(self):
        while True:
            conn, _ = self.sock.accept()
            threading.Thread(target=self.serve, args=(conn,), daemon=True).start()

    def serve(self, c):
        buf = b""
        with c:
            while True:
                while b"\r\n\r\n" not in buf:
                    data = c.recv(65536)
                    if not data:
                        return
                    buf += data
                head, _, rest = buf.partition(b"\r\n\r\n")
                lines = head.decode().split("\r\n")
                method, url, _ = lines[0].split(" ", 2)
                length = 0
                for line in lines[1:]:
                    key, _, value = line.partition(":")
                    if key.strip().lower() == "content-length":
                        length = int(value)
                while len(rest) < length:
                    rest += c.recv(65536)
                buf = rest[length:]
                path = url.split("?")[0]
                if path.endswith("/_ping"):
                    body = "" if method == "HEAD" else "OK"
                    c.sendall(f"HTTP/1.1 200 OK\r\n{HEAD}Content-Type: text/plain\r\n"
                              f"Content-Length: 2\r\n\r\n{body}".encode())
                elif path.endswith("/containers/create"):
                    self.started = threading.Event()
                    body = '{"Id":"%s","Warnings":[]}' % CID
                    c.sendall(f"HTTP/1.1 201 Created\r\n{HEAD}Content-Type: application/json\r\n"
                              f"Content-Length: {len(body)}\r\n\r\n{body}".encode())
                elif path.endswith("/attach"):
                    started = self.started
                    c.sendall(f"HTTP/1.1 101 UPGRADED\r\n{HEAD}Content-Type: "
                              "application/vnd.docker.raw-stream\r\nConnection: Upgrade\r\n"
                              "Upgrade: tcp\r\n\r\n".encode())
                    started.wait(10)
                    return
                elif path.endswith("/wait"):
                    started = self.started
                    c.sendall(f"HTTP/1.1 200 OK\r\n{HEAD}Content-Type: application/json\r\n"
                              "Transfer-Encoding: chunked\r\n\r\n".encode())
                    started.wait(10)
                    body = '{"Error":null,"StatusCode":0}\n'
                    c.sendall(f"{len(body):x}\r\n{body}\r\n0\r\n\r\n".encode())
                elif path.endswith("/start"):
                    self.started.set()
                    c.sendall(f"HTTP/1.1 204 No Content\r\n{HEAD}\r\n".encode())
                else:
                    c.sendall(f"HTTP/1.1 404 Not Found\r\n{HEAD}Content-Length: 0\r\n\r\n"
                              .encode())


def main():
    runs = sys.argv[1] if len(sys.argv) > 1 else "40"
    with tempfile.TemporaryDirectory() as d:
        sock = os.path.join(d, "floor.sock")
        Fake(sock)
        env = dict(os.environ, DOCKER_HOST=f"unix://{sock}",
                   DOCKER_CONFIG=os.path.join(d, "config"))
        subprocess.run(["docker", "run", "--rm", "busybox", "true"], env=env, check=True)
        subprocess.run(["hyperfine", "-N", "-w", "5", "-r", runs, "-n", "CLI floor",
                        "docker run --rm busybox true"], env=env, check=True)


if __name__ == "__main__":
    main()
