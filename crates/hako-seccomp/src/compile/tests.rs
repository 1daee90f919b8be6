//! Compile results checked by running the program through `CompiledFilter::simulate`, which
//! follows the kernel's classic-BPF semantics; `tests/behaviour.rs` checks the real kernel.

use super::compile_for;
use crate::syscalls::{Arch, Lookup};
use crate::{CompiledFilter, Error, parse_profile};

const ALLOW: u32 = libc::SECCOMP_RET_ALLOW;
const KILL_PROCESS: u32 = libc::SECCOMP_RET_KILL_PROCESS;
const AUDIT_ARCH_I386: u32 = 0x4000_0003;

fn errno(e: i32) -> u32 {
    libc::SECCOMP_RET_ERRNO | e.unsigned_abs()
}

fn build(json: &str) -> Result<CompiledFilter, Error> {
    compile_for(&parse_profile(json).unwrap(), Arch::X86_64)
}

fn ok(json: &str) -> CompiledFilter {
    build(json).unwrap_or_else(|e| panic!("{e}"))
}

fn nr(name: &str) -> u32 {
    match Arch::X86_64.lookup(name) {
        Lookup::Native(nr) => nr,
        other => panic!("{name}: {other:?}"),
    }
}

/// What the x86_64 filter answers for `name(args...)`.
fn run(filter: &CompiledFilter, name: &str, args: &[u64]) -> u32 {
    let mut all = [0u64; 6];
    all[..args.len()].copy_from_slice(args);
    filter.simulate(Arch::X86_64.audit_arch(), nr(name), all)
}

#[test]
fn empty_allow_profile_is_valid() {
    let f = ok(r#"{"defaultAction":"SCMP_ACT_ALLOW"}"#);
    assert_eq!(run(&f, "getpid", &[]), ALLOW);
    assert_eq!(run(&f, "mount", &[]), ALLOW);
    assert_eq!(f.flags(), 0);
    assert!(!f.wants_listener());
    // arch check (3) + x32 check (3) + default.
    assert_eq!(f.instructions().len(), 7);
}

#[test]
fn per_rule_errnos_and_default() {
    let f = ok(r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[
        {"names":["getpid"],"action":"SCMP_ACT_ERRNO"},
        {"names":["mkdir","mkdirat"],"action":"SCMP_ACT_ERRNO","errnoRet":38},
        {"names":["uname"],"action":"SCMP_ACT_ERRNO","errnoRet":99}]}"#);
    assert_eq!(run(&f, "getpid", &[]), errno(libc::EPERM));
    assert_eq!(run(&f, "mkdir", &[]), errno(libc::ENOSYS));
    assert_eq!(run(&f, "mkdirat", &[]), errno(libc::ENOSYS));
    assert_eq!(run(&f, "uname", &[]), errno(99));
    assert_eq!(run(&f, "read", &[]), ALLOW);
}

#[test]
fn default_errno_ret_applies_to_the_default_action() {
    let with = ok(r#"{"defaultAction":"SCMP_ACT_ERRNO","defaultErrnoRet":38,
        "syscalls":[{"names":["read"],"action":"SCMP_ACT_ALLOW"}]}"#);
    assert_eq!(run(&with, "getpid", &[]), errno(libc::ENOSYS));
    assert_eq!(run(&with, "read", &[]), ALLOW);
    let without = ok(r#"{"defaultAction":"SCMP_ACT_ERRNO",
        "syscalls":[{"names":["read"],"action":"SCMP_ACT_ALLOW"}]}"#);
    assert_eq!(run(&without, "getpid", &[]), errno(libc::EPERM));
}

#[test]
fn every_action_returns_its_kernel_value() {
    let f = ok(r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[
        {"names":["getpid"],"action":"SCMP_ACT_KILL"},
        {"names":["getppid"],"action":"SCMP_ACT_KILL_THREAD"},
        {"names":["gettid"],"action":"SCMP_ACT_KILL_PROCESS"},
        {"names":["getuid"],"action":"SCMP_ACT_TRAP"},
        {"names":["getgid"],"action":"SCMP_ACT_TRACE","errnoRet":5},
        {"names":["geteuid"],"action":"SCMP_ACT_LOG"},
        {"names":["getegid"],"action":"SCMP_ACT_ERRNO","errnoRet":0}]}"#);
    assert_eq!(run(&f, "getpid", &[]), libc::SECCOMP_RET_KILL_THREAD);
    assert_eq!(run(&f, "getppid", &[]), libc::SECCOMP_RET_KILL_THREAD);
    assert_eq!(run(&f, "gettid", &[]), KILL_PROCESS);
    assert_eq!(run(&f, "getuid", &[]), libc::SECCOMP_RET_TRAP);
    assert_eq!(run(&f, "getgid", &[]), libc::SECCOMP_RET_TRACE | 5);
    assert_eq!(run(&f, "geteuid", &[]), libc::SECCOMP_RET_LOG);
    assert_eq!(run(&f, "getegid", &[]), errno(0));
}

#[test]
fn argument_conditions_compare_all_64_bits() {
    let rule = |op: &str, value: u64, two: u64| {
        ok(&format!(
            r#"{{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{{"names":["personality"],
            "action":"SCMP_ACT_ALLOW","args":[{{"index":0,"value":{value},"valueTwo":{two},
            "op":"SCMP_CMP_{op}"}}]}}]}}"#
        ))
    };
    let big = 0x1_0000_0005u64;
    // (op, value, valueTwo, args that match, args that do not)
    type Case<'a> = (&'a str, u64, u64, &'a [u64], &'a [u64]);
    let cases: [Case<'_>; 7] = [
        ("EQ", big, 0, &[big], &[5, big + 1, 0x5_0000_0001]),
        ("NE", big, 0, &[5, 0, u64::MAX], &[big]),
        ("LT", big, 0, &[5, big - 1], &[big, big + 1, 0x2_0000_0000]),
        ("LE", big, 0, &[big, 5], &[big + 1, 0x2_0000_0000]),
        ("GT", big, 0, &[big + 1, 0x2_0000_0000], &[big, 5]),
        ("GE", big, 0, &[big, 0x2_0000_0000], &[big - 1, 5]),
        // value is the mask, valueTwo the expected masked bits.
        (
            "MASKED_EQ",
            0xff00_0000_00ff,
            0x1200_0000_0034,
            &[0x1234_5678_9a34],
            &[0x1234_0000_0035],
        ),
    ];
    for (op, value, two, allowed, denied) in cases {
        let f = rule(op, value, two);
        for &a in allowed {
            assert_eq!(
                run(&f, "personality", &[a]),
                ALLOW,
                "{op} {value:#x} vs {a:#x}"
            );
        }
        for &a in denied {
            assert_eq!(
                run(&f, "personality", &[a]),
                errno(1),
                "{op} {value:#x} vs {a:#x}"
            );
        }
    }
}

