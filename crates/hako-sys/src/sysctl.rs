//! Which kernel namespace holds a sysctl: the rule Docker's CLI (`--sysctl`) and runc (at
//! create) both apply, so that a container never writes the host's own settings.

/// The IPC namespace's sysctls under `kernel.` (`fs.mqueue.*` is the rest of it).
const IPC_KERNEL: [&str; 8] = [
    "kernel.msgmax",
    "kernel.msgmnb",
    "kernel.msgmni",
    "kernel.sem",
    "kernel.shmall",
    "kernel.shmmax",
    "kernel.shmmni",
    "kernel.shm_rmid_forced",
];

/// Whether the dotted `key` (`kernel.msgmax`) belongs to the IPC namespace.
pub fn in_ipc_namespace(key: &str) -> bool {
    IPC_KERNEL.contains(&key) || key.starts_with("fs.mqueue.")
}

/// Whether the dotted `key` (`net.ipv4.ip_forward`) belongs to the network namespace.
pub fn in_net_namespace(key: &str) -> bool {
    key.starts_with("net.")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespaced_and_host_sysctls() {
        assert!(in_ipc_namespace("kernel.shm_rmid_forced"));
        assert!(in_ipc_namespace("fs.mqueue.msg_max"));
        assert!(!in_ipc_namespace("kernel.hostname"));
        assert!(!in_ipc_namespace("kernel.msgmax2"));
        assert!(in_net_namespace("net.ipv4.ip_forward"));
        assert!(!in_net_namespace("vm.swappiness"));
        assert!(!in_net_namespace("network"));
    }
}
