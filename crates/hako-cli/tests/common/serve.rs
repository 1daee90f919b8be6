//! `hako serve` for the API tests: a server on a socket of its own in the test's hako
//! installation (and so its network namespace), and the stock clients pointed at it.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use super::Hako;

/// A `hako serve` on a socket of its own.
pub struct Server<'a> {
    pub h: &'a Hako,
    pub sock: PathBuf,
    config: tempfile::TempDir,
    child: Option<Child>,
    /// hako's global flags for the server (`--log-level debug`).
    global: Vec<String>,
}

impl<'a> Server<'a> {
    pub fn start(h: &'a Hako) -> Server<'a> {
        Server::start_with(h, &[])
    }

    /// A server started with hako's `global` flags before `serve`.
    pub fn start_with(h: &'a Hako, global: &[&str]) -> Server<'a> {
        let sock = h.root.path().join("api.sock");
        let mut s = Server {
            h,
            sock,
            config: tempfile::tempdir().expect("docker config dir"),
            child: None,
            global: global.iter().map(|a| (*a).to_string()).collect(),
        };
        s.spawn();
        s
    }

    pub fn spawn(&mut self) {
        let url = format!("unix://{}", self.sock.display());
        let mut args: Vec<&str> = self.global.iter().map(String::as_str).collect();
        args.extend(["serve", "--host", &url]);
        let child = self
            .h
            .cmd(&args)
            .stdout(Stdio::null())
            .stderr(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(self.log())
                    .expect("server log"),
            )
            .spawn()
            .expect("spawn hako serve");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while UnixStream::connect(&self.sock).is_err() {
            assert!(Instant::now() < deadline, "hako serve did not listen");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The server's stderr (shown when the test fails).
    pub fn log(&self) -> PathBuf {
        self.h.root.path().join("serve.log")
    }

    pub fn pid(&self) -> i32 {
        i32::try_from(self.child.as_ref().expect("server").id()).expect("pid")
    }

    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// A Docker client program (`docker`, `docker-compose`, python) pointed at the server.
    pub fn client(&self, program: &str) -> Command {
        let mut c = Command::new(program);
        c.env("DOCKER_HOST", format!("unix://{}", self.sock.display()))
            .env("DOCKER_CONFIG", self.config.path())
            .env_remove("DOCKER_CONTEXT")
            .env_remove("DOCKER_TLS_VERIFY")
            .env_remove("DOCKER_CERT_PATH")
            .stdin(Stdio::null());
        c
    }

    pub fn docker(&self, args: &[&str]) -> Command {
        let mut c = self.client("docker");
        c.args(args);
        c
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.run_with(args, &[], Duration::from_secs(60))
    }

    /// `docker ARGS` with more environment, killed (and the test failed) after `limit`.
    pub fn run_with(&self, args: &[&str], env: &[(&str, &str)], limit: Duration) -> Output {
        let mut child = self
            .docker(args)
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run docker (install the docker CLI)");
        let deadline = Instant::now() + limit;
        loop {
            if child.try_wait().expect("wait").is_some() {
                return child.wait_with_output().expect("output");
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("docker {args:?} hung");
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    pub fn ok(&self, args: &[&str]) -> String {
        let o = self.run(args);
        assert!(
            o.status.success(),
            "docker {args:?} failed ({:?}): {}{}",
            o.status,
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8(o.stdout).expect("utf-8")
    }

    /// One raw HTTP/1.1 request; the status and the body.
    pub fn http(&self, method: &str, path: &str, body: &str) -> (u16, String) {
        let mut s = UnixStream::connect(&self.sock).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(20)))
            .expect("timeout");
        let req = format!(
            "{method} {path} HTTP/1.1\r\nHost: hako\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        s.write_all(req.as_bytes()).expect("write");
        let mut out = String::new();
        s.read_to_string(&mut out).expect("read the answer");
        let status = out
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        let body = out
            .split_once("\r\n\r\n")
            .map(|x| x.1)
            .unwrap_or("")
            .to_string();
        (status, body)
    }
}

impl Drop for Server<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "hako serve's stderr:\n{}",
                std::fs::read_to_string(self.log()).unwrap_or_default()
            );
        }
        if let Some(mut c) = self.child.take() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(i32::try_from(c.id()).unwrap_or(0)),
                nix::sys::signal::Signal::SIGTERM,
            );
            let _ = c.wait();
        }
    }
}

pub fn have_docker() -> bool {
    let ok = Command::new("docker")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "the docker CLI is needed (docker.io)"
        );
        eprintln!("SKIP: no docker CLI");
    }
    ok
}
