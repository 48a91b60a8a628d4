//! seccomp: compiles the spec's `linux.seccomp` into a classic BPF program
//! and loads it. berth compiles profiles itself (no libseccomp): syscall
//! names resolve through tables generated from the kernel headers
//! (`syscalls.rs`), unknown names are skipped as runc does, and every
//! action, flag and argument operator of the runtime spec is supported.
//!
//! Program layout: dispatch on `seccomp_data.arch` to one block per listed
//! architecture (anything else is killed); in a block, for each syscall
//! number its rules in spec order (a rule is a conjunction of argument
//! conditions on 64-bit values, compared as two 32-bit halves), then the
//! default action.

pub mod default_profile;
pub mod syscalls;

use std::os::fd::{FromRawFd, OwnedFd};

use oci_spec::runtime::{
    Arch, LinuxSeccomp, LinuxSeccompAction, LinuxSeccompArg, LinuxSeccompFilterFlag,
    LinuxSeccompOperator,
};

use crate::error::{Result, RuntimeError};

/// One classic BPF instruction (`struct sock_filter`).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Insn {
    code: u16,
    jt: u8,
    jf: u8,
    k: u32,
}

const BPF_LD_W_ABS: u16 = 0x20;
const BPF_JMP_JA: u16 = 0x05;
const BPF_JEQ_K: u16 = 0x15;
const BPF_JGT_K: u16 = 0x25;
const BPF_JGE_K: u16 = 0x35;
const BPF_JSET_K: u16 = 0x45;
const BPF_AND_K: u16 = 0x54;
const BPF_RET_K: u16 = 0x06;

const RET_KILL_PROCESS: u32 = 0x8000_0000;
const RET_KILL_THREAD: u32 = 0x0000_0000;
const RET_TRAP: u32 = 0x0003_0000;
const RET_ERRNO: u32 = 0x0005_0000;
const RET_USER_NOTIF: u32 = 0x7fc0_0000;
const RET_TRACE: u32 = 0x7ff0_0000;
const RET_LOG: u32 = 0x7ffc_0000;
const RET_ALLOW: u32 = 0x7fff_0000;

const OFF_NR: u32 = 0;
const OFF_ARCH: u32 = 4;
const OFF_ARGS: u32 = 16;
const X32_SYSCALL_BIT: u32 = 0x4000_0000;

fn stmt(code: u16, k: u32) -> Insn {
    Insn {
        code,
        jt: 0,
        jf: 0,
        k,
    }
}

fn jump(code: u16, k: u32, jt: u8, jf: u8) -> Insn {
    Insn { code, jt, jf, k }
}

/// A compiled filter and the flags to load it with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Program {
    /// The instructions.
    pub insns: Vec<Insn>,
    /// seccomp(2) flags.
    pub flags: u32,
    /// Whether some action is SCMP_ACT_NOTIFY (a listener fd will be created).
    pub notify: bool,
}

fn action_value(action: LinuxSeccompAction, errno: Option<u32>, field: &str) -> Result<u32> {
    Ok(match action {
        LinuxSeccompAction::ScmpActKill | LinuxSeccompAction::ScmpActKillThread => RET_KILL_THREAD,
        LinuxSeccompAction::ScmpActKillProcess => RET_KILL_PROCESS,
        LinuxSeccompAction::ScmpActTrap => RET_TRAP,
        LinuxSeccompAction::ScmpActErrno => {
            let e = errno.unwrap_or(libc::EPERM as u32);
            if e > 0xffff {
                return Err(RuntimeError::spec(
                    field,
                    format!("errnoRet {e} does not fit in 16 bits"),
                ));
            }
            RET_ERRNO | e
        }
        LinuxSeccompAction::ScmpActTrace => RET_TRACE | (errno.unwrap_or(0) & 0xffff),
        LinuxSeccompAction::ScmpActLog => RET_LOG,
        LinuxSeccompAction::ScmpActAllow => RET_ALLOW,
        LinuxSeccompAction::ScmpActNotify => RET_USER_NOTIF,
    })
}

