//! `ps`: the processes of a container, as a JSON array of host pids or as ps(1)'s table
//! cut down to the container's processes (runc's behaviour: the PID column is found by
//! its header, then every line whose pid is in the container's cgroup is kept).

use std::path::Path;
use std::process::Command;

use hako_cgroups::CgroupManager;

use crate::container::Container;
use crate::error::{Context, Error, Result};

/// The processes of container `id`: a JSON array of pids, or ps(1)'s table filtered to the
/// container's processes. `ps_args` are ps(1)'s options (default `-ef`).
pub fn ps(root: &Path, id: &str, json: bool, ps_args: &[String]) -> Result<String> {
    let c = Container::load(root, id)?;
    // Every process in the cgroup, including those exec'd later; none once it is gone.
    let mut pids = match c.cgroup() {
        Some(cg) => cg.pids()?,
        None => Vec::new(),
    };
    pids.sort_unstable();
    pids.dedup();
    if json {
        return Ok(format!(
            "{}\n",
            serde_json::to_string(&pids).expect("pids serialize")
        ));
    }
    let default = ["-ef".to_owned()];
    let args = if ps_args.is_empty() {
        &default[..]
    } else {
        ps_args
    };
    let out = Command::new("ps")
        .args(args)
        .output()
        .context(|| "run ps".into())?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        return Err(Error::Usage(format!(
            "ps {} failed ({}): {}",
            args.join(" "),
            out.status,
            stderr.trim()
        )));
    }
    filter_table(&stdout, &pids)
}

/// The header plus the lines whose PID column is one of `pids`.
fn filter_table(table: &str, pids: &[i32]) -> Result<String> {
    let mut lines = table.lines();
    let header = lines.next().unwrap_or_default();
    let col = header
        .split_whitespace()
        .position(|f| f == "PID")
        .ok_or_else(|| {
            Error::Usage(format!(
                "ps output has no PID column (header {header:?}); include pid in the -o list"
            ))
        })?;
    let mut kept = format!("{header}\n");
    for line in lines.filter(|l| !l.trim().is_empty()) {
        let field = line.split_whitespace().nth(col).unwrap_or_default();
        let pid: i32 = field.parse().map_err(|_| {
            Error::Usage(format!(
                "cannot read a pid from column {} of ps line {line:?}",
                col + 1
            ))
        })?;
        if pids.binary_search(&pid).is_ok() {
            kept.push_str(line);
            kept.push('\n');
        }
    }
    Ok(kept)
}

#[cfg(test)]
mod tests {
    use super::filter_table;

    const EF: &str = "\
UID          PID    PPID  C STIME TTY          TIME CMD
root           1       0  0 10:00 ?        00:00:01 /sbin/init
root         200       1  0 10:01 ?        00:00:00 sh -c sleep 1000 & wait
root         201     200  0 10:01 ?        00:00:00 sleep 1000
root         300       1  0 10:02 pts/0    00:00:00 bash
";

    #[test]
    fn keeps_header_and_container_lines() {
        let t = filter_table(EF, &[200, 201]).unwrap();
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 3, "{t}");
        assert!(lines[0].starts_with("UID"));
        assert!(lines[1].contains("sh -c sleep 1000"));
        assert!(lines[2].ends_with("sleep 1000"));
    }

    #[test]
    fn finds_pid_column_anywhere() {
        let t = "  PID COMMAND\n  201 sleep\n   77 other\n";
        assert_eq!(
            filter_table(t, &[201]).unwrap(),
            "  PID COMMAND\n  201 sleep\n"
        );
        let t = "USER PID %CPU\nroot 5 0.0\nroot 6 0.0\n";
        assert_eq!(
            filter_table(t, &[6]).unwrap(),
            "USER PID %CPU\nroot 6 0.0\n"
        );
    }

    #[test]
    fn no_pid_column_or_bad_pid_is_an_error() {
        assert!(filter_table("COMMAND\nsleep\n", &[1]).is_err());
        assert!(filter_table("PID CMD\nx sleep\n", &[1]).is_err());
        assert!(filter_table("", &[1]).is_err());
    }
}
