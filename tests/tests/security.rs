//! Security settings seen from inside the container: seccomp (a blocked syscall returns
//! the configured errno; Docker's default profile blocks what Docker blocks; profiles that
//! deny what the runtime itself might use: close_range, or everything not on an old
//! allowlist), capabilities the kernel refuses (a `create` error, not a dead container),
//! and bad security input failing cleanly. Scenarios run against hako-runtime and runc.

// Shared with the e2e target; not every helper is used here.
#[allow(dead_code, unused_imports)]
#[path = "e2e/common.rs"]
mod common;

use common::{Config, Runtime, bundle, inside, scenario, unique_id};
use serde_json::json;

fn seccomp_errno_ret(rt: &Runtime) {
    let config = Config::new()
        .edit(|j| {
            j["linux"]["seccomp"] = json!({
                "defaultAction": "SCMP_ACT_ALLOW",
                "architectures": ["SCMP_ARCH_X86_64"],
                "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 99}]
            });
        })
        .sh("mkdir /dev/shm/blocked 2>&1; echo rc=$?; touch /dev/shm/allowed && echo touched");
    let out = inside(rt, config);
    // errno 99 is EADDRNOTAVAIL: the message proves the errno came from our rule.
    assert!(out.contains("Cannot assign requested address"), "{out}");
    assert!(out.contains("rc=1") && out.contains("touched"), "{out}");
}

/// Start a sleeping container of `config`, exec `script` in it, return the exec's stdout.
fn exec_in(rt: &Runtime, config: Config, script: &str) -> String {
    let b = bundle(&config.args(&["sleep", "1000"]));
    let id = unique_id("sec");
    let guard = common::ContainerGuard::new(rt, &id);
    rt.create(&id, b.path()).expect_ok("create");
    rt.start(&id).expect_ok("start");
    let out = rt.cmd(&["exec", &id, "sh", "-c", script]);
    out.expect_ok("exec");
    drop(guard);
    rt.assert_no_leaks(&[&id], &[b.path()]);
    out.stdout
}

/// A profile that denies close_range (kernel 5.9; older profiles and allowlists lack it):
/// the runtime must not need it once the filter is loaded, in the init or in exec.
fn close_range_denied(rt: &Runtime) {
    let profile = json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["close_range"], "action": "SCMP_ACT_ERRNO"}]
    });
    for nnp in [true, false] {
        let config = || {
            Config::new()
                .no_new_privileges(nnp)
                .edit(|j| j["linux"]["seccomp"] = profile.clone())
        };
        let out = inside(rt, config().sh("echo hello from $(id -u)"));
        assert_eq!(out.trim(), "hello from 0", "nnp={nnp}");
        let out = exec_in(rt, config(), "echo exec works");
        assert_eq!(out.trim(), "exec works", "nnp={nnp}");
    }
}

