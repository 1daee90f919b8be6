//! Where the cgroup hierarchies are: parsed from /proc/self/mountinfo on a real host,
//! or from the directory names of a fake tree in tests.

use std::path::{Path, PathBuf};

use crate::Layout;
use crate::error::Error;

/// One mounted v1 hierarchy, possibly with several co-mounted controllers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Hierarchy {
    /// Directory name a container sees: "memory", "cpu,cpuacct", "systemd".
    pub(crate) name: String,
    /// Controllers as the kernel names them: "cpu", "cpuacct", "name=systemd".
    pub(crate) controllers: Vec<String>,
    /// Mount point on the host.
    pub(crate) mount: PathBuf,
    /// Path of the mount's root inside the hierarchy ("/" unless bind-mounted from below).
    pub(crate) root: String,
}

impl Hierarchy {
    pub(crate) fn has(&self, controller: &str) -> bool {
        self.controllers.iter().any(|c| c == controller)
    }

    fn from_controllers(controllers: Vec<String>, mount: PathBuf, root: String) -> Hierarchy {
        let name = controllers
            .iter()
            .map(|c| c.strip_prefix("name=").unwrap_or(c))
            .collect::<Vec<_>>()
            .join(",");
        Hierarchy {
            name,
            controllers,
            mount,
            root,
        }
    }
}

/// All cgroup mounts that matter to us.
#[derive(Debug, Clone, Default)]
pub(crate) struct Mounts {
    pub(crate) v1: Vec<Hierarchy>,
    /// The cgroup2 mount point and its root.
    pub(crate) unified: Option<(PathBuf, String)>,
}

impl Mounts {
    pub(crate) fn layout(&self) -> Result<Layout, Error> {
        let real_v1 = self
            .v1
            .iter()
            .any(|h| h.controllers.iter().any(|c| !c.starts_with("name=")));
        match (real_v1, self.unified.is_some()) {
            (true, true) => Ok(Layout::Hybrid),
            (true, false) => Ok(Layout::V1),
            (false, true) => Ok(Layout::V2),
            (false, false) if !self.v1.is_empty() => Ok(Layout::V1),
            (false, false) => Err(Error::NoCgroupMounts),
        }
    }
}

/// Reads the mounts of the calling process. Parsed once per process: a runtime call
/// builds several managers and resolves paths, and mountinfo can be long on busy hosts.
pub(crate) fn host_mounts() -> Result<Mounts, Error> {
    static CACHE: std::sync::OnceLock<Mounts> = std::sync::OnceLock::new();
    if let Some(m) = CACHE.get() {
        return Ok(m.clone());
    }
    let m = read_host_mounts()?;
    Ok(CACHE.get_or_init(|| m).clone())
}

fn read_host_mounts() -> Result<Mounts, Error> {
    let proc = Path::new("/proc/self");
    let mountinfo = crate::fs::read(proc, "mountinfo")?;
    // /proc/cgroups tells which mount options are controllers; fall back to a fixed list.
    let known: Vec<String> = match crate::fs::read(Path::new("/proc"), "cgroups") {
        Ok(s) => s
            .lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| l.split_whitespace().next().map(str::to_owned))
            .collect(),
        Err(_) => KNOWN_V1.iter().map(|s| (*s).to_owned()).collect(),
    };
    Ok(parse_mountinfo(&mountinfo, &known))
}

const KNOWN_V1: &[&str] = &[
    "cpuset",
    "cpu",
    "cpuacct",
    "blkio",
    "memory",
    "devices",
    "freezer",
    "net_cls",
    "perf_event",
    "net_prio",
    "hugetlb",
    "pids",
    "rdma",
    "misc",
];

