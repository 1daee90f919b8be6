//! Interface flags by ioctl: bringing `lo` up in a new network namespace (hako-net's, and a
//! `--network none` container's, which the runtime makes with `lo` down: the shim's; Docker's
//! has it up). No netlink needed for one flag.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;

use nix::sched::CloneFlags;
use nix::sys::socket::{AddressFamily, SockFlag, SockType, socket};

/// Brings `lo` up in the network namespace of process `pid`, from a thread that enters it
/// (the caller's own namespaces are left alone).
pub fn loopback_up(pid: i32) -> io::Result<()> {
    let ns = File::open(format!("/proc/{pid}/ns/net"))?;
    std::thread::scope(|s| {
        s.spawn(|| {
            nix::sched::setns(&ns, CloneFlags::CLONE_NEWNET)?;
            loopback_up_here()
        })
        .join()
        .unwrap_or_else(|_| Err(io::Error::other("the namespace thread panicked")))
    })
}

/// Brings `lo` up in the calling thread's network namespace.
pub fn loopback_up_here() -> io::Result<()> {
    set_up("lo")
}

/// Sets IFF_UP on interface `name` of the calling thread's namespace.
fn set_up(name: &str) -> io::Result<()> {
    let sock = socket(
        AddressFamily::Inet,
        SockType::Datagram,
        SockFlag::SOCK_CLOEXEC,
        None,
    )?;
    // SAFETY: `ifreq` is plain data (a name and a union of integers); all zeros is valid.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    if name.len() >= req.ifr_name.len() {
        return Err(io::Error::from_raw_os_error(libc::ENAMETOOLONG));
    }
    for (d, s) in req.ifr_name.iter_mut().zip(name.bytes()) {
        *d = s.cast_signed();
    }
    // SAFETY: SIOCGIFFLAGS reads the name and writes the flags of the `ifreq` passed, which
    // lives for the call.
    if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS, &raw mut req) } < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: SIOCGIFFLAGS filled `ifru_flags`, the union member read and written here.
    unsafe {
        req.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
    }
    // SAFETY: SIOCSIFFLAGS reads the `ifreq` passed, which lives for the call.
    if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS, &raw const req) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Kills the child at the end, however the test ends.
    struct Reaped(std::process::Child);

    impl Drop for Reaped {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }

    /// As root: a child in a new network namespace (lo down) gets it up.
    #[test]
    fn loopback_comes_up_in_another_processs_namespace() {
        if !nix::unistd::geteuid().is_root() {
            assert!(std::env::var("CI").as_deref() != Ok("true"), "needs root");
            return;
        }
        let child = Reaped(
            std::process::Command::new("unshare")
                .args(["--net", "sleep", "30"])
                .spawn()
                .expect("unshare"),
        );
        let pid = i32::try_from(child.0.id()).expect("pid");
        // unshare execs sleep once the namespace is made.
        let own = std::fs::read_link("/proc/self/ns/net").unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while std::fs::read_link(format!("/proc/{pid}/ns/net")).ok() == Some(own.clone()) {
            assert!(std::time::Instant::now() < deadline, "no new namespace");
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        let lo = || {
            let out = std::process::Command::new("nsenter")
                .args([
                    "-t",
                    &pid.to_string(),
                    "-n",
                    "ip",
                    "-o",
                    "link",
                    "show",
                    "lo",
                ])
                .output()
                .expect("nsenter");
            String::from_utf8_lossy(&out.stdout).into_owned()
        };
        assert!(lo().contains("<LOOPBACK>"), "lo starts down: {}", lo());
        loopback_up(pid).expect("lo up");
        assert!(lo().contains("<LOOPBACK,UP"), "lo is up: {}", lo());
        assert!(loopback_up(-1).is_err(), "no such process");
    }
}
