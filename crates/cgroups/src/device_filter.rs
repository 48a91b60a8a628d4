//! Device rules on cgroup v2: an eBPF program of type
//! BPF_PROG_TYPE_CGROUP_DEVICE, generated from the spec's rules and
//! attached to the container's cgroup (replacing one berth attached
//! before). It emulates the v1 controller: rules are checked from the last
//! to the first, the first match decides, and with no match access is
//! allowed (a new v1 cgroup starts allowing everything; specs start with a
//! deny-all rule).

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;

use oci_spec::runtime::{LinuxDeviceCgroup, LinuxDeviceType};

use crate::CgroupError;

/// One eBPF instruction.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BpfInsn {
    code: u8,
    regs: u8,
    off: i16,
    imm: i32,
}

const LDX_MEM_W: u8 = 0x61;
const ALU32_AND_K: u8 = 0x54;
const ALU32_RSH_K: u8 = 0x74;
const ALU32_MOV_X: u8 = 0xbc;
const ALU32_MOV_K: u8 = 0xb4;
const JNE_K: u8 = 0x55;
const JNE_X: u8 = 0x5d;
const EXIT: u8 = 0x95;

fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> BpfInsn {
    BpfInsn {
        code,
        regs: (src << 4) | (dst & 0xf),
        off,
        imm,
    }
}

/// The access bits of an OCI access string (m=1, r=2, w=4, as the kernel's BPF_DEVCG_ACC_*).
fn access_bits(access: &str) -> i32 {
    access.chars().fold(0, |a, c| {
        a | match c {
            'm' => 1,
            'r' => 2,
            'w' => 4,
            _ => 0,
        }
    })
}

/// Compiles the rules into the program's instructions.
pub fn compile(rules: &[LinuxDeviceCgroup]) -> Vec<BpfInsn> {
    // r2 = type, r3 = access, r4 = major, r5 = minor
    let mut p = vec![
        insn(LDX_MEM_W, 2, 1, 0, 0),
        insn(ALU32_AND_K, 2, 0, 0, 0xffff),
        insn(LDX_MEM_W, 3, 1, 0, 0),
        insn(ALU32_RSH_K, 3, 0, 0, 16),
        insn(LDX_MEM_W, 4, 1, 4, 0),
        insn(LDX_MEM_W, 5, 1, 8, 0),
    ];
    for r in rules.iter().rev() {
        let mut checks: Vec<Vec<BpfInsn>> = vec![];
        match r.typ() {
            Some(LinuxDeviceType::B) => checks.push(vec![insn(JNE_K, 2, 0, 0, 1)]),
            Some(LinuxDeviceType::C) | Some(LinuxDeviceType::U) => {
                checks.push(vec![insn(JNE_K, 2, 0, 0, 2)])
            }
            _ => {}
        }
        let access = access_bits(r.access().as_deref().unwrap_or("rwm"));
        if access != 7 {
            // The request must be a subset of the rule's access.
            checks.push(vec![
                insn(ALU32_MOV_X, 1, 3, 0, 0),
                insn(ALU32_AND_K, 1, 0, 0, access),
                insn(JNE_X, 1, 3, 0, 0),
            ]);
        }
        if let Some(m) = r.major().filter(|m| *m >= 0) {
            checks.push(vec![insn(JNE_K, 4, 0, 0, m as i32)]);
        }
        if let Some(m) = r.minor().filter(|m| *m >= 0) {
            checks.push(vec![insn(JNE_K, 5, 0, 0, m as i32)]);
        }
        let matches_all = checks.is_empty();
        let mut block: Vec<BpfInsn> = checks.into_iter().flatten().collect();
        block.push(insn(ALU32_MOV_K, 0, 0, 0, r.allow() as i32));
        block.push(insn(EXIT, 0, 0, 0, 0));
        // Every failing check jumps past the end of this rule's block.
        let len = block.len();
        for (i, ins) in block.iter_mut().enumerate() {
            if ins.code == JNE_K || ins.code == JNE_X {
                ins.off = (len - i - 1) as i16;
            }
        }
        p.extend(block);
        if matches_all {
            // Nothing below is reachable, and the verifier refuses dead code.
            return p;
        }
    }
    p.push(insn(ALU32_MOV_K, 0, 0, 0, 1));
    p.push(insn(EXIT, 0, 0, 0, 0));
    p
}

const BPF_PROG_LOAD: i32 = 5;
const BPF_PROG_ATTACH: i32 = 8;
const BPF_PROG_DETACH: i32 = 9;
const BPF_PROG_GET_FD_BY_ID: i32 = 13;
const BPF_PROG_QUERY: i32 = 16;
const BPF_PROG_TYPE_CGROUP_DEVICE: u32 = 15;
const BPF_CGROUP_DEVICE: u32 = 6;
const BPF_F_ALLOW_MULTI: u32 = 2;

fn bpf(cmd: i32, attr: &mut [u64; 16]) -> Result<i64, std::io::Error> {
    // SAFETY: `attr` is a zero-padded 128-byte buffer laid out as the union
    // member `cmd` expects; the kernel reads (and for queries writes) it.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            attr.as_mut_ptr(),
            std::mem::size_of_val(attr),
        )
    };
    if rc < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(rc)
}