/// Parses mountinfo. `known` lists v1 controller names (from /proc/cgroups).
pub(crate) fn parse_mountinfo(content: &str, known: &[String]) -> Mounts {
    let mut mounts = Mounts::default();
    for line in content.lines() {
        let Some((left, right)) = line.split_once(" - ") else {
            continue;
        };
        let fields: Vec<&str> = left.split(' ').collect();
        let sup: Vec<&str> = right.split(' ').collect();
        if fields.len() < 5 || sup.len() < 3 {
            continue;
        }
        let root = unescape(fields[3]);
        let mount = PathBuf::from(unescape(fields[4]));
        match sup[0] {
            "cgroup2" => {
                // Prefer the canonical locations when cgroup2 is mounted more than once.
                let better = match &mounts.unified {
                    None => true,
                    Some((m, _)) => {
                        m != Path::new("/sys/fs/cgroup")
                            && (mount == Path::new("/sys/fs/cgroup")
                                || (m != Path::new("/sys/fs/cgroup/unified")
                                    && mount == Path::new("/sys/fs/cgroup/unified")))
                    }
                };
                if better {
                    mounts.unified = Some((mount, root));
                }
            }
            "cgroup" => {
                let controllers: Vec<String> = sup[2]
                    .split(',')
                    .filter(|o| o.starts_with("name=") || known.iter().any(|k| k == o))
                    .map(str::to_owned)
                    .collect();
                if controllers.is_empty() || mounts.v1.iter().any(|h| h.controllers == controllers)
                {
                    continue;
                }
                mounts
                    .v1
                    .push(Hierarchy::from_controllers(controllers, mount, root));
            }
            _ => {}
        }
    }
    mounts
}

/// mountinfo escapes space, tab, newline and backslash as octal.
fn unescape(s: &str) -> String {
    s.replace("\\040", " ")
        .replace("\\011", "\t")
        .replace("\\012", "\n")
        .replace("\\134", "\\")
}

/// Builds the mounts of a fake tree: for v1 every real subdirectory of `root` is a
/// hierarchy named like its directory ("cpu,cpuacct", "systemd" for name=systemd);
/// for hybrid `root/unified` is the cgroup2 mount; for v2 `root` itself is.
pub(crate) fn scan_root(root: &Path, layout: Layout) -> Mounts {
    let mut mounts = Mounts::default();
    if layout == Layout::V2 {
        mounts.unified = Some((root.to_owned(), "/".into()));
        return mounts;
    }
    let mut dirs = crate::fs::subdirs(root);
    dirs.sort();
    for dir in dirs {
        let Some(name) = dir.file_name().and_then(|n| n.to_str()).map(str::to_owned) else {
            continue;
        };
        if name == "unified" {
            if layout == Layout::Hybrid {
                mounts.unified = Some((dir, "/".into()));
            }
            continue;
        }
        let controllers = name
            .split(',')
            .map(|c| match c {
                "systemd" => "name=systemd".to_owned(),
                c => c.to_owned(),
            })
            .collect();
        mounts
            .v1
            .push(Hierarchy::from_controllers(controllers, dir, "/".into()));
    }
    mounts
}

#[cfg(test)]
mod tests {
    use super::*;

    const HYBRID: &str = "\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime shared:5 - cgroup cgroup rw,memory
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw,nsdelegate
";

    fn known() -> Vec<String> {
        KNOWN_V1.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn hybrid_mountinfo() {
        let m = parse_mountinfo(HYBRID, &known());
        assert_eq!(m.layout().unwrap(), Layout::Hybrid);
        let names: Vec<_> = m.v1.iter().map(|h| h.name.as_str()).collect();
        assert_eq!(names, ["cpu,cpuacct", "memory", "systemd"]);
        assert!(m.v1[0].has("cpuacct"));
        assert!(m.v1[2].has("name=systemd"));
        assert_eq!(
            m.unified.unwrap().0,
            PathBuf::from("/sys/fs/cgroup/unified")
        );
    }

    #[test]
    fn pure_v2_and_v1() {
        let v2 = "30 23 0:26 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw,nsdelegate\n";
        assert_eq!(parse_mountinfo(v2, &known()).layout().unwrap(), Layout::V2);
        let v1: String = HYBRID.lines().take(3).map(|l| format!("{l}\n")).collect();
        assert_eq!(parse_mountinfo(&v1, &known()).layout().unwrap(), Layout::V1);
        assert!(matches!(
            parse_mountinfo("", &known()).layout(),
            Err(Error::NoCgroupMounts)
        ));
    }
}
