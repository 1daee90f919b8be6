//! A real registry for pull/push tests: Debian's `docker-registry` on 127.0.0.1.

use std::path::Path;
use std::process::{Command, Stdio};

/// A `docker-registry serve` on a free loopback port, killed on drop.
#[derive(Debug)]
pub struct Registry {
    child: std::process::Child,
    _dir: tempfile::TempDir,
    /// The port it listens on (127.0.0.1).
    pub port: u16,
}

impl Registry {
    /// Starts one; `None` (after a note) when docker-registry is not installed outside CI.
    pub fn start() -> Option<Registry> {
        if !Path::new("/usr/bin/docker-registry").exists() {
            assert!(!crate::in_ci(), "docker-registry missing");
            eprintln!("skipping registry checks: docker-registry not installed");
            return None;
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let cfg = dir.path().join("config.yml");
        std::fs::write(
            &cfg,
            format!(
                "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: 127.0.0.1:{port}\n",
                dir.path().join("data").display()
            ),
        )
        .expect("config");
        let child = Command::new("/usr/bin/docker-registry")
            .arg("serve")
            .arg(&cfg)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn docker-registry");
        let reg = Registry {
            child,
            _dir: dir,
            port,
        };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "registry did not start"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        Some(reg)
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