/// The syscall table of an architecture berth can compile for.
fn table(arch: Arch) -> Option<&'static [(&'static str, u32)]> {
    match arch {
        Arch::ScmpArchX86_64 | Arch::ScmpArchX32 => Some(syscalls::X86_64),
        Arch::ScmpArchX86 => Some(syscalls::X86),
        _ => None,
    }
}

/// The number of `name` on an architecture's table.
pub fn syscall_number(table: &[(&str, u32)], name: &str) -> Option<u32> {
    table
        .binary_search_by(|(n, _)| n.cmp(&name))
        .ok()
        .map(|i| table[i].1)
}

/// Where a jump inside a rule goes.
#[derive(Clone, Copy)]
enum Target {
    Next,
    /// The end of this condition (it holds).
    Pass,
    /// The end of this rule (it does not apply).
    Fail,
}

struct CondInsn {
    code: u16,
    k: u32,
    jt: Target,
    jf: Target,
}

fn cond_code(arg: &LinuxSeccompArg, field: &str) -> Result<Vec<CondInsn>> {
    if arg.index() > 5 {
        return Err(RuntimeError::spec(
            field,
            format!("argument index {} is out of range 0..5", arg.index()),
        ));
    }
    let lo_off = OFF_ARGS + 8 * arg.index() as u32;
    let hi_off = lo_off + 4;
    let v = arg.value();
    let (vh, vl) = ((v >> 32) as u32, v as u32);
    let ld = |off| CondInsn {
        code: BPF_LD_W_ABS,
        k: off,
        jt: Target::Next,
        jf: Target::Next,
    };
    let j = |code, k, jt, jf| CondInsn { code, k, jt, jf };
    use Target::*;
    Ok(match arg.op() {
        LinuxSeccompOperator::ScmpCmpEq => vec![
            ld(hi_off),
            j(BPF_JEQ_K, vh, Next, Fail),
            ld(lo_off),
            j(BPF_JEQ_K, vl, Next, Fail),
        ],
        LinuxSeccompOperator::ScmpCmpNe => vec![
            ld(hi_off),
            j(BPF_JEQ_K, vh, Next, Pass),
            ld(lo_off),
            j(BPF_JEQ_K, vl, Fail, Next),
        ],
        LinuxSeccompOperator::ScmpCmpGt => vec![
            ld(hi_off),
            j(BPF_JGT_K, vh, Pass, Next),
            j(BPF_JEQ_K, vh, Next, Fail),
            ld(lo_off),
            j(BPF_JGT_K, vl, Next, Fail),
        ],
        LinuxSeccompOperator::ScmpCmpGe => vec![
            ld(hi_off),
            j(BPF_JGT_K, vh, Pass, Next),
            j(BPF_JEQ_K, vh, Next, Fail),
            ld(lo_off),
            j(BPF_JGE_K, vl, Next, Fail),
        ],
        LinuxSeccompOperator::ScmpCmpLt => vec![
            ld(hi_off),
            j(BPF_JGT_K, vh, Fail, Next),
            j(BPF_JEQ_K, vh, Next, Pass),
            ld(lo_off),
            j(BPF_JGE_K, vl, Fail, Next),
        ],
        LinuxSeccompOperator::ScmpCmpLe => vec![
            ld(hi_off),
            j(BPF_JGT_K, vh, Fail, Next),
            j(BPF_JEQ_K, vh, Next, Pass),
            ld(lo_off),
            j(BPF_JGT_K, vl, Fail, Next),
        ],
        LinuxSeccompOperator::ScmpCmpMaskedEq => {
            // runtime-spec: `value` is the mask, `valueTwo` the datum.
            let datum = arg.value_two().unwrap_or(0);
            let (dh, dl) = ((datum >> 32) as u32, datum as u32);
            vec![
                ld(hi_off),
                j(BPF_AND_K, vh, Next, Next),
                j(BPF_JEQ_K, dh, Next, Fail),
                ld(lo_off),
                j(BPF_AND_K, vl, Next, Next),
                j(BPF_JEQ_K, dl, Next, Fail),
            ]
        }
    })
}

