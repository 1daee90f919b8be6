//! `hako-fixture`: build the busybox fixtures from scripts (test.sh, setup.sh, bench).
//!
//! ```text
//! hako-fixture rootfs                         build the cached rootfs, print its path
//! hako-fixture bundle DIR [--hostname H] [--seccomp-default] [--memory BYTES] [--] ARGS...
//!                                             write a bundle (rootfs + config.json) to DIR;
//!                                             --seccomp-default adds Docker's default seccomp
//!                                             profile, --memory a memory limit (for bench/)
//! ```

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use hako_test_support::{Config, busybox_rootfs, install_bundle};

fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    match args.next().as_deref() {
        Some("rootfs") => {
            println!("{}", busybox_rootfs()?.display());
            Ok(())
        }
        Some("bundle") => {
            let dir = PathBuf::from(args.next().context("usage: hako-fixture bundle DIR")?);
            let mut config = Config::new();
            let mut rest: Vec<String> = Vec::new();
            while let Some(arg) = args.next() {
                match arg.as_str() {
                    "--hostname" => config = config.hostname(&args.next().context("--hostname H")?),
                    "--seccomp-default" => {
                        let caps: Vec<String> = hako_seccomp::DOCKER_DEFAULT_CAPABILITIES
                            .iter()
                            .map(|c| c.to_string())
                            .collect();
                        let profile =
                            serde_json::to_value(hako_seccomp::docker_default_profile(&caps))?;
                        config = config.edit(|j| j["linux"]["seccomp"] = profile);
                    }
                    "--memory" => {
                        let bytes: i64 = args
                            .next()
                            .context("--memory BYTES")?
                            .parse()
                            .context("--memory BYTES")?;
                        config = config.edit(|j| {
                            j["linux"]["resources"]["memory"] = serde_json::json!({"limit": bytes})
                        });
                    }
                    "--" => {
                        rest.extend(args.by_ref());
                    }
                    _ => rest.push(arg),
                }
            }
            if !rest.is_empty() {
                let refs: Vec<&str> = rest.iter().map(String::as_str).collect();
                config = config.args(&refs);
            }
            install_bundle(&dir, &config)?;
            println!("{}", dir.display());
            Ok(())
        }
        other => bail!(
            "usage: hako-fixture rootfs | bundle DIR [--hostname H] [--seccomp-default] [--memory BYTES] [--] ARGS... (got {other:?})"
        ),
    }
}