/// Loads the program for `rules` and attaches it to the cgroup `dir`,
/// detaching any device program attached there before.
pub fn attach(dir: &Path, rules: &[LinuxDeviceCgroup]) -> Result<(), CgroupError> {
    let err = |op: &'static str| {
        move |e: std::io::Error| CgroupError::Io {
            op,
            path: dir.to_path_buf(),
            err: e,
        }
    };
    let insns = compile(rules);
    let license = c"Apache";
    let mut attr = [0u64; 16];
    attr[0] = BPF_PROG_TYPE_CGROUP_DEVICE as u64 | ((insns.len() as u64) << 32);
    attr[1] = insns.as_ptr() as u64;
    attr[2] = license.as_ptr() as u64;
    let prog = bpf(BPF_PROG_LOAD, &mut attr).map_err(err("load device eBPF program for"))?;
    // SAFETY: BPF_PROG_LOAD returned a new descriptor.
    let prog = unsafe { OwnedFd::from_raw_fd(prog as i32) };
    let cg = std::fs::File::open(dir).map_err(err("open"))?;
    let old = attached(&cg).map_err(err("query device programs of"))?;
    let mut attr = [0u64; 16];
    attr[0] = cg.as_raw_fd() as u64 | ((prog.as_raw_fd() as u64) << 32);
    attr[1] = BPF_CGROUP_DEVICE as u64 | ((BPF_F_ALLOW_MULTI as u64) << 32);
    bpf(BPF_PROG_ATTACH, &mut attr).map_err(err("attach device eBPF program to"))?;
    for id in old {
        let mut a = [0u64; 16];
        a[0] = id as u64;
        if let Ok(fd) = bpf(BPF_PROG_GET_FD_BY_ID, &mut a) {
            // SAFETY: a new descriptor from the kernel.
            let fd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
            let mut d = [0u64; 16];
            d[0] = cg.as_raw_fd() as u64 | ((fd.as_raw_fd() as u64) << 32);
            d[1] = BPF_CGROUP_DEVICE as u64;
            bpf(BPF_PROG_DETACH, &mut d).map_err(err("detach the old device program from"))?;
        }
    }
    Ok(())
}

/// Ids of the device programs attached directly to a cgroup.
fn attached(cg: &std::fs::File) -> Result<Vec<u32>, std::io::Error> {
    let mut ids = [0u32; 64];
    let mut attr = [0u64; 16];
    attr[0] = cg.as_raw_fd() as u64 | ((BPF_CGROUP_DEVICE as u64) << 32);
    // query_flags (u32) | attach_flags (u32) at byte 8; prog_ids at 16; prog_cnt at 24.
    attr[2] = ids.as_mut_ptr() as u64;
    attr[3] = ids.len() as u64;
    bpf(BPF_PROG_QUERY, &mut attr)?;
    let n = (attr[3] & 0xffff_ffff) as usize;
    Ok(ids[..n.min(ids.len())].to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs the program on (type, access, major, minor) as the kernel would.
    fn eval(p: &[BpfInsn], typ: u32, access: u32, major: u32, minor: u32) -> u32 {
        let ctx = [(access << 16) | typ, major, minor];
        let mut r = [0u64; 11];
        let mut pc = 0usize;
        loop {
            let i = p[pc];
            let (dst, src) = ((i.regs & 0xf) as usize, (i.regs >> 4) as usize);
            pc += 1;
            match i.code {
                LDX_MEM_W => r[dst] = ctx[i.off as usize / 4] as u64,
                ALU32_AND_K => r[dst] = (r[dst] as u32 & i.imm as u32) as u64,
                ALU32_RSH_K => r[dst] = ((r[dst] as u32) >> i.imm) as u64,
                ALU32_MOV_X => r[dst] = r[src] as u32 as u64,
                ALU32_MOV_K => r[dst] = i.imm as u32 as u64,
                JNE_K => {
                    if r[dst] != i.imm as i64 as u64 {
                        pc += i.off as usize
                    }
                }
                JNE_X => {
                    if r[dst] != r[src] {
                        pc += i.off as usize
                    }
                }
                EXIT => return r[0] as u32,
                c => panic!("opcode {c:#x}"),
            }
        }
    }

    fn rules(json: &str) -> Vec<LinuxDeviceCgroup> {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn deny_all_then_allow_list() {
        let p = compile(&rules(
            r#"[{"allow":false,"access":"rwm"},{"allow":true,"type":"c","major":1,"minor":3,"access":"rwm"},{"allow":true,"type":"c","access":"m"},{"allow":true,"type":"c","major":136,"access":"rwm"}]"#,
        ));
        assert_eq!(eval(&p, 2, 2 | 4, 1, 3), 1, "/dev/null rw");
        assert_eq!(eval(&p, 2, 2, 1, 1), 0, "/dev/mem read");
        assert_eq!(eval(&p, 2, 1, 1, 1), 1, "mknod of any char device");
        assert_eq!(eval(&p, 1, 1, 8, 0), 0, "mknod of a block device");
        assert_eq!(eval(&p, 2, 2, 136, 7), 1, "a pty");
        assert_eq!(eval(&p, 1, 2, 8, 0), 0, "read /dev/sda");
    }

    #[test]
    fn later_rules_override_earlier_ones() {
        let p = compile(&rules(
            r#"[{"allow":true,"type":"c","major":1,"minor":5,"access":"rwm"},{"allow":false,"type":"c","major":1,"minor":5,"access":"rwm"}]"#,
        ));
        assert_eq!(eval(&p, 2, 2, 1, 5), 0);
        assert_eq!(
            eval(&p, 2, 2, 1, 9),
            1,
            "no rule matches: allowed, as a fresh v1 cgroup"
        );
    }
}