/// A rule's code: its conditions, then `ret`. Failing conditions jump past the end.
fn rule_code(conds: &[Vec<CondInsn>], ret: u32) -> Result<Vec<Insn>> {
    let total: usize = conds.iter().map(Vec::len).sum::<usize>() + 1;
    let mut out = Vec::with_capacity(total);
    for c in conds {
        let cond_end = out.len() + c.len();
        for ci in c {
            let here = out.len();
            let resolve = |t: Target| -> Result<u8> {
                let dist = match t {
                    Target::Next => 0,
                    Target::Pass => cond_end - here - 1,
                    Target::Fail => total - here - 1,
                };
                u8::try_from(dist)
                    .map_err(|_| RuntimeError::Other("seccomp rule too long to compile".into()))
            };
            if ci.code == BPF_LD_W_ABS || ci.code == BPF_AND_K {
                out.push(stmt(ci.code, ci.k));
            } else {
                out.push(jump(ci.code, ci.k, resolve(ci.jt)?, resolve(ci.jf)?));
            }
        }
    }
    out.push(stmt(BPF_RET_K, ret));
    Ok(out)
}

/// Compiles a profile.
pub fn compile(s: &LinuxSeccomp) -> Result<Program> {
    let default = action_value(
        s.default_action(),
        s.default_errno_ret(),
        "linux.seccomp.defaultAction",
    )?;
    let mut notify = s.default_action() == LinuxSeccompAction::ScmpActNotify;
    let mut arches: Vec<Arch> = s.architectures().clone().unwrap_or_default();
    if arches.is_empty() || arches.contains(&Arch::ScmpArchNative) {
        arches.retain(|a| *a != Arch::ScmpArchNative);
        arches.insert(0, Arch::ScmpArchX86_64);
    }
    let x32 = arches.contains(&Arch::ScmpArchX32);
    for (i, a) in arches.iter().enumerate() {
        if table(*a).is_none() {
            return Err(RuntimeError::unsupported(
                format!("linux.seccomp.architectures[{i}]"),
                format!("{a:?} cannot run on this x86_64 host"),
            ));
        }
    }
    arches.retain(|a| *a != Arch::ScmpArchX32);
    arches.dedup();

    // Rules per architecture, grouped by syscall number in spec order. x32
    // shares x86_64's audit arch and marks its calls with a bit in nr: the
    // x86_64 block sends those to an x32 block right after it, compiled for
    // x32's numbers (when x32 is listed) or kills them (when it is not), so
    // a denied call cannot be made through the other ABI.
    let mut blocks: Vec<(Option<u32>, Vec<Insn>)> = vec![];
    for arch in &arches {
        let tbl = table(*arch).unwrap_or(syscalls::X86_64);
        let (body, n) = arch_rules(s, default, |name| syscall_number(tbl, name))?;
        notify |= n;
        let mut b = vec![stmt(BPF_LD_W_ABS, OFF_NR)];
        if *arch == Arch::ScmpArchX86_64 {
            b.push(jump(BPF_JSET_K, X32_SYSCALL_BIT, 0, 1));
            if x32 {
                b.push(stmt(BPF_JMP_JA, body.len() as u32));
            } else {
                b.push(stmt(BPF_RET_K, RET_KILL_PROCESS));
            }
        }
        b.extend(body);
        blocks.push((Some(*arch as u32), b));
        if *arch == Arch::ScmpArchX86_64 && x32 {
            let (body, _) = arch_rules(s, default, |name| {
                syscall_number(syscalls::X32, name).map(|n| n | X32_SYSCALL_BIT)
            })?;
            let mut b = vec![stmt(BPF_LD_W_ABS, OFF_NR)];
            b.extend(body);
            blocks.push((None, b));
        }
    }

    // Dispatch: JEQ arch → JA to its block; unknown architectures are killed.
    let mut insns = vec![stmt(BPF_LD_W_ABS, OFF_ARCH)];
    let entries = blocks.iter().filter(|(a, _)| a.is_some()).count();
    let dispatch_len = 2 * entries + 1;
    let mut offset = 0usize;
    let mut i = 0;
    for (arch, b) in &blocks {
        if let Some(arch) = arch {
            insns.push(jump(BPF_JEQ_K, *arch, 0, 1));
            // Distance from after this JA to the block start.
            let after_ja = 1 + 2 * i + 2;
            insns.push(stmt(
                BPF_JMP_JA,
                (1 + dispatch_len - after_ja + offset) as u32,
            ));
            i += 1;
        }
        offset += b.len();
    }
    insns.push(stmt(BPF_RET_K, RET_KILL_PROCESS));
    for (_, b) in blocks {
        insns.extend(b);
    }
    if insns.len() > 4096 {
        return Err(RuntimeError::unsupported(
            "linux.seccomp",
            format!(
                "the compiled filter has {} instructions; the kernel allows 4096",
                insns.len()
            ),
        ));
    }
    let mut flags = 0u32;
    for f in s.flags().iter().flatten() {
        flags |= match f {
            LinuxSeccompFilterFlag::SeccompFilterFlagTsync => 1,
            LinuxSeccompFilterFlag::SeccompFilterFlagLog => 2,
            LinuxSeccompFilterFlag::SeccompFilterFlagSpecAllow => 4,
            LinuxSeccompFilterFlag::SeccompFilterFlagWaitKillableRecv => 32,
        };
    }
    if notify {
        flags |= 8; // SECCOMP_FILTER_FLAG_NEW_LISTENER
    }
    Ok(Program {
        insns,
        flags,
        notify,
    })
}

