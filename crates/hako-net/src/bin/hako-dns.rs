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
    // The resolver's signals are blocked before the fork, so the child has them blocked
    // from its first instruction: the starter records the child's pid at once (below), and
    // a SIGHUP sent to that pid before the child reached its signalfd would kill it.
    let mut mask = nix::sys::signal::SigSet::empty();
    for s in [
        nix::sys::signal::Signal::SIGHUP,
        nix::sys::signal::Signal::SIGTERM,
        nix::sys::signal::Signal::SIGINT,
    ] {
        mask.add(s);
    }
    if let Err(e) = mask.thread_block() {
        eprintln!("hako-dns: block signals: {e}");
        std::process::exit(1);
    }
    // Single-threaded until here, as fork requires.
    match hako_sys::clone3_fork(nix::sched::CloneFlags::empty(), None) {
        // The child's pid on stdout: the starter writes the pid file with it while it
        // still holds the resolver lock, so no second start can slip in before the child
        // writes it itself.
        Ok(hako_sys::CloneResult::Parent(pid)) => {
            println!("{pid}");
            std::process::exit(0)
        }
        Ok(hako_sys::CloneResult::Child) => {}
        Err(e) => {
            eprintln!("hako-dns: fork: {e}");
            std::process::exit(1);
        }
    }
    // Let go of the starter's stdout pipe at once (it reads until EOF).
    if let Ok(null) = std::fs::OpenOptions::new().write(true).open("/dev/null") {
        let _ = nix::unistd::dup2_stdout(&null);
    }
    let _ = nix::unistd::setsid();
    let _ = nix::unistd::chdir("/");
    // Hold nothing the spawner had open (a pipe a caller waits on for EOF).
    hako_sys::fd::close_all_but_stdio(&[]);
    std::process::exit(hako_net::dns::server::run(hako_net::dns::server::Config {
        db,
        exec_root,
    }));
}