#[test]
fn conditions_in_a_rule_are_anded_and_rules_are_ored() {
    let f = ok(r#"{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[
        {"names":["mmap"],"action":"SCMP_ACT_ALLOW","args":[
            {"index":0,"value":1,"op":"SCMP_CMP_EQ"},{"index":2,"value":3,"op":"SCMP_CMP_EQ"}]},
        {"names":["mmap"],"action":"SCMP_ACT_ALLOW","args":[
            {"index":5,"value":9,"op":"SCMP_CMP_EQ"}]}]}"#);
    assert_eq!(run(&f, "mmap", &[1, 0, 3]), ALLOW);
    assert_eq!(run(&f, "mmap", &[1, 0, 4]), errno(1));
    assert_eq!(run(&f, "mmap", &[2, 0, 3]), errno(1));
    assert_eq!(run(&f, "mmap", &[0, 0, 0, 0, 0, 9]), ALLOW);
}

#[test]
fn the_same_argument_twice_is_ored_like_runc() {
    let f = ok(r#"{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[
        {"names":["personality"],"action":"SCMP_ACT_ALLOW","args":[
            {"index":0,"value":0,"op":"SCMP_CMP_EQ"},{"index":0,"value":8,"op":"SCMP_CMP_EQ"}]}]}"#);
    assert_eq!(run(&f, "personality", &[0]), ALLOW);
    assert_eq!(run(&f, "personality", &[8]), ALLOW);
    assert_eq!(run(&f, "personality", &[1]), errno(1));
}

