//! Security settings seen from inside the container: seccomp (a blocked syscall returns
//! the configured errno; Docker's default profile blocks what Docker blocks), and bad
//! security input failing cleanly. Scenarios run against hako-runtime and runc.

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
    own_session_keyring,
    seccomp_errno_ret,
    docker_default_profile,
    seccomp_no_new_privs_off,
    seccomp_unknown_syscall_is_an_error,
    unknown_capability_is_an_error,
);
