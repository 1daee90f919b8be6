//! cgroup v2 device control: the device rules compiled into a `BPF_PROG_TYPE_CGROUP_DEVICE`
//! program and attached to the container's cgroup (v2 has no devices.allow file).
//!
//! Semantics match the v1 list the rules describe (deny everything, then replay the rules
//! in order): the *last* rule that matches a request decides, so the program tests the
//! rules from last to first and returns the first match; no match denies.
//!
//! The program reads `struct bpf_cgroup_dev_ctx { u32 access_type; u32 major; u32 minor; }`
//! where `access_type = access << 16 | type` (type 1 block, 2 char; access bits 1 mknod,
//! 2 read, 4 write).

use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;

use hako_sys::bpf::Insn;
use oci_spec::runtime::{LinuxDeviceCgroup, LinuxDeviceType};

use crate::error::Error;

const LDX_W: u8 = 0x61; // BPF_LDX | BPF_MEM | BPF_W
const AND_K: u8 = 0x57; // BPF_ALU64 | BPF_AND | BPF_K
const RSH_K: u8 = 0x77; // BPF_ALU64 | BPF_RSH | BPF_K
const MOV_K: u8 = 0xb7; // BPF_ALU64 | BPF_MOV | BPF_K
const MOV_X: u8 = 0xbf; // BPF_ALU64 | BPF_MOV | BPF_X
const JNE_K: u8 = 0x55; // BPF_JMP | BPF_JNE | BPF_K
const EXIT: u8 = 0x95; // BPF_JMP | BPF_EXIT

/// The access bits a rule grants ("rwm" letters → BPF_DEVCG_ACC_* bits).
fn access_bits(access: Option<&str>) -> i32 {
    let a = access.filter(|a| !a.is_empty()).unwrap_or("rwm");
    a.chars().fold(0, |bits, c| match c {
        'm' => bits | 1,
        'r' => bits | 2,
        'w' => bits | 4,
        _ => bits,
    })
}

/// Compile `rules` (OCI order) into a device program.
pub fn program(rules: &[LinuxDeviceCgroup]) -> Vec<Insn> {
    let mut p = vec![
        Insn::new(LDX_W, 2, 1, 0, 0),
        Insn::new(AND_K, 2, 0, 0, 0xffff),
        Insn::new(LDX_W, 3, 1, 0, 0),
        Insn::new(RSH_K, 3, 0, 0, 16),
        Insn::new(LDX_W, 4, 1, 4, 0),
        Insn::new(LDX_W, 5, 1, 8, 0),
    ];
    for rule in rules.iter().rev() {
        let mut block: Vec<Insn> = Vec::new();
        // Jumps to the next block are patched once the block's length is known.
        let mut jumps = Vec::new();
        match rule.typ().unwrap_or(LinuxDeviceType::A) {
            LinuxDeviceType::A => {}
            t => {
                let code = if t == LinuxDeviceType::B { 1 } else { 2 };
                jumps.push(block.len());
                block.push(Insn::new(JNE_K, 2, 0, 0, code));
            }
        }
        let bits = access_bits(rule.access().as_deref());
        if bits != 7 {
            block.push(Insn::new(MOV_X, 1, 3, 0, 0));
            block.push(Insn::new(AND_K, 1, 0, 0, !bits & 7));
            jumps.push(block.len());
            block.push(Insn::new(JNE_K, 1, 0, 0, 0));
        }
        for (reg, value) in [(4u8, rule.major()), (5u8, rule.minor())] {
            if let Some(v) = value.filter(|v| *v >= 0) {
                jumps.push(block.len());
                block.push(Insn::new(
                    JNE_K,
                    reg,
                    0,
                    0,
                    i32::try_from(v).unwrap_or(i32::MAX),
                ));
            }
        }
        block.push(Insn::new(MOV_K, 0, 0, 0, i32::from(rule.allow())));
        block.push(Insn::new(EXIT, 0, 0, 0, 0));
        let len = block.len();
        let unconditional = jumps.is_empty();
        for j in jumps {
            block[j].off = i16::try_from(len - (j + 1)).expect("blocks are short");
        }
        p.extend(block);
        if unconditional {
            // Matches everything: earlier rules can never decide (and the verifier
            // rejects unreachable instructions).
            return p;
        }
    }
    p.push(Insn::new(MOV_K, 0, 0, 0, 0));
    p.push(Insn::new(EXIT, 0, 0, 0, 0));
    p
}

