//! The compiler's output run through a BPF evaluator, as the kernel would run it.

use super::*;

fn profile(json: &str) -> LinuxSeccomp {
    serde_json::from_str(json).unwrap()
}

/// Runs the program as the kernel would on (arch, nr, args).
fn eval(p: &Program, arch: u32, nr: u32, args: [u64; 6]) -> u32 {
    let mut data = [0u8; 64];
    data[0..4].copy_from_slice(&nr.to_le_bytes());
    data[4..8].copy_from_slice(&arch.to_le_bytes());
    for (i, a) in args.iter().enumerate() {
        data[16 + 8 * i..24 + 8 * i].copy_from_slice(&a.to_le_bytes());
    }
    let (mut pc, mut acc) = (0usize, 0u32);
    loop {
        let i = p.insns[pc];
        pc += 1;
        match i.code {
            BPF_LD_W_ABS => {
                acc = u32::from_le_bytes(data[i.k as usize..i.k as usize + 4].try_into().unwrap())
            }
            BPF_AND_K => acc &= i.k,
            BPF_JMP_JA => pc += i.k as usize,
            BPF_RET_K => return i.k,
            code => {
                let taken = match code {
                    BPF_JEQ_K => acc == i.k,
                    BPF_JGT_K => acc > i.k,
                    BPF_JGE_K => acc >= i.k,
                    BPF_JSET_K => acc & i.k != 0,
                    _ => panic!("unknown opcode {code:#x}"),
                };
                pc += if taken { i.jt } else { i.jf } as usize;
            }
        }
    }
}

const X86_64: u32 = 0xc000_003e;

