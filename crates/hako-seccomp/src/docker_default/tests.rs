use super::{DOCKER_DEFAULT_CAPABILITIES, embedded, resolve};
use crate::compile::compile_for;
use crate::syscalls::{Arch, Lookup};
use crate::{CompiledFilter, docker_default_profile};

const ALLOW: u32 = libc::SECCOMP_RET_ALLOW;
const EPERM: u32 = libc::SECCOMP_RET_ERRNO | 1;
const ENOSYS: u32 = libc::SECCOMP_RET_ERRNO | 38;
const CLONE_NEWUSER: u64 = 0x1000_0000;
const CLONE_NEWNS: u64 = 0x0002_0000;
const THREAD_FLAGS: u64 = 0x003d_0f00; // what glibc's pthread_create passes

fn caps(extra: &[&str]) -> Vec<String> {
    DOCKER_DEFAULT_CAPABILITIES
        .iter()
        .chain(extra)
        .map(|c| c.to_string())
        .collect()
}

fn compiled(arch: Arch, caps: &[String]) -> CompiledFilter {
    compile_for(&resolve(embedded(), caps, Some(arch)), arch).unwrap()
}

fn run(f: &CompiledFilter, arch: Arch, name: &str, args: &[u64]) -> u32 {
    let Lookup::Native(nr) = arch.lookup(name) else {
        panic!("{name} on {arch:?}")
    };
    let mut all = [0u64; 6];
    all[..args.len()].copy_from_slice(args);
    f.simulate(arch.audit_arch(), nr, all)
}

#[test]
fn compiles_for_every_arch_and_capability_set() {
    for arch in Arch::ALL {
        for set in [
            caps(&[]),
            caps(&["CAP_SYS_ADMIN", "CAP_SYS_PTRACE"]),
            Vec::new(),
        ] {
            let f = compiled(arch, &set);
            assert!(
                f.instructions().len() < 4096,
                "{arch:?}: {}",
                f.instructions().len()
            );
        }
    }
}

#[test]
fn default_caps_block_namespace_and_kernel_tampering() {
    let arch = Arch::X86_64;
    let f = compiled(arch, &caps(&[]));
    for name in [
        "unshare",
        "mount",
        "umount2",
        "setns",
        "keyctl",
        "add_key",
        "request_key",
        "bpf",
        "kexec_load",
        "init_module",
        "open_by_handle_at",
        "reboot",
        "ptrace_does_not_exist",
    ] {
        if let Lookup::Native(_) = arch.lookup(name) {
            assert_eq!(run(&f, arch, name, &[]), EPERM, "{name}");
        }
    }
    assert_eq!(run(&f, arch, "clone", &[CLONE_NEWUSER]), EPERM);
    assert_eq!(run(&f, arch, "clone", &[CLONE_NEWNS | 17]), EPERM);
    assert_eq!(run(&f, arch, "clone", &[THREAD_FLAGS]), ALLOW);
    assert_eq!(run(&f, arch, "clone", &[17]), ALLOW); // fork: SIGCHLD only
    assert_eq!(run(&f, arch, "clone3", &[]), ENOSYS);
    assert_eq!(run(&f, arch, "socket", &[40]), EPERM); // AF_VSOCK
    assert_eq!(run(&f, arch, "socket", &[2, 1]), ALLOW);
    for persona in [0, 8, 0x20000, 0x20008, 0xffff_ffff] {
        assert_eq!(
            run(&f, arch, "personality", &[persona]),
            ALLOW,
            "{persona:#x}"
        );
    }
    assert_eq!(run(&f, arch, "personality", &[0x0040_0000]), EPERM); // READ_IMPLIES_EXEC
    for name in [
        "read",
        "write",
        "openat",
        "execve",
        "exit_group",
        "arch_prctl",
        "chroot",
        "ptrace",
        "getdents64",
        "newfstatat",
        "futex",
        "rseq",
        "fchmodat2",
    ] {
        assert_eq!(run(&f, arch, name, &[]), ALLOW, "{name}");
    }
}

#[test]
fn capabilities_open_their_syscalls() {
    let arch = Arch::X86_64;
    let admin = compiled(arch, &caps(&["SYS_ADMIN"])); // prefix-less names work too
    assert_eq!(run(&admin, arch, "mount", &[]), ALLOW);
    assert_eq!(run(&admin, arch, "unshare", &[]), ALLOW);
    assert_eq!(run(&admin, arch, "clone", &[CLONE_NEWUSER]), ALLOW);
    assert_eq!(run(&admin, arch, "clone3", &[]), ALLOW);
    assert_eq!(run(&admin, arch, "keyctl", &[]), EPERM);

    let none = compiled(arch, &[]);
    assert_eq!(run(&none, arch, "chroot", &[]), EPERM);
    let time = compiled(arch, &caps(&["cap_sys_time"]));
    assert_eq!(run(&time, arch, "settimeofday", &[]), ALLOW);
}

#[test]
fn arches_follow_the_arch_map_and_arch_rules() {
    let p = resolve(embedded(), &caps(&[]), Some(Arch::X86_64));
    let arches: Vec<String> = p
        .architectures()
        .iter()
        .flatten()
        .map(|a| {
            serde_json::to_value(a)
                .unwrap()
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(
        arches,
        ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"]
    );
    let aarch64 = compiled(Arch::Aarch64, &caps(&[]));
    assert_eq!(run(&aarch64, Arch::Aarch64, "getpid", &[]), ALLOW);
    let names = |arch| {
        resolve(embedded(), &caps(&[]), Some(arch))
            .syscalls()
            .iter()
            .flatten()
            .flat_map(|r| r.names().clone())
            .collect::<Vec<_>>()
    };
    assert!(names(Arch::X86_64).contains(&"arch_prctl".to_string()));
    assert!(!names(Arch::Aarch64).contains(&"arch_prctl".to_string()));
    assert!(names(Arch::Riscv64).contains(&"riscv_flush_icache".to_string()));
}

#[test]
fn public_entry_point_resolves_for_the_host() {
    let p = docker_default_profile(&caps(&[]));
    assert_eq!(p.default_errno_ret(), Some(1));
    assert!(crate::compile(&p).is_ok());
}