/// Load the program for `rules` and attach it to the cgroup v2 directory `dir`.
pub(crate) fn attach(dir: &Path, rules: &[LinuxDeviceCgroup]) -> Result<(), Error> {
    let insns = program(rules);
    // Fake cgroupfs trees in tests are plain directories: the program is still built and
    // loaded (so the verifier checks it), but there is no cgroup to attach it to.
    const CGROUP2_SUPER_MAGIC: i64 = 0x6367_7270;
    let on_cgroup2 =
        nix::sys::statfs::statfs(dir).is_ok_and(|st| st.filesystem_type().0 == CGROUP2_SUPER_MAGIC);
    let prog =
        hako_sys::bpf::load_cgroup_device_program(&insns).map_err(|source| Error::Write {
            value: format!("a {}-instruction device program", insns.len()),
            file: "(bpf prog load)".into(),
            dir: dir.to_path_buf(),
            source,
        })?;
    if !on_cgroup2 {
        return Ok(());
    }
    let cg: OwnedFd = std::fs::File::open(dir)
        .map_err(|source| Error::Read {
            file: ".".into(),
            dir: dir.to_path_buf(),
            source,
        })?
        .into();
    hako_sys::bpf::attach_cgroup_device(cg.as_fd(), prog.as_fd()).map_err(|source| Error::Write {
        value: "the device program".into(),
        file: "(bpf attach BPF_CGROUP_DEVICE)".into(),
        dir: dir.to_path_buf(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(
        allow: bool,
        typ: LinuxDeviceType,
        major: Option<i64>,
        minor: Option<i64>,
        access: &str,
    ) -> LinuxDeviceCgroup {
        let mut r = LinuxDeviceCgroup::default();
        r.set_allow(allow);
        r.set_typ(Some(typ));
        r.set_major(major);
        r.set_minor(minor);
        r.set_access(Some(access.into()));
        r
    }

    /// eBPF sign-extends 32-bit immediates for 64-bit operations.
    fn sext(imm: i32) -> u64 {
        i64::from(imm).cast_unsigned()
    }

    /// A tiny interpreter for exactly the instructions `program` emits.
    fn eval(p: &[Insn], typ: u32, access: u32, major: u32, minor: u32) -> u64 {
        let ctx = [access << 16 | typ, major, minor];
        let mut r = [0u64; 11];
        let mut pc = 0usize;
        loop {
            let i = p[pc];
            let (dst, src) = (usize::from(i.regs & 0x0f), usize::from(i.regs >> 4));
            pc += 1;
            match i.code {
                LDX_W => r[dst] = u64::from(ctx[usize::try_from(i.off).unwrap() / 4]),
                AND_K => r[dst] &= sext(i.imm),
                RSH_K => r[dst] >>= i.imm,
                MOV_K => r[dst] = sext(i.imm),
                MOV_X => r[dst] = r[src],
                JNE_K => {
                    if r[dst] != sext(i.imm) {
                        pc += usize::try_from(i.off).unwrap();
                    }
                }
                EXIT => return r[0],
                other => panic!("unexpected opcode {other:#x}"),
            }
        }
    }

    #[test]
    fn last_matching_rule_wins_and_default_denies() {
        let rules = vec![
            rule(false, LinuxDeviceType::A, None, None, "rwm"),
            rule(true, LinuxDeviceType::C, Some(1), Some(3), "rwm"),
            rule(true, LinuxDeviceType::C, Some(1), Some(5), "r"),
            rule(true, LinuxDeviceType::C, Some(136), None, "rwm"),
            rule(false, LinuxDeviceType::C, Some(136), Some(7), "w"),
        ];
        let p = program(&rules);
        let (chr, blk) = (2, 1);
        assert_eq!(eval(&p, chr, 2, 1, 3), 1, "read /dev/null");
        assert_eq!(eval(&p, chr, 4, 1, 3), 1, "write /dev/null");
        assert_eq!(eval(&p, chr, 2, 1, 5), 1, "read /dev/zero");
        assert_eq!(eval(&p, chr, 4, 1, 5), 0, "write /dev/zero not granted");
        assert_eq!(eval(&p, chr, 6, 1, 5), 0, "read+write needs both bits");
        assert_eq!(eval(&p, chr, 2, 136, 4), 1, "any pty");
        assert_eq!(eval(&p, chr, 4, 136, 7), 0, "later deny wins");
        assert_eq!(eval(&p, chr, 2, 136, 7), 1, "deny covers only write");
        assert_eq!(eval(&p, blk, 2, 1, 3), 0, "block 1:3 is not char 1:3");
        assert_eq!(eval(&p, chr, 2, 8, 0), 0, "everything else denied");
        assert_eq!(eval(&program(&[]), chr, 2, 1, 3), 0, "no rules: deny");
    }
}