#[test]
fn allowlist_with_errno_default() {
    let p = compile(&profile(r#"{"defaultAction":"SCMP_ACT_ERRNO","defaultErrnoRet":38,"architectures":["SCMP_ARCH_X86_64"],"syscalls":[{"names":["read","write","no_such_call"],"action":"SCMP_ACT_ALLOW"}]}"#)).unwrap();
    assert_eq!(eval(&p, X86_64, 0, [0; 6]), RET_ALLOW);
    assert_eq!(eval(&p, X86_64, 1, [0; 6]), RET_ALLOW);
    assert_eq!(eval(&p, X86_64, 83, [0; 6]), RET_ERRNO | 38);
    assert_eq!(
        eval(&p, 0x4000_0003, 0, [0; 6]),
        RET_KILL_PROCESS,
        "unlisted arch is killed"
    );
    assert_eq!(
        eval(&p, X86_64, X32_SYSCALL_BIT | 1, [0; 6]),
        RET_KILL_PROCESS,
        "x32 not listed"
    );
}

/// Security issue 11, item 7: with x32 listed, a default-allow
/// profile's denied calls are denied through x32's numbers too.
#[test]
fn denied_calls_stay_denied_through_the_x32_abi() {
    let p = compile(&profile(r#"{"defaultAction":"SCMP_ACT_ALLOW","architectures":["SCMP_ARCH_X86_64","SCMP_ARCH_X86","SCMP_ARCH_X32"],"syscalls":[{"names":["mkdir","mount","unshare","execve","ioctl"],"action":"SCMP_ACT_ERRNO","errnoRet":1}]}"#)).unwrap();
    let denied = RET_ERRNO | 1;
    for (name, nr64) in [("mkdir", 83), ("mount", 165), ("unshare", 272)] {
        assert_eq!(eval(&p, X86_64, nr64, [0; 6]), denied, "{name} x86_64");
        assert_eq!(
            eval(&p, X86_64, X32_SYSCALL_BIT | nr64, [0; 6]),
            denied,
            "{name} through x32"
        );
    }
    // x32's own numbers for the calls whose x86_64 entry is 64-bit only.
    assert_eq!(
        eval(&p, X86_64, X32_SYSCALL_BIT | 520, [0; 6]),
        denied,
        "x32 execve"
    );
    assert_eq!(
        eval(&p, X86_64, X32_SYSCALL_BIT | 514, [0; 6]),
        denied,
        "x32 ioctl"
    );
    // Allowed calls stay allowed on x32, as on x86_64.
    assert_eq!(
        eval(&p, X86_64, X32_SYSCALL_BIT, [0; 6]),
        RET_ALLOW,
        "x32 read"
    );
    assert_eq!(eval(&p, X86_64, 0, [0; 6]), RET_ALLOW, "read");
    // i386 keeps its own numbers (mkdir is 39 there).
    assert_eq!(eval(&p, 0x4000_0003, 39, [0; 6]), denied, "i386 mkdir");
}

#[test]
fn every_operator_on_64_bit_values() {
    let cases = [
        (
            "SCMP_CMP_EQ",
            5u64,
            [(5u64, true), (6, false), (5 | 1 << 32, false)],
        ),
        (
            "SCMP_CMP_NE",
            5,
            [(5, false), (6, true), (5 | 1 << 32, true)],
        ),
        (
            "SCMP_CMP_GT",
            1 << 32,
            [(1 << 32, false), ((1 << 32) + 1, true), (7, false)],
        ),
        (
            "SCMP_CMP_GE",
            1 << 32,
            [(1 << 32, true), ((1 << 32) - 1, false), (2 << 32, true)],
        ),
        (
            "SCMP_CMP_LT",
            1 << 32,
            [(1 << 32, false), ((1 << 32) - 1, true), (2 << 32, false)],
        ),
        ("SCMP_CMP_LE", 10, [(10, true), (11, false), (0, true)]),
    ];
    for (op, value, checks) in cases {
        let p = compile(&profile(&format!(r#"{{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{{"names":["mkdir"],"action":"SCMP_ACT_ERRNO","errnoRet":13,"args":[{{"index":1,"value":{value},"op":"{op}"}}]}}]}}"#))).unwrap();
        for (arg, matches) in checks {
            let got = eval(&p, X86_64, 83, [0, arg, 0, 0, 0, 0]);
            assert_eq!(got == (RET_ERRNO | 13), matches, "{op} {value} vs {arg}");
        }
    }
    let p = compile(&profile(r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["clone"],"action":"SCMP_ACT_KILL_PROCESS","args":[{"index":0,"value":2114060288,"valueTwo":0,"op":"SCMP_CMP_MASKED_EQ"}]}]}"#)).unwrap();
    assert_eq!(
        eval(&p, X86_64, 56, [0x11, 0, 0, 0, 0, 0]),
        RET_KILL_PROCESS
    );
    assert_eq!(
        eval(&p, X86_64, 56, [0x2000_0000, 0, 0, 0, 0, 0]),
        RET_ALLOW,
        "CLONE_NEWPID is masked in"
    );
}

#[test]
fn rules_for_one_syscall_apply_in_order_and_fall_back_to_default() {
    let p = compile(&profile(r#"{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[
        {"names":["personality"],"action":"SCMP_ACT_ALLOW","args":[{"index":0,"value":0,"op":"SCMP_CMP_EQ"}]},
        {"names":["personality"],"action":"SCMP_ACT_ALLOW","args":[{"index":0,"value":8,"op":"SCMP_CMP_EQ"}]},
        {"names":["getpid"],"action":"SCMP_ACT_LOG"}]}"#)).unwrap();
    assert_eq!(eval(&p, X86_64, 135, [0; 6]), RET_ALLOW);
    assert_eq!(eval(&p, X86_64, 135, [8, 0, 0, 0, 0, 0]), RET_ALLOW);
    assert_eq!(eval(&p, X86_64, 135, [9, 0, 0, 0, 0, 0]), RET_ERRNO | 1);
    assert_eq!(eval(&p, X86_64, 39, [0; 6]), RET_LOG);
}

#[test]
fn i386_uses_its_own_numbers() {
    let p = compile(&profile(r#"{"defaultAction":"SCMP_ACT_ERRNO","architectures":["SCMP_ARCH_X86_64","SCMP_ARCH_X86"],"syscalls":[{"names":["mkdir"],"action":"SCMP_ACT_ALLOW"}]}"#)).unwrap();
    assert_eq!(eval(&p, X86_64, 83, [0; 6]), RET_ALLOW);
    assert_eq!(eval(&p, 0x4000_0003, 39, [0; 6]), RET_ALLOW);
    assert_eq!(eval(&p, 0x4000_0003, 83, [0; 6]), RET_ERRNO | 1);
}

#[test]
fn cached_program_is_the_compiled_one_and_checked_against_its_profile() {
    let dir = tempfile::tempdir().unwrap();
    let prof = profile(
        r#"{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{"names":["read"],"action":"SCMP_ACT_ALLOW"}]}"#,
    );
    let first = compile_cached(&prof, dir.path()).unwrap();
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        1,
        "the program was cached"
    );
    let second = compile_cached(&prof, dir.path()).unwrap();
    assert_eq!(first, second);
    assert_eq!(first, compile(&prof).unwrap());
    // An entry whose recorded profile differs is not used.
    let entry = std::fs::read_dir(dir.path())
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let other = profile(r#"{"defaultAction":"SCMP_ACT_ALLOW"}"#);
    let json = serde_json::to_vec(&other).unwrap();
    std::fs::write(&entry, encode(&compile(&other).unwrap(), &json)).unwrap();
    assert_eq!(compile_cached(&prof, dir.path()).unwrap(), first);
}

#[test]
fn notify_sets_the_listener_flag() {
    let p = compile(&profile(r#"{"defaultAction":"SCMP_ACT_ALLOW","listenerPath":"/x","syscalls":[{"names":["mkdir"],"action":"SCMP_ACT_NOTIFY"}]}"#)).unwrap();
    assert!(p.notify);
    assert_eq!(p.flags & 8, 8);
}
