//! seccomp on the real kernel: a denied syscall returns the configured
//! errno, a kill action kills, argument conditions select, the default
//! profile refuses what Docker's refuses, and a notify agent's answer is
//! what the program sees.

use std::os::fd::AsRawFd;
use std::os::unix::net::UnixListener;

use serde_json::{json, Value};
use test_support::{unique_id, Bundle, Outcome, RuntimeCli};

const BIN: &str = env!("CARGO_BIN_EXE_berth-runtime");

fn run_with(script: &str, seccomp: Option<Value>) -> Outcome {
    let rt = RuntimeCli::new(BIN);
    let mut b = Bundle::new(rt.default_spec());
    b.set_args(&["sh", "-c", script]);
    b.config["root"]["readonly"] = json!(false);
    let id = unique_id("scmp");
    b.set_unique_cgroup(&id);
    match seccomp {
        Some(s) => b.config["linux"]["seccomp"] = s,
        None => {
            b.config["linux"].as_object_mut().unwrap().remove("seccomp");
        }
    }
    b.write();
    rt.run(&["run", "--bundle", b.path().to_str().unwrap(), &id])
}

#[test]
fn denied_syscall_returns_the_configured_errno() {
    let profile = json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 95}]});
    let o = run_with("mkdir /tmp/x 2>&1; echo rc=$?", Some(profile)).ok();
    assert!(o.stdout.contains("not supported"), "{}", o.stdout);
    assert!(o.stdout.contains("rc=1"), "{}", o.stdout);
    let o = run_with("mkdir /tmp/x && echo made", None).ok();
    assert_eq!(o.stdout.trim(), "made", "without the profile mkdir works");
}

#[test]
fn kill_action_kills_the_caller() {
    let profile = json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_KILL_PROCESS"}]});
    let o = run_with("mkdir /tmp/x; echo rc=$?", Some(profile)).ok();
    // 128 + SIGSYS (31)
    assert!(o.stdout.contains("rc=159"), "{}", o.stdout);
}

#[test]
fn argument_conditions_select_calls() {
    // kill(pid, sig): refuse signal 0 only.
    let profile = json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["kill"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13,
        "args": [{"index": 1, "value": 0, "op": "SCMP_CMP_EQ"}]}]});
    let o = run_with("kill -0 $$ 2>/dev/null && echo zero-sent || echo zero-refused; kill -CONT $$ && echo cont-sent", Some(profile)).ok();
    assert_eq!(
        o.stdout.lines().collect::<Vec<_>>(),
        ["zero-refused", "cont-sent"],
        "{}",
        o.stdout
    );
}

#[test]
fn default_profile_refuses_namespace_creation() {
    let rt = RuntimeCli::new(BIN);
    let spec = rt.default_spec();
    assert_eq!(
        spec["linux"]["seccomp"]["defaultAction"],
        json!("SCMP_ACT_ERRNO")
    );
    let with = run_with(
        "unshare -U true && echo unshared || echo refused",
        Some(spec["linux"]["seccomp"].clone()),
    )
    .ok();
    assert_eq!(with.stdout.trim(), "refused");
    let without = run_with("unshare -U true && echo unshared || echo refused", None).ok();
    assert_eq!(
        without.stdout.trim(),
        "unshared",
        "user namespaces need no capability: only seccomp refuses"
    );
}

#[repr(C)]
#[derive(Default)]
struct SeccompData {
    nr: i32,
    arch: u32,
    ip: u64,
    args: [u64; 6],
}

#[repr(C)]
#[derive(Default)]
struct Notif {
    id: u64,
    pid: u32,
    flags: u32,
    data: SeccompData,
}

#[repr(C)]
struct NotifResp {
    id: u64,
    val: i64,
    error: i32,
    flags: u32,
}

const NOTIF_RECV: libc::c_ulong = 0xc050_2100;
const NOTIF_SEND: libc::c_ulong = 0xc018_2101;

#[test]
fn notify_agent_answers_for_the_kernel() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("agent.sock");
    let listener = UnixListener::bind(&sock).unwrap();
    let agent = std::thread::spawn(move || {
        let (fd, msg) = test_support::receive_fd(&listener);
        let state: Value = serde_json::from_slice(&msg).unwrap();
        let mut req = Notif::default();
        // SAFETY: the notify ioctls read/write these exact structures.
        assert_eq!(
            unsafe { libc::ioctl(fd.as_raw_fd(), NOTIF_RECV, &mut req) },
            0,
            "NOTIF_RECV"
        );
        let resp = NotifResp {
            id: req.id,
            val: 0,
            error: -libc::EXDEV,
            flags: 0,
        };
        // SAFETY: as above.
        assert_eq!(
            unsafe { libc::ioctl(fd.as_raw_fd(), NOTIF_SEND, &resp) },
            0,
            "NOTIF_SEND"
        );
        (state, req.data.nr)
    });
    let profile = json!({"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": sock, "listenerMetadata": "probe",
        "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"}]});
    let o = run_with("mkdir /tmp/x 2>&1; echo rc=$?", Some(profile)).ok();
    let (state, nr) = agent.join().unwrap();
    assert!(
        o.stdout.contains("cross-device link"),
        "the agent's answer must reach the program: {}",
        o.stdout
    );
    assert_eq!(nr, 83, "mkdir on x86_64");
    assert_eq!(state["fds"], json!(["seccompFd"]));
    assert_eq!(state["metadata"], json!("probe"));
    assert!(state["pid"].as_i64().unwrap() > 1);
}

#[test]
fn trace_without_a_tracer_fails_the_call_and_kill_thread_kills() {
    // SCMP_ACT_TRACE with no tracer attached: the kernel fails the call with ENOSYS.
    let trace = json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_TRACE", "errnoRet": 1}]});
    let o = run_with("mkdir /tmp/x 2>&1; echo rc=$?", Some(trace)).ok();
    assert!(
        o.stdout.contains("not implemented") || o.stdout.contains("Function not implemented"),
        "{}",
        o.stdout
    );
    let kill = json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_KILL_THREAD"}]});
    assert!(run_with("mkdir /tmp/x; echo rc=$?", Some(kill))
        .ok()
        .stdout
        .contains("rc=159"));
    let log = json!({"defaultAction": "SCMP_ACT_ALLOW", "flags": ["SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_TSYNC"], "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_LOG"}]});
    assert_eq!(
        run_with("mkdir /tmp/x && echo made", Some(log))
            .ok()
            .stdout
            .trim(),
        "made",
        "LOG allows the call"
    );
}
