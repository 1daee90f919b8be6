//! `run`: create + start, and unless detached, stay as the container's parent: forward
//! signals, proxy the terminal when there is one, and delete the container when its init
//! exits, exiting with the init's status (128+N when killed by signal N).

use super::create::{Console, CreateOptions, create};
use crate::container::Container;
use crate::error::Result;
use crate::foreground;

/// Run a container. Returns the exit code `hako-runtime run` should exit with.
pub fn run(opts: &CreateOptions, detach: bool, keep: bool) -> Result<i32> {
    let wants_tty = crate::config::Config::load(&opts.bundle)?
        .spec
        .process()
        .as_ref()
        .and_then(|p| p.terminal())
        .unwrap_or(false);
    let mut proxy_end = None;
    let console = match &opts.console_socket {
        Some(p) => Console::Path(p.clone()),
        None if wants_tty && !detach => {
            let (ours, theirs) = foreground::console_pair()?;
            proxy_end = Some(ours);
            Console::Fd(theirs)
        }
        None => Console::None,
    };

    let created = create(opts, console)?;
    let c = Container {
        dir: created.dir,
        st: created.state,
    };
    if let Err(e) = super::start::release(&c) {
        let _ = super::delete::destroy(&c);
        return Err(e);
    }
    let state = crate::hooks::HookState {
        oci_version: &c.st.oci_version,
        id: &c.st.id,
        status: "running",
        pid: Some(c.st.pid),
        bundle: &c.st.bundle,
        annotations: Some(&c.st.annotations),
    };
    if let Err(e) = crate::hooks::run_all("poststart", &c.st.poststart, &state) {
        tracing::warn!("{e}");
    }
    if detach {
        return Ok(0);
    }
    // The init is our child: nobody else can reap it, so no signal or exit is lost even
    // though the mask is only set up now.
    let code = foreground::wait(c.st.pid, proxy_end.as_ref())?;
    if !keep {
        super::delete::destroy(&Container::load(&opts.root, &opts.id)?)?;
    }
    Ok(code)
}
