//! `hako-dns --db FILE --exec-root DIR`: the resolver of hako's user-defined networks
//! (see `hako_net::dns`). It detaches at once (the parent exits 0 once the child runs) and
//! lives while some container on a user network does.

use std::path::PathBuf;

fn main() {
    let mut db = None;
    let mut exec_root = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--db" => db = args.next().map(PathBuf::from),
            "--exec-root" => exec_root = args.next().map(PathBuf::from),
            _ => {
                eprintln!("usage: hako-dns --db FILE --exec-root DIR");
                std::process::exit(2);
            }
        }
    }
    let (Some(db), Some(exec_root)) = (db, exec_root) else {
        eprintln!("usage: hako-dns --db FILE --exec-root DIR");
        std::process::exit(2);
    };
    // Single-threaded until here, as fork requires.
    match hako_sys::clone3_fork(nix::sched::CloneFlags::empty(), None) {
        Ok(hako_sys::CloneResult::Parent(_)) => std::process::exit(0),
        Ok(hako_sys::CloneResult::Child) => {}
        Err(e) => {
            eprintln!("hako-dns: fork: {e}");
            std::process::exit(1);
        }
    }
    let _ = nix::unistd::setsid();
    let _ = nix::unistd::chdir("/");
    // Hold nothing the spawner had open (a pipe a caller waits on for EOF).
    if let Ok(dir) = std::fs::read_dir("/proc/self/fd") {
        let fds: Vec<i32> = dir
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.parse().ok())
            .collect();
        for fd in fds {
            if fd > 2 {
                let _ = nix::unistd::close(fd);
            }
        }
    }
    std::process::exit(hako_net::dns::server::run(hako_net::dns::server::Config {
        db,
        exec_root,
    }));
}
