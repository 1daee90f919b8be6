//! Which process creates or joins which namespace, decided once from the config.
//!
//! Kernel rules that shape the plan:
//! - a namespace is owned by the user namespace its creator is in, so when a new user
//!   namespace is made it must exist *before* the others (or the container's root could not
//!   mount /proc of its own pid namespace);
//! - joining a namespace needs CAP_SYS_ADMIN in its owner, so namespaces given by path are
//!   joined *before* entering a new user namespace;
//! - `setns`/`unshare` of pid and time namespaces only affect children, so those are set up
//!   by the parent right before the clone.
//!
//! Most containers create every namespace: then one `clone3` with all the flags makes the
//! init directly. Only when paths are mixed with a new pid namespace under a user namespace
//! does an intermediate process (runc's stage 1) join, unshare and clone the init.

use std::path::PathBuf;

use nix::sched::CloneFlags;
use oci_spec::runtime::{LinuxNamespaceType, Spec};

/// One namespace to join, by path.
#[derive(Debug, Clone)]
pub struct Join {
    pub typ: LinuxNamespaceType,
    pub path: PathBuf,
}

/// Where each namespace comes from.
#[derive(Debug)]
pub struct Plan {
    /// Joined by the parent before cloning (pid, time: they apply to children).
    pub parent_join: Vec<Join>,
    /// The parent unshares a new time namespace (so offsets can be written) before cloning.
    pub parent_new_time: bool,
    /// Flags for the first clone.
    pub clone_flags: CloneFlags,
    /// Whether an intermediate process sits between parent and init.
    pub intermediate: bool,
    /// Joined by the child (or the intermediate), user namespace first.
    pub child_join: Vec<Join>,
    /// The child (or intermediate) unshares a user namespace and asks the parent for the
    /// mappings.
    pub child_new_user: bool,
    /// Unshared by the child (or intermediate) after joining and after the user namespace.
    pub child_unshare: CloneFlags,
    /// The init unshares a cgroup namespace after it was put into its cgroup.
    pub new_cgroup: bool,
    /// A new user namespace is made (by clone or unshare); the parent writes the mappings.
    pub new_user: bool,
    pub new_pid: bool,
    pub has_mount_ns: bool,
}

fn flag(t: LinuxNamespaceType) -> CloneFlags {
    match t {
        LinuxNamespaceType::Mount => CloneFlags::CLONE_NEWNS,
        LinuxNamespaceType::Cgroup => CloneFlags::CLONE_NEWCGROUP,
        LinuxNamespaceType::Uts => CloneFlags::CLONE_NEWUTS,
        LinuxNamespaceType::Ipc => CloneFlags::CLONE_NEWIPC,
        LinuxNamespaceType::User => CloneFlags::CLONE_NEWUSER,
        LinuxNamespaceType::Pid => CloneFlags::CLONE_NEWPID,
        LinuxNamespaceType::Network => CloneFlags::CLONE_NEWNET,
        // CLONE_NEWTIME shares its bit with CSIGNAL in clone(2); it is only ever passed to
        // unshare/setns here.
        LinuxNamespaceType::Time => CloneFlags::from_bits_retain(libc::CLONE_NEWTIME),
    }
}

/// The setns flag for a namespace type.
pub fn setns_flag(t: LinuxNamespaceType) -> CloneFlags {
    flag(t)
}

impl Default for Plan {
    fn default() -> Plan {
        Plan {
            parent_join: Vec::new(),
            parent_new_time: false,
            clone_flags: CloneFlags::empty(),
            intermediate: false,
            child_join: Vec::new(),
            child_new_user: false,
            child_unshare: CloneFlags::empty(),
            new_cgroup: false,
            new_user: false,
            new_pid: false,
            has_mount_ns: false,
        }
    }
}

