//! `seccomp_profile`: an OCI seccomp profile (`linux.seccomp`, or a `--security-opt
//! seccomp=FILE` profile) parsed by `hako_seccomp::parse_profile` and compiled to BPF.
//!
//! Invariants:
//! - `parse_profile` accepts every profile oci-spec's serde reads, as the same profile (its
//!   own checks only give better messages; it may also take JSON with repeated keys, the
//!   last one winning, where serde refuses);
//! - compiling is deterministic;
//! - the program is one the kernel loads: 1..=4096 instructions, only the opcodes hako
//!   emits, loads of aligned `seccomp_data` words, every jump inside the program, a `RET`
//!   last (`bpf_check_classic` + `seccomp_check_filter`);
//! - run on syscalls of this arch, of foreign arches and x32, it decides what the profile
//!   says ([`super::seccomp_oracle`]).

use hako_seccomp::CompiledFilter;
use oci_spec::runtime::LinuxSeccomp;

use super::seccomp_oracle;

pub fn seccomp_profile(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let plain = serde_json::from_str::<LinuxSeccomp>(text);
    let profile = match hako_seccomp::parse_profile(text) {
        Ok(p) => p,
        Err(e) => {
            assert!(!e.to_string().is_empty());
            assert!(
                plain.is_err(),
                "parse_profile refused what serde reads: {e}"
            );
            return;
        }
    };
    if let Ok(p) = plain {
        assert!(
            p == profile,
            "parse_profile and serde read different profiles"
        );
    }
    let filter = match hako_seccomp::compile(&profile) {
        Ok(f) => f,
        Err(e) => {
            assert!(!e.to_string().is_empty());
            return;
        }
    };
    let again = hako_seccomp::compile(&profile).expect("the same profile compiles twice");
    assert!(
        again == filter,
        "compiling the same profile twice gave two programs"
    );
    check_program(&filter);
    seccomp_oracle::check(&profile, &filter);
}

/// The classic-BPF opcodes hako-seccomp emits (linux/bpf_common.h).
const LD_W_ABS: u16 = 0x20;
const ALU_AND_K: u16 = 0x54;
const JMP_JA: u16 = 0x05;
const JMP_JEQ_K: u16 = 0x15;
const JMP_JGT_K: u16 = 0x25;
const JMP_JGE_K: u16 = 0x35;
const RET_K: u16 = 0x06;

/// What the kernel checks before it loads a filter.
fn check_program(f: &CompiledFilter) {
    let prog = f.instructions();
    assert!(
        !prog.is_empty() && prog.len() <= 4096,
        "program of {} instructions",
        prog.len()
    );
    let len = prog.len();
    for (pc, ins) in prog.iter().enumerate() {
        let next = pc + 1;
        match ins.code {
            LD_W_ABS => assert!(
                ins.k % 4 == 0 && ins.k < 64,
                "pc {pc}: load of seccomp_data offset {}",
                ins.k
            ),
            ALU_AND_K | RET_K => {}
            JMP_JA => {
                let to = usize::try_from(ins.k).map_or(usize::MAX, |k| next.saturating_add(k));
                assert!(to < len, "pc {pc}: ja to {to} of {len}");
            }
            JMP_JEQ_K | JMP_JGT_K | JMP_JGE_K => {
                let (t, e) = (next + usize::from(ins.jt), next + usize::from(ins.jf));
                assert!(t < len && e < len, "pc {pc}: branch to {t}/{e} of {len}");
            }
            other => panic!("pc {pc}: opcode {other:#x} hako-seccomp does not emit"),
        }
    }
    assert_eq!(prog[len - 1].code, RET_K, "the program does not end in RET");
}