/// The x86_64 part of opencontainers/runtime-tools' default seccomp profile
/// (`generate/seccomp/seccomp_default.go`): an allowlist from before close_range, clone3,
/// openat2, faccessat2, pidfd_*, rseq, with clone allowed only without namespace flags.
fn runtime_tools_profile() -> serde_json::Value {
    const ALLOWED: &str = "accept accept4 access alarm bind brk capget capset chdir chmod chown \
        chown32 clock_getres clock_gettime clock_nanosleep close connect copy_file_range creat dup \
        dup2 dup3 epoll_create epoll_create1 epoll_ctl epoll_ctl_old epoll_pwait epoll_wait \
        epoll_wait_old eventfd eventfd2 execve execveat exit exit_group faccessat fadvise64 \
        fadvise64_64 fallocate fanotify_mark fchdir fchmod fchmodat fchown fchown32 fchownat fcntl \
        fcntl64 fdatasync fgetxattr flistxattr flock fork fremovexattr fsetxattr fstat fstat64 \
        fstatat64 fstatfs fstatfs64 fsync ftruncate ftruncate64 futex futimesat getcpu getcwd \
        getdents getdents64 getegid getegid32 geteuid geteuid32 getgid getgid32 getgroups \
        getgroups32 getitimer getpeername getpgid getpgrp getpid getppid getpriority getrandom \
        getresgid getresgid32 getresuid getresuid32 getrlimit get_robust_list getrusage getsid \
        getsockname getsockopt get_thread_area gettid gettimeofday getuid getuid32 getxattr \
        inotify_add_watch inotify_init inotify_init1 inotify_rm_watch io_cancel ioctl io_destroy \
        io_getevents ioprio_get ioprio_set io_setup io_submit ipc kill lchown lchown32 lgetxattr \
        link linkat listen listxattr llistxattr _llseek lremovexattr lseek lsetxattr lstat lstat64 \
        madvise memfd_create mincore mkdir mkdirat mknod mknodat mlock mlock2 mlockall mmap mmap2 \
        mprotect mq_getsetattr mq_notify mq_open mq_timedreceive mq_timedsend mq_unlink mremap \
        msgctl msgget msgrcv msgsnd msync munlock munlockall munmap nanosleep newfstatat \
        _newselect open openat pause pipe pipe2 poll ppoll prctl pread64 preadv prlimit64 pselect6 \
        pwrite64 pwritev read readahead readlink readlinkat readv recv recvfrom recvmmsg recvmsg \
        remap_file_pages removexattr rename renameat renameat2 restart_syscall rmdir rt_sigaction \
        rt_sigpending rt_sigprocmask rt_sigqueueinfo rt_sigreturn rt_sigsuspend rt_sigtimedwait \
        rt_tgsigqueueinfo sched_getaffinity sched_getattr sched_getparam sched_get_priority_max \
        sched_get_priority_min sched_getscheduler sched_rr_get_interval sched_setaffinity \
        sched_setattr sched_setparam sched_setscheduler sched_yield seccomp select semctl semget \
        semop semtimedop send sendfile sendfile64 sendmmsg sendmsg sendto setfsgid setfsgid32 \
        setfsuid setfsuid32 setgid setgid32 setgroups setgroups32 setitimer setpgid setpriority \
        setregid setregid32 setresgid setresgid32 setresuid setresuid32 setreuid setreuid32 \
        setrlimit set_robust_list setsid setsockopt set_thread_area set_tid_address setuid \
        setuid32 setxattr shmat shmctl shmdt shmget shutdown sigaltstack signalfd signalfd4 \
        sigreturn socket socketcall socketpair splice stat stat64 statfs statfs64 statx symlink \
        symlinkat sync sync_file_range syncfs sysinfo syslog tee tgkill time timer_create \
        timer_delete timerfd_create timerfd_gettime timerfd_settime timer_getoverrun \
        timer_gettime timer_settime times tkill truncate truncate64 ugetrlimit umask uname unlink \
        unlinkat utime utimensat utimes vfork vmsplice wait4 waitid waitpid write writev \
        arch_prctl modify_ldt";
    let names: Vec<&str> = ALLOWED.split_whitespace().collect();
    let personality = |v: u64| {
        json!({"names": ["personality"], "action": "SCMP_ACT_ALLOW",
               "args": [{"index": 0, "value": v, "op": "SCMP_CMP_EQ"}]})
    };
    // CLONE_NEWNS | NEWUTS | NEWIPC | NEWUSER | NEWPID | NEWNET | NEWCGROUP
    let namespaces: u64 = 0x7E02_0000;
    json!({
        "defaultAction": "SCMP_ACT_ERRNO",
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        "syscalls": [
            {"names": names, "action": "SCMP_ACT_ALLOW"},
            personality(0), personality(8), personality(0xffff_ffff),
            {"names": ["clone"], "action": "SCMP_ACT_ALLOW",
             "args": [{"index": 0, "value": namespaces, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"}]}
        ]
    })
}

/// An allowlist profile (default: EPERM) from runtime-tools: the container's shell works,
/// for root with no_new_privs and for a user without it (where the runtime must drop the
/// CAP_SYS_ADMIN it kept for loading the filter with the one capset the list allows).
fn runtime_tools_allowlist(rt: &Runtime) {
    if !cfg!(target_arch = "x86_64") {
        eprintln!("SKIP runtime_tools_allowlist: the profile is written for x86_64");
        return;
    }
    let script = "echo start; ls / >/dev/null && echo ls-ok; (echo subshell); \
                  grep -E '^(Seccomp|CapEff|NoNewPrivs):' /proc/self/status; id -u";
    for (nnp, uid) in [(true, 0), (false, 1000)] {
        let config = || {
            Config::new()
                .no_new_privileges(nnp)
                .user(uid, uid, &[])
                .edit(|j| j["linux"]["seccomp"] = runtime_tools_profile())
        };
        for out in [
            inside(rt, config().sh(script)),
            exec_in(rt, config(), script),
        ] {
            for want in [
                "start",
                "ls-ok",
                "subshell",
                "Seccomp:\t2",
                &uid.to_string(),
            ] {
                assert!(
                    out.contains(want),
                    "nnp={nnp} uid={uid}: {want:?} in\n{out}"
                );
            }
            assert_eq!(
                common::field(&out, "NoNewPrivs"),
                Some(if nnp { "1" } else { "0" }),
                "{out}"
            );
            // Exactly the config's effective set (AUDIT_WRITE, KILL, NET_BIND_SERVICE): the
            // CAP_SYS_ADMIN kept for loading the filter without no_new_privs is gone.
            assert_eq!(
                common::field(&out, "CapEff"),
                Some("0000000020000420"),
                "{out}"
            );
        }
    }
}

/// Inheritable CAP_SYS_ADMIN outside a bounding set of CAP_CHOWN: the kernel refuses the
/// capset, and `create` must say so (runc: "unable to apply caps: operation not
/// permitted") instead of leaving a container that dies at `start`; exec likewise.
fn caps_the_kernel_refuses_fail_create(rt: &Runtime) {
    let bad = json!({
        "bounding": ["CAP_CHOWN"], "effective": ["CAP_CHOWN"], "permitted": ["CAP_CHOWN"],
        "inheritable": ["CAP_SYS_ADMIN"]
    });
    let config = Config::new().edit(|j| j["process"]["capabilities"] = bad.clone());
    let b = bundle(&config);
    let id = unique_id("caps");
    let out = rt.create(&id, b.path());
    assert!(!out.success(), "{out}");
    assert!(
        out.stderr
            .contains("unable to apply caps: operation not permitted"),
        "{out}"
    );
    rt.assert_no_leaks(&[&id], &[b.path()]);

    // exec with the same sets (through --process): fails, and nothing is left running.
    let b = bundle(&Config::new().args(&["sleep", "1000"]));
    let id = unique_id("caps");
    let guard = common::ContainerGuard::new(rt, &id);
    rt.create(&id, b.path()).expect_ok("create");
    rt.start(&id).expect_ok("start");
    let mut process = config.json()["process"].clone();
    process["args"] = json!(["sh", "-c", "echo should-not-run"]);
    let process_file = b.path().join("process.json");
    std::fs::write(&process_file, process.to_string()).unwrap();
    let out = rt.cmd(&["exec", "--process", process_file.to_str().unwrap(), &id]);
    assert_eq!(out.code(), Some(255), "{out}");
    assert!(!out.stdout.contains("should-not-run"), "{out}");
    assert!(
        out.stderr
            .contains("unable to apply caps: operation not permitted"),
        "{out}"
    );
    let ps = rt.cmd(&["ps", &id, "-o", "pid,args"]);
    assert!(!ps.stdout.contains("should-not-run"), "{ps}");
    drop(guard);
    rt.assert_no_leaks(&[&id], &[b.path()]);
}

fn docker_default_profile(rt: &Runtime) {
    let caps: Vec<String> = hako_seccomp::DOCKER_DEFAULT_CAPABILITIES
        .iter()
        .map(|c| c.to_string())
        .collect();
    let profile = serde_json::to_value(hako_seccomp::docker_default_profile(&caps)).unwrap();
    let config = Config::new()
        .edit(|j| j["linux"]["seccomp"] = profile)
        .sh("unshare -U true 2>&1; echo unshare=$?; ls / >/dev/null && echo ls-ok; sh -c 'exit 3'; echo child=$?");
    let out = inside(rt, config);
    assert!(
        out.contains("unshare=1") || out.contains("Operation not permitted"),
        "{out}"
    );
    assert!(out.contains("ls-ok") && out.contains("child=3"), "{out}");
}

fn seccomp_no_new_privs_off(rt: &Runtime) {
    // Without no_new_privs the filter must be loaded while CAP_SYS_ADMIN is still held.
    let config = Config::new()
        .no_new_privileges(false)
        .user(1000, 1000, &[])
        .edit(|j| {
            j["linux"]["seccomp"] = json!({
                "defaultAction": "SCMP_ACT_ALLOW",
                "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 99}]
            });
        })
        .sh("id -u; grep NoNewPrivs /proc/self/status; mkdir /dev/shm/x 2>&1; true");
    let out = inside(rt, config);
    assert!(
        out.contains("1000") && out.contains("NoNewPrivs:\t0"),
        "{out}"
    );
    assert!(out.contains("Cannot assign requested address"), "{out}");
}

/// hako-only: runc (libseccomp) skips syscall names it does not know; we refuse a name no
/// architecture has, since it is almost always a typo that would silently weaken a profile.
fn seccomp_unknown_syscall_is_an_error(rt: &Runtime) {
    if rt.kind().name() != "hako" {
        eprintln!(
            "SKIP seccomp_unknown_syscall_is_an_error [{}]: runc ignores unknown names",
            rt.kind()
        );
        return;
    }
    let config = Config::new().edit(|j| {
        j["linux"]["seccomp"] = json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["opne"], "action": "SCMP_ACT_ERRNO"}]
        });
    });
    let b = bundle(&config);
    let id = unique_id("sec");
    let line = rt
        .create(&id, b.path())
        .expect_clean_failure("unknown syscall");
    assert!(line.contains("opne"), "{line}");
    rt.assert_no_leaks(&[&id], &[b.path()]);
}