#[test]
fn conditional_rules_beat_catch_all_rules_in_any_order() {
    let f = ok(r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[
        {"names":["personality"],"action":"SCMP_ACT_ERRNO","errnoRet":13},
        {"names":["personality"],"action":"SCMP_ACT_LOG","args":[
            {"index":0,"value":0,"op":"SCMP_CMP_EQ"}]}]}"#);
    assert_eq!(run(&f, "personality", &[0]), libc::SECCOMP_RET_LOG);
    assert_eq!(run(&f, "personality", &[8]), errno(13));
}

#[test]
fn first_catch_all_rule_wins_and_default_action_rules_are_dropped() {
    let f = ok(r#"{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[
        {"names":["read"],"action":"SCMP_ACT_ERRNO"},
        {"names":["read","write"],"action":"SCMP_ACT_ALLOW"},
        {"names":["write"],"action":"SCMP_ACT_KILL"}]}"#);
    assert_eq!(run(&f, "read", &[]), errno(1));
    assert_eq!(run(&f, "write", &[]), ALLOW);
}

#[test]
fn foreign_arches_and_x32_never_get_more_than_the_default() {
    let deny_by_default = ok(r#"{"defaultAction":"SCMP_ACT_ERRNO",
        "architectures":["SCMP_ARCH_X86_64","SCMP_ARCH_X86","SCMP_ARCH_X32"],
        "syscalls":[{"names":["mount"],"action":"SCMP_ACT_ALLOW"}]}"#);
    assert_eq!(
        deny_by_default.simulate(AUDIT_ARCH_I386, 21, [0; 6]),
        errno(1)
    );
    assert_eq!(run(&deny_by_default, "mount", &[]), ALLOW);
    let x32_mount = nr("mount") | 0x4000_0000;
    let audit = Arch::X86_64.audit_arch();
    assert_eq!(deny_by_default.simulate(audit, x32_mount, [0; 6]), errno(1));

    // With ALLOW as default, a foreign-arch syscall must not slip past the deny rule.
    let allow_by_default = ok(r#"{"defaultAction":"SCMP_ACT_ALLOW",
        "syscalls":[{"names":["mount"],"action":"SCMP_ACT_ERRNO"}]}"#);
    assert_eq!(
        allow_by_default.simulate(AUDIT_ARCH_I386, 21, [0; 6]),
        KILL_PROCESS
    );
    assert_eq!(
        allow_by_default.simulate(audit, x32_mount, [0; 6]),
        KILL_PROCESS
    );

    let allow_everything = ok(r#"{"defaultAction":"SCMP_ACT_ALLOW"}"#);
    assert_eq!(
        allow_everything.simulate(AUDIT_ARCH_I386, 21, [0; 6]),
        ALLOW
    );
}

#[test]
fn names_from_other_arches_are_skipped() {
    let f = ok(r#"{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[
        {"names":["chown32","_llseek","set_tls","getpid"],"action":"SCMP_ACT_ALLOW"}]}"#);
    assert_eq!(run(&f, "getpid", &[]), ALLOW);
}

#[test]
fn a_typo_is_one_clear_error() {
    let e = build(
        r#"{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[
        {"names":["read","opne"],"action":"SCMP_ACT_ALLOW"}]}"#,
    )
    .unwrap_err();
    assert!(
        matches!(&e, Error::UnknownSyscall(n) if n == "opne"),
        "{e:?}"
    );
    assert!(
        e.to_string().contains("\"opne\"") && e.to_string().contains("spelling"),
        "{e}"
    );
}

#[test]
fn bad_argument_index_and_errno_are_errors() {
    let e = build(
        r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["read"],
        "action":"SCMP_ACT_ERRNO","args":[{"index":6,"value":0,"op":"SCMP_CMP_EQ"}]}]}"#,
    )
    .unwrap_err();
    assert!(
        matches!(&e, Error::ArgIndex { index: 6, syscall } if syscall == "read"),
        "{e:?}"
    );
    assert!(e.to_string().contains("0 to 5"), "{e}");

    let e = build(
        r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["read"],
        "action":"SCMP_ACT_ERRNO","errnoRet":5000}]}"#,
    )
    .unwrap_err();
    assert!(matches!(&e, Error::ErrnoOutOfRange { value: 5000, at, .. } if at == "syscalls[0]"));
}

