//! The caller's stdout and stderr. A reader that goes away early (`hako-runtime state ID |
//! head -c 10`) is no error: the output ends quietly, where `println!` would panic ("failed
//! printing to stdout"). The runtime ignores SIGPIPE (Rust's default), so EPIPE is what it
//! sees; turning SIGPIPE back on would let a hook that closes its stdin early kill us.

use std::io::{self, Write};

use crate::error::{Context, Result};

/// Write `text` to stdout; a closed reader ends the output without an error.
pub fn stdout(text: &str) -> Result<()> {
    let mut out = io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(()),
        r => r.context(|| "write to stdout".into()),
    }
}

/// One line to stderr, prefixed `hako-runtime: `; nobody to tell when that fails.
pub fn stderr_line(line: &str) {
    let _ = writeln!(io::stderr().lock(), "hako-runtime: {line}");
}

/// stderr for the log subscriber: write errors are dropped, never a panic.
#[derive(Debug, Clone, Copy)]
pub struct QuietStderr;

impl Write for QuietStderr {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let _ = io::stderr().lock().write_all(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
