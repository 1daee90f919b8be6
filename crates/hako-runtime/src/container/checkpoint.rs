//! `checkpoint` / `restore` through CRIU (the `criu` binary, Debian package `criu`).
//!
//! `checkpoint` runs `criu dump` (or `pre-dump`) on the container's process tree for real;
//! when CRIU fails, the error quotes what CRIU logged and where the whole log is.
//!
//! `restore` first checks that CRIU can work on this host at all (`criu check`, which runs
//! the same kernel-feature probe every dump and restore starts with). Rebuilding a container
//! around a restored tree (state, cgroup, namespaces, external mounts) is not written yet;
//! it cannot be tried on the development hosts, where CRIU 3.17 (Debian 12) fails that very
//! probe on Linux >= 6.13: "vdso: Unexpected rt vDSO area bounds", because the kernel split
//! the vvar mapping in two (`[vvar]` + `[vvar_vclock]`), which CRIU only learned in 4.1.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use hako_cgroups::CgroupManager;

use crate::cli::{CheckpointArgs, RestoreArgs};
use crate::container::Container;
use crate::error::{Context, Error, Refusal, Result};
use crate::state::{StateDir, Status};

pub fn checkpoint(root: &Path, args: &CheckpointArgs) -> Result<()> {
    let id = &args.id;
    let c = Container::load(root, id)?;
    let status = c.status();
    if !matches!(status, Status::Running | Status::Paused) {
        return Err(Refusal::Checkpoint(status.as_str()).into());
    }
    let criu = criu_binary()?;
    let images = make_dir(&args.criu.image_path, "checkpoint image")?;
    let work = match &args.criu.work_path {
        Some(w) => make_dir(w, "checkpoint work")?,
        None => images.clone(),
    };
    let action = if args.pre_dump { "pre-dump" } else { "dump" };
    let log = format!("{action}.log");

    let mut cmd = Command::new(&criu);
    cmd.arg(action)
        .arg("--tree")
        .arg(c.st.pid.to_string())
        .arg("--images-dir")
        .arg(&images)
        .arg("--work-dir")
        .arg(&work)
        .args(["--log-file", &log, "-v4"])
        .arg("--root")
        .arg(&c.st.rootfs)
        .arg("--manage-cgroups");
    // Bind mounts come from the host: CRIU records them as external, restore maps them back.
    for dest in bind_destinations(&c.st.bundle) {
        cmd.arg("--external").arg(format!("mnt[{dest}]:{dest}"));
    }
    if status == Status::Paused
        && let Some(cg) = c.cgroup()
        && let Some(freezer) = cg.mounts().into_iter().find(|m| m.name == "freezer")
    {
        cmd.arg("--freeze-cgroup").arg(freezer.host_dir);
    }
    for (on, flag) in args.criu.flags().into_iter().chain([
        (args.leave_running && !args.pre_dump, "--leave-running"),
        (args.pre_dump || args.parent_path.is_some(), "--track-mem"),
    ]) {
        if on {
            cmd.arg(flag);
        }
    }
    if let Some(parent) = &args.parent_path {
        cmd.arg("--prev-images-dir").arg(parent);
    }
    let out = cmd.output().context(|| format!("run {}", criu.display()))?;
    if !out.status.success() {
        return Err(criu_failed(
            &format!("checkpoint container {id}"),
            action,
            &out,
            &work.join(&log),
        ));
    }
    // Like runc: a full dump leaves the processes killed, so the container is gone.
    if !args.pre_dump && !args.leave_running {
        super::delete::destroy(&c)?;
    }
    Ok(())
}

/// Returns the exit code like `run` (0 when detached).
pub fn restore(root: &Path, args: &RestoreArgs) -> Result<i32> {
    let id = &args.id;
    crate::id::validate(id)?;
    if StateDir::new(root, id).exists() {
        return Err(Error::ContainerExists(id.clone()));
    }
    let inventory = args.criu.image_path.join("inventory.img");
    if !inventory.exists() {
        return Err(Error::Usage(format!(
            "no checkpoint in {}: {} is missing",
            args.criu.image_path.display(),
            inventory.display()
        )));
    }
    let criu = criu_binary()?;
    let work = make_dir(
        args.criu
            .work_path
            .as_deref()
            .unwrap_or(&args.criu.image_path),
        "restore work",
    )?;
    let log = "restore.log";
    let out = Command::new(&criu)
        .arg("check")
        .arg("--work-dir")
        .arg(&work)
        .args(["--log-file", log, "-v4"])
        .output()
        .context(|| format!("run {}", criu.display()))?;
    if !out.status.success() {
        return Err(criu_failed(
            &format!("restore container {id}"),
            "check",
            &out,
            &work.join(log),
        ));
    }
    Err(Error::Unsupported(format!(
        "cannot restore container {id}: CRIU works on this host (criu check passed), but \
         hako-runtime cannot yet rebuild a container (state, cgroup, namespaces, mounts) \
         around a restored process tree; use runc for restore"
    )))
}