#[test]
fn flags_map_to_kernel_bits() {
    let f = ok(
        r#"{"defaultAction":"SCMP_ACT_ALLOW","flags":["SECCOMP_FILTER_FLAG_TSYNC",
        "SECCOMP_FILTER_FLAG_LOG","SECCOMP_FILTER_FLAG_SPEC_ALLOW",
        "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"]}"#,
    );
    // WAIT_KILLABLE_RECV only means something with a listener; the kernel rejects it alone.
    assert_eq!(f.flags(), 1 | 2 | 4);
}

#[test]
fn notify_needs_a_listener_and_sets_new_listener() {
    let e = build(
        r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[
        {"names":["mkdir"],"action":"SCMP_ACT_NOTIFY"}]}"#,
    )
    .unwrap_err();
    assert!(matches!(&e, Error::NotifyWithoutListener { at } if at == "syscalls[0].action"));
    assert!(e.to_string().contains("listenerPath"), "{e}");

    let e = build(r#"{"defaultAction":"SCMP_ACT_NOTIFY","listenerPath":"/run/agent.sock"}"#)
        .unwrap_err();
    assert!(
        matches!(&e, Error::Unsupported(m) if m.contains("SCMP_ACT_NOTIFY")),
        "{e:?}"
    );

    let f = ok(
        r#"{"defaultAction":"SCMP_ACT_ALLOW","listenerPath":"/run/agent.sock",
        "flags":["SECCOMP_FILTER_FLAG_TSYNC","SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"],
        "syscalls":[{"names":["mkdir"],"action":"SCMP_ACT_NOTIFY"}]}"#,
    );
    assert!(f.wants_listener());
    assert_eq!(run(&f, "mkdir", &[]), libc::SECCOMP_RET_USER_NOTIF);
    // TSYNC | NEW_LISTENER | TSYNC_ESRCH | WAIT_KILLABLE_RECV
    assert_eq!(f.flags(), 1 | 8 | 16 | 32);
}

#[test]
fn aarch64_uses_its_own_numbers_and_arch() {
    let p = parse_profile(
        r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[
        {"names":["getpid","arch_prctl"],"action":"SCMP_ACT_ERRNO"}]}"#,
    )
    .unwrap();
    let f = compile_for(&p, Arch::Aarch64).unwrap();
    let audit = Arch::Aarch64.audit_arch();
    assert_eq!(f.simulate(audit, 172, [0; 6]), errno(1)); // getpid on aarch64
    assert_eq!(f.simulate(audit, 39, [0; 6]), ALLOW); // x86_64's getpid number
    assert_eq!(
        f.simulate(Arch::X86_64.audit_arch(), 172, [0; 6]),
        KILL_PROCESS
    );
}

#[test]
fn compiling_is_deterministic() {
    let json = r#"{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[
        {"names":["read","write"],"action":"SCMP_ACT_ALLOW"},
        {"names":["personality"],"action":"SCMP_ACT_ALLOW","args":[
            {"index":0,"value":8,"op":"SCMP_CMP_EQ"}]}]}"#;
    assert_eq!(ok(json), ok(json));
}

#[test]
fn too_many_rules_is_filter_too_large() {
    let rules: Vec<String> = (0..600)
        .map(|i| {
            format!(
                r#"{{"names":["personality"],"action":"SCMP_ACT_ALLOW",
                "args":[{{"index":0,"value":{i},"op":"SCMP_CMP_EQ"}}]}}"#
            )
        })
        .collect();
    let json = format!(
        r#"{{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{}]}}"#,
        rules.join(",")
    );
    let e = build(&json).unwrap_err();
    assert!(
        matches!(e, Error::FilterTooLarge { instructions } if instructions > 4096),
        "{e:?}"
    );
}