fn unknown_capability_is_an_error(rt: &Runtime) {
    let config = Config::new().caps("bounding", &["CAP_CHOWN", "CAP_NOT_A_CAP"]);
    let b = bundle(&config);
    let id = unique_id("sec");
    let out = rt.create(&id, b.path());
    // runc warns about the name, then fails later with a second line; we fail up front.
    if rt.kind().name() == "hako" {
        let line = out.expect_clean_failure("unknown capability");
        assert!(line.contains("NOT_A_CAP"), "{line}");
    } else {
        assert!(!out.success() && out.stderr.contains("NOT_A_CAP"), "{out}");
    }
    rt.assert_no_leaks(&[&id], &[b.path()]);
}

/// Keys are not namespaced: each container gets its own session keyring (`_ses.<id>`),
/// unless `--no-new-keyring`.
fn own_session_keyring(rt: &Runtime) {
    let keyring_of = |id: &str| {
        std::fs::read_to_string("/proc/keys")
            .unwrap_or_default()
            .lines()
            .any(|l| {
                l.ends_with(&format!("keyring   _ses.{id}: empty"))
                    || l.contains(&format!(" _ses.{id}:"))
            })
    };
    let b = bundle(&Config::new().args(&["sleep", "1000"]));
    let id = unique_id("key");
    let guard = common::ContainerGuard::new(rt, &id);
    rt.create(&id, b.path()).expect_ok("create");
    assert!(keyring_of(&id), "no _ses.{id} keyring in /proc/keys");
    drop(guard);
    let id2 = unique_id("key");
    let guard = common::ContainerGuard::new(rt, &id2);
    rt.create_with(&id2, b.path(), &["--no-new-keyring"])
        .expect_ok("create --no-new-keyring");
    assert!(!keyring_of(&id2), "--no-new-keyring still made a keyring");
    drop(guard);
}

scenario!(
    close_range_denied,
    runtime_tools_allowlist,
    caps_the_kernel_refuses_fail_create,
    own_session_keyring,
    seccomp_errno_ret,
    docker_default_profile,
    seccomp_no_new_privs_off,
    seccomp_unknown_syscall_is_an_error,
    unknown_capability_is_an_error,
);