/// The rules of `s` for one ABI, grouped by syscall number (from
/// `number_of`; names it does not know are skipped) in spec order, ending
/// with the default action. Also says whether any rule notifies.
fn arch_rules(
    s: &LinuxSeccomp,
    default: u32,
    number_of: impl Fn(&str) -> Option<u32>,
) -> Result<(Vec<Insn>, bool)> {
    let mut notify = false;
    let mut groups: Vec<(u32, Vec<Vec<Insn>>)> = vec![];
    for (si, sc) in s.syscalls().iter().flatten().enumerate() {
        let field = format!("linux.seccomp.syscalls[{si}]");
        let ret = action_value(sc.action(), sc.errno_ret(), &field)?;
        notify |= sc.action() == LinuxSeccompAction::ScmpActNotify;
        let conds: Vec<Vec<CondInsn>> = sc
            .args()
            .iter()
            .flatten()
            .enumerate()
            .map(|(ai, a)| cond_code(a, &format!("{field}.args[{ai}]")))
            .collect::<Result<_>>()?;
        let code = rule_code(&conds, ret)?;
        for name in sc.names() {
            let Some(nr) = number_of(name) else {
                continue;
            };
            match groups.iter_mut().find(|(n, _)| *n == nr) {
                Some((_, rules)) => rules.push(code.clone()),
                None => groups.push((nr, vec![code.clone()])),
            }
        }
    }
    let mut b = vec![];
    for (nr, rules) in groups {
        let unconditional = rules.len() == 1 && rules[0].len() == 1;
        if unconditional {
            b.push(jump(BPF_JEQ_K, nr, 0, 1));
            b.push(rules[0][0]);
            continue;
        }
        let body: Vec<Insn> = rules
            .into_iter()
            .flatten()
            .chain([stmt(BPF_RET_K, default)])
            .collect();
        b.push(jump(BPF_JEQ_K, nr, 1, 0));
        b.push(stmt(BPF_JMP_JA, body.len() as u32));
        b.extend(body);
    }
    b.push(stmt(BPF_RET_K, default));
    Ok((b, notify))
}

/// Compiles `s`, or reads the program compiled for the same profile before
/// from `cache_dir` (keyed by a hash of the profile's JSON; the entry also
/// holds that JSON, compared before use, so a hash collision cannot load the
/// wrong filter). A cache that cannot be read or written is ignored.
pub fn compile_cached(s: &LinuxSeccomp, cache_dir: &std::path::Path) -> Result<Program> {
    use std::hash::{Hash, Hasher};
    let Ok(json) = serde_json::to_vec(s) else {
        return compile(s);
    };
    let mut h = std::collections::hash_map::DefaultHasher::new();
    json.hash(&mut h);
    env!("CARGO_PKG_VERSION").hash(&mut h);
    COMPILER_REVISION.hash(&mut h);
    let path = cache_dir.join(format!("{:016x}.bpf", h.finish()));
    if let Ok(data) = std::fs::read(&path) {
        if let Some(p) = decode(&data, &json) {
            return Ok(p);
        }
    }
    let p = compile(s)?;
    let _ = std::fs::create_dir_all(cache_dir).and_then(|_| {
        let tmp = path.with_extension(format!("tmp{}", std::process::id()));
        std::fs::write(&tmp, encode(&p, &json))?;
        std::fs::rename(&tmp, &path)
    });
    Ok(p)
}

