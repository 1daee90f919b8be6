//! `hako:[1:INTER]`: only used when namespaces joined by path must be entered before a new
//! user namespace that has to own a new pid namespace. It joins, unshares, clones the init
//! as its sibling (CLONE_PARENT, so the parent can wait for it) and exits.

use nix::sched::CloneFlags;

use super::channel::{ChildEnd, Up};
use super::init::{self, InitArgs};
use crate::error::{Context, Result};

pub fn run(args: InitArgs<'_>, chan: ChildEnd) -> ! {
    let _ = nix::sys::prctl::set_name(c"hako:[1:INTER]");
    match stage(args.plan, &chan) {
        Ok(()) => {}
        Err(e) => {
            let _ = chan.send(Up::Failed(e.to_string()));
            std::process::exit(1);
        }
    }
    match hako_sys::clone3_fork(CloneFlags::CLONE_PARENT, None) {
        Ok(hako_sys::CloneResult::Child) => init::run(args, chan),
        Ok(hako_sys::CloneResult::Parent(pid)) => {
            let code = i32::from(chan.send(Up::InitPid(pid)).is_err());
            std::process::exit(code)
        }
        Err(e) => {
            let _ = chan.send(Up::Failed(format!("clone init: {e}")));
            std::process::exit(1)
        }
    }
}

fn stage(plan: &super::namespaces::Plan, chan: &ChildEnd) -> Result<()> {
    init::join_and_unshare(plan, chan)?;
    if plan.child_new_user {
        nix::unistd::setresgid(0.into(), 0.into(), 0.into())
            .context(|| "setgid 0 in user namespace".into())?;
        nix::unistd::setresuid(0.into(), 0.into(), 0.into())
            .context(|| "setuid 0 in user namespace".into())?;
    }
    Ok(())
}