impl Plan {
    pub fn new(spec: &Spec) -> Plan {
        let mut plan = Plan::default();
        let namespaces = spec
            .linux()
            .as_ref()
            .and_then(|l| l.namespaces().clone())
            .unwrap_or_default();
        let mut new = CloneFlags::empty();
        let mut joins = Vec::new();
        for ns in &namespaces {
            let t = ns.typ();
            if t == LinuxNamespaceType::Mount {
                plan.has_mount_ns = true;
            }
            match ns.path() {
                Some(p) if !p.as_os_str().is_empty() => {
                    let join = Join {
                        typ: t,
                        path: p.clone(),
                    };
                    match t {
                        LinuxNamespaceType::Pid | LinuxNamespaceType::Time => {
                            plan.parent_join.push(join)
                        }
                        _ => joins.push(join),
                    }
                }
                _ => match t {
                    LinuxNamespaceType::Time => plan.parent_new_time = true,
                    LinuxNamespaceType::Cgroup => plan.new_cgroup = true,
                    LinuxNamespaceType::User => plan.new_user = true,
                    LinuxNamespaceType::Pid => {
                        plan.new_pid = true;
                        new |= flag(t);
                    }
                    _ => new |= flag(t),
                },
            }
        }
        // User namespace first among the joins.
        joins.sort_by_key(|j| j.typ != LinuxNamespaceType::User);
        let user_joined = joins.iter().any(|j| j.typ == LinuxNamespaceType::User);
        let user_new = plan.new_user;

        if joins.is_empty() {
            // The common case: one clone3 makes everything (user first, by the kernel's own
            // ordering inside copy_namespaces).
            plan.clone_flags = new
                | if user_new {
                    CloneFlags::CLONE_NEWUSER
                } else {
                    CloneFlags::empty()
                };
        } else if !user_new && !user_joined {
            // Host user namespace: joining works from the new child.
            plan.clone_flags = new;
            plan.child_join = joins;
        } else if plan.new_pid {
            // The pid namespace must be owned by the container's user namespace, which only
            // exists after joining: needs a second clone.
            plan.intermediate = true;
            plan.child_join = joins;
            plan.child_new_user = user_new;
            plan.child_unshare = new;
        } else {
            plan.child_join = joins;
            plan.child_new_user = user_new;
            plan.child_unshare = new;
        }
        plan
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(ns: &str) -> Spec {
        serde_json::from_str(&format!(
            r#"{{"ociVersion":"1.2.0","linux":{{"namespaces":{ns}}}}}"#
        ))
        .unwrap()
    }

    #[test]
    fn all_new_is_one_clone() {
        let p = Plan::new(&spec(
            r#"[{"type":"pid"},{"type":"mount"},{"type":"user"},{"type":"network"},{"type":"cgroup"}]"#,
        ));
        assert!(!p.intermediate);
        assert!(
            p.clone_flags
                .contains(CloneFlags::CLONE_NEWUSER | CloneFlags::CLONE_NEWPID)
        );
        assert!(!p.clone_flags.contains(CloneFlags::CLONE_NEWCGROUP));
        assert!(p.new_cgroup && p.new_user && p.child_join.is_empty());
    }

    #[test]
    fn joined_net_with_new_user_and_pid_needs_intermediate() {
        let p = Plan::new(&spec(
            r#"[{"type":"pid"},{"type":"user"},{"type":"network","path":"/proc/1/ns/net"}]"#,
        ));
        assert!(p.intermediate && p.child_new_user);
        assert!(p.clone_flags.is_empty());
        assert!(p.child_unshare.contains(CloneFlags::CLONE_NEWPID));
    }

    #[test]
    fn joined_net_without_user_is_single_clone() {
        let p = Plan::new(&spec(
            r#"[{"type":"pid"},{"type":"network","path":"/proc/1/ns/net"}]"#,
        ));
        assert!(!p.intermediate);
        assert_eq!(p.clone_flags, CloneFlags::CLONE_NEWPID);
        assert_eq!(p.child_join.len(), 1);
    }

    #[test]
    fn pid_and_time_paths_are_joined_by_parent() {
        let p = Plan::new(&spec(
            r#"[{"type":"pid","path":"/proc/1/ns/pid"},{"type":"time"},{"type":"mount"}]"#,
        ));
        assert_eq!(p.parent_join.len(), 1);
        assert!(p.parent_new_time && !p.new_pid);
        assert_eq!(p.clone_flags, CloneFlags::CLONE_NEWNS);
    }

    #[test]
    fn user_joined_first() {
        let p = Plan::new(&spec(
            r#"[{"type":"network","path":"/a"},{"type":"user","path":"/b"},{"type":"mount"}]"#,
        ));
        assert_eq!(p.child_join[0].typ, LinuxNamespaceType::User);
        assert!(!p.intermediate);
        assert_eq!(p.child_unshare, CloneFlags::CLONE_NEWNS);
    }
}