/// `criu` from $PATH or the sbin directories (Debian installs it as /usr/sbin/criu).
fn criu_binary() -> Result<PathBuf> {
    let path = std::env::var("PATH").unwrap_or_default();
    path.split(':')
        .chain(["/usr/local/sbin", "/usr/sbin", "/sbin"])
        .map(|d| Path::new(d).join("criu"))
        .find(|p| p.is_file())
        .ok_or_else(|| {
            Error::Unsupported(
                "checkpoint/restore needs CRIU, but no criu binary is in $PATH or /usr/sbin; install the criu package".into(),
            )
        })
}

/// `mkdir -p` and make absolute (CRIU resolves relative paths from its own work dir).
fn make_dir(dir: &Path, what: &str) -> Result<PathBuf> {
    fs::create_dir_all(dir).context(|| format!("create {what} directory {}", dir.display()))?;
    std::path::absolute(dir).context(|| format!("{what} directory {}", dir.display()))
}

/// Destinations of the bundle's bind mounts (best effort: a bundle that cannot be read
/// gives none, and CRIU then names the mount it cannot handle).
fn bind_destinations(bundle: &Path) -> Vec<String> {
    let Ok(text) = fs::read_to_string(bundle.join("config.json")) else {
        return Vec::new();
    };
    let Ok(spec) = serde_json::from_str::<serde_json::Value>(&text) else {
        return Vec::new();
    };
    let mounts = spec["mounts"].as_array().cloned().unwrap_or_default();
    mounts
        .iter()
        .filter(|m| {
            m["type"] == "bind"
                || m["options"]
                    .as_array()
                    .is_some_and(|o| o.iter().any(|o| o == "bind" || o == "rbind"))
        })
        .filter_map(|m| m["destination"].as_str().map(str::to_owned))
        .collect()
}

/// One line: what failed, what CRIU said (its first error, the root cause, and its last,
/// the consequence), and where the full log is.
fn criu_failed(what: &str, action: &str, out: &Output, log: &Path) -> Error {
    let text = fs::read_to_string(log).unwrap_or_default();
    let mut reported = criu_errors(&text);
    if reported.is_empty() {
        // No log (CRIU failed before opening it): its stderr is all there is.
        reported = criu_errors(&String::from_utf8_lossy(&out.stderr));
    }
    let said = match reported.as_slice() {
        [] => "no error message".to_owned(),
        [one] => format!("{one:?}"),
        [first, .., last] => format!("{first:?} ... {last:?}"),
    };
    let hint = if text.contains("Unexpected rt vDSO area bounds") {
        " (this CRIU predates the [vvar_vclock] mapping of Linux >= 6.13, fixed in CRIU 4.1: checkpoint/restore cannot work on this host)"
    } else {
        ""
    };
    Error::Unsupported(format!(
        "cannot {what}: criu {action} failed ({}): CRIU reported {said}{hint}; full log: {}",
        out.status,
        log.display()
    ))
}

/// CRIU's `Error (file:line): message` lines, without the timestamp prefix.
fn criu_errors(log: &str) -> Vec<String> {
    log.lines()
        .filter_map(|l| l.find("Error (").map(|i| l[i..].trim().to_owned()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::ExitStatusExt;

    const LOG: &str = "\
(00.000002) Version: 3.17.1 (gitid 0)
(00.108862) Error (criu/vdso.c:381): vdso: Unexpected rt vDSO area bounds
(00.108866) Error (criu/vdso.c:613): vdso: Failed to fill self vdso symtable
(00.108932) Error (criu/crtools.c:260): Could not initialize kernel features detection.
";

    #[test]
    fn failure_quotes_first_and_last_criu_error_and_the_log() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("dump.log");
        fs::write(&log, LOG).unwrap();
        let out = Output {
            status: std::process::ExitStatus::from_raw(1 << 8),
            stdout: vec![],
            stderr: vec![],
        };
        let msg = criu_failed("checkpoint container c1", "dump", &out, &log).to_string();
        assert!(!msg.contains('\n'), "{msg}");
        assert!(msg.contains("criu dump failed"), "{msg}");
        assert!(
            msg.contains("Error (criu/vdso.c:381): vdso: Unexpected rt vDSO area bounds"),
            "{msg}"
        );
        assert!(
            msg.contains("Could not initialize kernel features"),
            "{msg}"
        );
        assert!(msg.contains("vvar_vclock"), "{msg}");
        assert!(
            msg.ends_with(&format!("full log: {}", log.display())),
            "{msg}"
        );
    }

    #[test]
    fn bind_mounts_are_external() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(
            dir.path().join("config.json"),
            r#"{"mounts":[{"destination":"/proc","type":"proc","source":"proc"},
                {"destination":"/data","type":"bind","source":"/srv","options":["rbind"]},
                {"destination":"/etc/hosts","type":"none","source":"/h","options":["bind","ro"]}]}"#,
        )
        .unwrap();
        assert_eq!(bind_destinations(dir.path()), ["/data", "/etc/hosts"]);
        assert!(bind_destinations(Path::new("/nonexistent")).is_empty());
    }
}