const CACHE_MAGIC: &[u8; 8] = b"BERTHBPF";

/// Part of the cache key: bump it whenever [`compile`] emits different code
/// for the same profile, so no filter from an older compiler is loaded
/// (2: x32 calls compiled for x32's numbers).
const COMPILER_REVISION: u32 = 2;

/// magic, flags (u32), notify (u32), json length (u32), json, instructions.
fn encode(p: &Program, json: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(20 + json.len() + p.insns.len() * 8);
    out.extend_from_slice(CACHE_MAGIC);
    out.extend_from_slice(&p.flags.to_le_bytes());
    out.extend_from_slice(&(p.notify as u32).to_le_bytes());
    out.extend_from_slice(&(json.len() as u32).to_le_bytes());
    out.extend_from_slice(json);
    for i in &p.insns {
        out.extend_from_slice(&i.code.to_le_bytes());
        out.push(i.jt);
        out.push(i.jf);
        out.extend_from_slice(&i.k.to_le_bytes());
    }
    out
}

fn decode(data: &[u8], json: &[u8]) -> Option<Program> {
    let rest = data.strip_prefix(CACHE_MAGIC)?;
    let word = |b: &[u8]| u32::from_le_bytes(b.try_into().unwrap_or_default());
    let (flags, notify, len) = (
        word(rest.get(0..4)?),
        word(rest.get(4..8)?),
        word(rest.get(8..12)?) as usize,
    );
    if rest.get(12..12 + len)? != json {
        return None;
    }
    let code = &rest[12 + len..];
    if code.is_empty() || code.len() % 8 != 0 || code.len() / 8 > 4096 {
        return None;
    }
    let insns = code
        .chunks_exact(8)
        .map(|c| Insn {
            code: u16::from_le_bytes([c[0], c[1]]),
            jt: c[2],
            jf: c[3],
            k: u32::from_le_bytes([c[4], c[5], c[6], c[7]]),
        })
        .collect();
    Some(Program {
        insns,
        flags,
        notify: notify != 0,
    })
}

#[repr(C)]
struct SockFprog {
    len: u16,
    filter: *const Insn,
}

/// Loads `p` on the calling thread; returns the notify listener when the
/// program has SCMP_ACT_NOTIFY rules.
pub fn load(p: &Program) -> Result<Option<OwnedFd>> {
    let prog = SockFprog {
        len: p.insns.len() as u16,
        filter: p.insns.as_ptr(),
    };
    // SAFETY: `prog` points at `p.insns`, alive for the call; the kernel copies it.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            1, /* SECCOMP_SET_MODE_FILTER */
            p.flags,
            &prog as *const SockFprog,
        )
    };
    if rc < 0 {
        return Err(RuntimeError::sys(
            "seccomp(SECCOMP_SET_MODE_FILTER)",
            "linux.seccomp",
            nix::errno::Errno::last(),
        ));
    }
    if p.notify {
        // SAFETY: with NEW_LISTENER the kernel returns a fresh descriptor.
        return Ok(Some(unsafe { OwnedFd::from_raw_fd(rc as i32) }));
    }
    Ok(None)
}

/// Sends the notify listener and the container process state (runtime-spec
/// "seccomp state") over the connected `listenerPath` socket.
pub fn send_listener(socket: i32, listener: &OwnedFd, state: &[u8]) -> Result<()> {
    use std::os::fd::AsRawFd;
    let fds = [listener.as_raw_fd()];
    let iov = [std::io::IoSlice::new(state)];
    nix::sys::socket::sendmsg::<()>(
        socket,
        &iov,
        &[nix::sys::socket::ControlMessage::ScmRights(&fds)],
        nix::sys::socket::MsgFlags::empty(),
        None,
    )
    .map_err(|e| RuntimeError::sys("sendmsg", "linux.seccomp.listenerPath", e))?;
    Ok(())
}

#[cfg(test)]
mod tests;
