//! `rm` and the `--rm` cleanup the shim runs.

use std::time::Duration;

use hako_shim::protocol::Request;

use crate::error::{Error, Result};
use crate::records::{self, Record};
use crate::state::{Action, Status};
use crate::volumes;

use super::Engine;
use super::status::request_timeout;

impl Engine {
    /// Removes a container: with `force` a running one is killed first; with `volumes` its
    /// anonymous volumes go too. Removes the record last, so a failure can be retried.
    pub fn remove(&self, what: &str, force: bool, remove_volumes: bool) -> Result<Record> {
        let rec = self.get(what)?;
        let live = self.live(&rec);
        if live.status.is_active() {
            if !force {
                return Err(Error::IllegalTransition {
                    id: rec.id.clone(),
                    status: live.status,
                    action: Action::Remove,
                });
            }
            let dir = self.state_dir(&rec.id);
            let _ = request_timeout(
                &dir,
                &Request::Stop { no_restart: true },
                Duration::from_secs(5),
            );
            if live.status == Status::Paused {
                let _ = self.runtime_run(&rec, "resume", &["resume", &rec.id]);
            }
            let _ = self.runtime_run(&rec, "kill", &["kill", &rec.id, "SIGKILL"]);
            if !self.wait_exit(&rec, Duration::from_secs(30)) {
                return Err(Error::Timeout(format!(
                    "container {} did not stop after SIGKILL",
                    &rec.id[..12]
                )));
            }
        }
        if live.monitor && live.status == Status::Created {
            // Created by a shim but never started (the CLI died in between): end it.
            let _ = request_timeout(
                &self.state_dir(&rec.id),
                &Request::Stop { no_restart: true },
                Duration::from_secs(5),
            );
            let _ = self.runtime_run(&rec, "kill", &["kill", &rec.id, "SIGKILL"]);
        }
        if !records::claim_removal(&self.conn(), &rec.id)? {
            return Ok(rec);
        }
        let res = self.teardown(&rec, remove_volumes);
        if res.is_err() {
            let _ = records::unclaim_removal(&self.conn(), &rec.id);
        }
        res.map(|()| rec)
    }

    fn teardown(&self, rec: &Record, remove_volumes: bool) -> Result<()> {
        self.wait_shim_gone(&rec.id, Duration::from_secs(10));
        let runtime_state = self.runtime_root(&rec.runtime).join(&rec.id);
        if runtime_state.exists() {
            let _ = self.runtime_run(rec, "delete", &["delete", "--force", &rec.id]);
        }
        if rec.rootfs_managed {
            match self.images.release_rootfs(&rec.id) {
                Ok(()) | Err(hako_image::Error::NoSuchContainer(_)) => {}
                Err(e) => return Err(e.into()),
            }
        }
        let anon = if remove_volumes {
            volumes::anonymous_of(&self.conn(), &rec.id)?
        } else {
            Vec::new()
        };
        records::delete(&self.conn(), &rec.id)?;
        self.drop_exec_sessions(&rec.id);
        self.container_event(rec, "destroy", &[]);
        for v in anon {
            if volumes::remove(&self.conn(), &self.opts.root, &v).is_ok() {
                self.volume_event(&v, "destroy");
            }
        }
        for d in [self.state_dir(&rec.id), self.container_dir(&rec.id)] {
            match std::fs::remove_dir_all(&d) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    return Err(Error::Io {
                        context: format!("remove {}", d.display()),
                        source: e,
                    });
                }
            }
        }
        Ok(())
    }

    /// What the shim's exit command runs for `--rm` containers: remove it with its
    /// anonymous volumes, if it still exists and still wants to be removed.
    pub fn cleanup(&self, what: &str) -> Result<()> {
        let rec = match self.get(what) {
            Ok(r) => r,
            Err(Error::NoSuchContainer(_)) => return Ok(()),
            Err(e) => return Err(e),
        };
        if rec.host_config.auto_remove != Some(true) || self.live(&rec).status.is_active() {
            return Ok(());
        }
        self.remove(&rec.id, false, true).map(|_| ())
    }
}
