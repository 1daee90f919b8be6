//! Mount options from `config.json` (`fstab` words) turned into mount(2) flags, propagation
//! flags and the filesystem-specific data string.

use nix::mount::MsFlags;

/// One mount entry's parsed options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    pub flags: MsFlags,
    /// Flags the options explicitly cleared (`rw`, `suid`, `dev`, `exec`...).
    pub cleared: MsFlags,
    pub propagation: Vec<MsFlags>,
    pub data: Vec<String>,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            flags: MsFlags::empty(),
            cleared: MsFlags::empty(),
            propagation: Vec::new(),
            data: Vec::new(),
        }
    }
}

impl Options {
    pub fn parse(options: &[String]) -> Options {
        let mut o = Options::default();
        for opt in options {
            let (set, clear) = match opt.as_str() {
                "defaults" => (MsFlags::empty(), MsFlags::empty()),
                "ro" => (MsFlags::MS_RDONLY, MsFlags::empty()),
                "rw" => (MsFlags::empty(), MsFlags::MS_RDONLY),
                "nosuid" => (MsFlags::MS_NOSUID, MsFlags::empty()),
                "suid" => (MsFlags::empty(), MsFlags::MS_NOSUID),
                "nodev" => (MsFlags::MS_NODEV, MsFlags::empty()),
                "dev" => (MsFlags::empty(), MsFlags::MS_NODEV),
                "noexec" => (MsFlags::MS_NOEXEC, MsFlags::empty()),
                "exec" => (MsFlags::empty(), MsFlags::MS_NOEXEC),
                "sync" => (MsFlags::MS_SYNCHRONOUS, MsFlags::empty()),
                "async" => (MsFlags::empty(), MsFlags::MS_SYNCHRONOUS),
                "dirsync" => (MsFlags::MS_DIRSYNC, MsFlags::empty()),
                "remount" => (MsFlags::MS_REMOUNT, MsFlags::empty()),
                "mand" => (MsFlags::MS_MANDLOCK, MsFlags::empty()),
                "nomand" => (MsFlags::empty(), MsFlags::MS_MANDLOCK),
                "atime" => (MsFlags::empty(), MsFlags::MS_NOATIME),
                "noatime" => (MsFlags::MS_NOATIME, MsFlags::empty()),
                "diratime" => (MsFlags::empty(), MsFlags::MS_NODIRATIME),
                "nodiratime" => (MsFlags::MS_NODIRATIME, MsFlags::empty()),
                "relatime" => (MsFlags::MS_RELATIME, MsFlags::empty()),
                "norelatime" => (MsFlags::empty(), MsFlags::MS_RELATIME),
                "strictatime" => (MsFlags::MS_STRICTATIME, MsFlags::empty()),
                "nostrictatime" => (MsFlags::empty(), MsFlags::MS_STRICTATIME),
                "lazytime" => (MsFlags::MS_LAZYTIME, MsFlags::empty()),
                "nolazytime" => (MsFlags::empty(), MsFlags::MS_LAZYTIME),
                "iversion" => (MsFlags::MS_I_VERSION, MsFlags::empty()),
                "noiversion" => (MsFlags::empty(), MsFlags::MS_I_VERSION),
                "silent" => (MsFlags::MS_SILENT, MsFlags::empty()),
                "loud" => (MsFlags::empty(), MsFlags::MS_SILENT),
                "bind" => (MsFlags::MS_BIND, MsFlags::empty()),
                "rbind" => (MsFlags::MS_BIND | MsFlags::MS_REC, MsFlags::empty()),
                // Hints for other runtimes (crun's tmpfs copy-up): accepted and ignored.
                "tmpcopyup" | "notmpcopyup" => (MsFlags::empty(), MsFlags::empty()),
                p @ ("private" | "rprivate" | "shared" | "rshared" | "slave" | "rslave"
                | "unbindable" | "runbindable") => {
                    o.propagation.push(propagation(p).expect("listed above"));
                    continue;
                }
                other => {
                    o.data.push(other.to_owned());
                    continue;
                }
            };
            o.flags = (o.flags | set) - clear;
            o.cleared = (o.cleared | clear) - set;
        }
        o
    }

    pub fn is_bind(&self) -> bool {
        self.flags.contains(MsFlags::MS_BIND)
    }

    pub fn data(&self) -> Option<String> {
        (!self.data.is_empty()).then(|| self.data.join(","))
    }
}

/// Propagation word (`rslave`, `private`, ...) to flags.
pub fn propagation(word: &str) -> Option<MsFlags> {
    Some(match word {
        "private" => MsFlags::MS_PRIVATE,
        "rprivate" => MsFlags::MS_PRIVATE | MsFlags::MS_REC,
        "shared" => MsFlags::MS_SHARED,
        "rshared" => MsFlags::MS_SHARED | MsFlags::MS_REC,
        "slave" => MsFlags::MS_SLAVE,
        "rslave" => MsFlags::MS_SLAVE | MsFlags::MS_REC,
        "unbindable" => MsFlags::MS_UNBINDABLE,
        "runbindable" => MsFlags::MS_UNBINDABLE | MsFlags::MS_REC,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(words: &[&str]) -> Options {
        Options::parse(&words.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn flags_data_and_propagation() {
        let o = parse(&["nosuid", "strictatime", "mode=755", "size=65536k", "rslave"]);
        assert_eq!(o.flags, MsFlags::MS_NOSUID | MsFlags::MS_STRICTATIME);
        assert_eq!(o.data().as_deref(), Some("mode=755,size=65536k"));
        assert_eq!(o.propagation, vec![MsFlags::MS_SLAVE | MsFlags::MS_REC]);
    }

    #[test]
    fn later_words_win() {
        let o = parse(&["ro", "rw", "rbind"]);
        assert!(!o.flags.contains(MsFlags::MS_RDONLY));
        assert!(o.cleared.contains(MsFlags::MS_RDONLY));
        assert!(o.is_bind() && o.flags.contains(MsFlags::MS_REC));
    }
}
