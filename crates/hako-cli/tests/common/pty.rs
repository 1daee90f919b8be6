//! A real terminal for interactive tests: the test opens a pty, runs the command on its
//! slave side as the controlling terminal (`setsid --ctty`, util-linux), types into the
//! master and reads what a user would see.

#![allow(dead_code)]

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A command running on a terminal the test holds.
pub struct Pty {
    master: File,
    child: Child,
    output: Arc<Mutex<Vec<u8>>>,
    /// Where the last `expect` matched: later ones look after it.
    seen: usize,
}

impl Pty {
    /// Runs `cmd` (its program, arguments and environment; not its stdio) on a new 24x80
    /// pty, as the session leader with that pty as its controlling terminal.
    pub fn spawn(cmd: &Command) -> Pty {
        let winsize = nix::pty::Winsize {
            ws_row: 24,
            ws_col: 80,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        let pty = nix::pty::openpty(Some(&winsize), None).expect("openpty");
        let slave: OwnedFd = pty.slave;
        let mut c = Command::new("setsid");
        c.arg("--ctty").arg(cmd.get_program()).args(cmd.get_args());
        for (k, v) in cmd.get_envs() {
            match v {
                Some(v) => c.env(k, v),
                None => c.env_remove(k),
            };
        }
        c.stdin(Stdio::from(slave.try_clone().expect("dup slave")))
            .stdout(Stdio::from(slave.try_clone().expect("dup slave")))
            .stderr(Stdio::from(slave));
        let child = c.spawn().expect("spawn setsid (util-linux)");
        // `c` still holds the slave's copies: drop them so EOF (EIO) arrives when the
        // child side is gone.
        drop(c);
        let master = File::from(pty.master);
        let output = Arc::new(Mutex::new(Vec::new()));
        let mut reader = master.try_clone().expect("dup master");
        let sink = Arc::clone(&output);
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = reader.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock().expect("lock").extend_from_slice(&buf[..n]);
            }
        });
        Pty {
            master,
            child,
            output,
            seen: 0,
        }
    }

    /// Types `bytes`.
    pub fn send(&mut self, bytes: &[u8]) {
        self.master.write_all(bytes).expect("write to the pty");
    }

    /// Everything the terminal showed so far, `\r` removed.
    pub fn screen(&self) -> String {
        String::from_utf8_lossy(&self.output.lock().expect("lock")).replace('\r', "")
    }

    /// Waits (20 s at most) until `text` appears after the previous match.
    pub fn expect(&mut self, text: &str) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let out = self.output.lock().expect("lock").clone();
            let hay = String::from_utf8_lossy(&out[self.seen.min(out.len())..]).into_owned();
            if let Some(at) = hay.find(text) {
                self.seen += hay[..at + text.len()].len();
                return;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {text:?} on the terminal; it shows:\n{}",
                self.screen()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits (20 s at most) for the command to end.
    pub fn wait(mut self) -> (ExitStatus, String) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(st) = self.child.try_wait().expect("wait") {
                // Let the reader take what is left.
                std::thread::sleep(Duration::from_millis(50));
                return (st, self.screen());
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!(
                    "the command did not end; the terminal shows:\n{}",
                    self.screen()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Pty {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