/// The tree layout answers exactly what the chain of sections (the layout before it) answers,
/// for every syscall number, both arches' checks, x32 numbers and argument values the
/// profiles' conditions compare, and is a fraction of its size.
#[test]
fn the_tree_answers_what_the_chain_answers() {
    let all_caps: Vec<String> = crate::DOCKER_DEFAULT_CAPABILITIES
        .iter()
        .chain(&[
            "CAP_SYS_ADMIN",
            "CAP_SYS_BOOT",
            "CAP_SYS_MODULE",
            "CAP_SYS_PACCT",
            "CAP_SYS_PTRACE",
            "CAP_SYS_RAWIO",
            "CAP_SYS_TIME",
            "CAP_SYS_TTY_CONFIG",
            "CAP_SYS_NICE",
            "CAP_SYSLOG",
            "CAP_BPF",
            "CAP_PERFMON",
            "CAP_DAC_READ_SEARCH",
        ])
        .map(|c| (*c).to_string())
        .collect();
    let default_caps: Vec<String> = crate::DOCKER_DEFAULT_CAPABILITIES
        .iter()
        .map(|c| (*c).to_string())
        .collect();
    let mut profiles = Vec::new();
    for arch in [Arch::X86_64, Arch::Aarch64] {
        for caps in [&default_caps, &all_caps, &Vec::new()] {
            profiles.push((arch, crate::docker_default::docker_default_for(caps, arch)));
        }
    }
    for json in [
        r#"{"defaultAction":"SCMP_ACT_ALLOW"}"#,
        r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[
            {"names":["getpid","read"],"action":"SCMP_ACT_ERRNO","errnoRet":5},
            {"names":["write"],"action":"SCMP_ACT_KILL_PROCESS"},
            {"names":["personality"],"action":"SCMP_ACT_ERRNO","args":[
                {"index":0,"value":8,"op":"SCMP_CMP_EQ"}]}]}"#,
        r#"{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[
            {"names":["read","write","close","exit_group"],"action":"SCMP_ACT_ALLOW"},
            {"names":["openat"],"action":"SCMP_ACT_LOG"},
            {"names":["read"],"action":"SCMP_ACT_KILL_PROCESS"},
            {"names":["write"],"action":"SCMP_ACT_TRACE","args":[
                {"index":0,"value":2,"op":"SCMP_CMP_GT"}]}]}"#,
    ] {
        profiles.push((Arch::X86_64, parse_profile(json).unwrap()));
    }
    // Every other syscall allowed: ~190 ranges, so the tree needs its long jumps.
    let every_other: Vec<String> = crate::syscalls::x86_64::SYSCALLS
        .iter()
        .filter(|(_, nr)| nr % 2 == 0)
        .map(|(name, _)| format!("{name:?}"))
        .collect();
    let json = format!(
        r#"{{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{{"names":[{}],"action":"SCMP_ACT_ALLOW"}}]}}"#,
        every_other.join(",")
    );
    let alternating = parse_profile(&json).unwrap();
    assert!(
        super::compile_with(&alternating, Arch::X86_64, crate::program::link)
            .unwrap()
            .instructions()
            .iter()
            .any(|i| i.code == 0x05),
        "no long jump in the tree"
    );
    profiles.push((Arch::X86_64, alternating));
    let args: Vec<u64> = vec![
        0,
        1,
        2,
        8,
        40,
        0x0002_0000,
        0x0002_0008,
        0xffff_ffff,
        0x1000_0000,
        0x7e02_0000,
        0x8000_0000,
        u64::MAX,
        0x1_0000_0008,
    ];
    let foreign = [
        AUDIT_ARCH_I386,
        Arch::X86_64.audit_arch(),
        Arch::Aarch64.audit_arch(),
    ];
    let mut numbers: Vec<u32> = (0..1100).collect();
    numbers.extend([0x3fff_ffff, 0x4000_0000, 0x4000_0001, 0x4000_0200, u32::MAX]);
    for (i, (arch, profile)) in profiles.iter().enumerate() {
        let tree = super::compile_with(profile, *arch, crate::program::link).unwrap();
        let chain = super::compile_with(profile, *arch, crate::program::link_chain).unwrap();
        if i == 0 {
            // Docker's default profile, default capabilities, x86_64.
            assert!(
                tree.instructions().len() * 3 < chain.instructions().len(),
                "tree {} vs chain {} instructions",
                tree.instructions().len(),
                chain.instructions().len()
            );
        }
        for audit in foreign {
            for &nr in &numbers {
                for (j, &a) in args.iter().enumerate() {
                    let b = args[(j + 1) % args.len()];
                    let all = [a, b, a, b, a, b];
                    assert_eq!(
                        tree.simulate(audit, nr, all),
                        chain.simulate(audit, nr, all),
                        "profile {i}, arch {audit:#x}, nr {nr}, args {all:x?}"
                    );
                }
            }
        }
    }
}
