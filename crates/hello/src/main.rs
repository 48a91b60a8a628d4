//! `/hello`, the only file of the hello image (like Docker's hello-world).
//!
//! It needs nothing but `getpid(2)` and `write(2)`: built with
//! `cargo rustc -p hello --release -- -C target-feature=+crt-static` it is a
//! static executable, with no dynamic loader or library to find, so it runs
//! in a root filesystem that holds nothing else. `scripts/demo` builds it,
//! imports a directory holding only `/hello` as `hello:latest` and runs it.

use std::io::Write;

const GREETING: &str = "
Hello from berth!
This message shows that your installation appears to be working correctly.

To generate this message, berth took these steps:
 1. berth imported a directory holding only this static /hello binary as the
    image hello:latest: one layer, stored by digest in berth's store.
 2. berth mounted the image read-only. With a scratch layer on top to hold
    the mount points (/proc, /dev, /sys), that is the container's root.
 3. berth-runtime read the bundle's config.json, created new mount, PID, UTS,
    IPC, network and cgroup namespaces and a cgroup, dropped capabilities and
    applied the default seccomp profile.
 4. berth-runtime mounted /proc, /dev and /sys, pivoted into the root, made it
    read-only and executed /hello, which wrote this message to your terminal.
";

fn main() {
    let pid = match std::process::id() {
        1 => "pid 1, the first process of its own PID namespace".to_string(),
        n => format!("pid {n}: not in a container of its own, it seems"),
    };
    let mut out = std::io::stdout().lock();
    // A failed write (stdout closed) has nobody to report to: exit non-zero.
    if write!(out, "{GREETING}\n(/hello ran as {pid}.)\n\n")
        .and_then(|()| out.flush())
        .is_err()
    {
        std::process::exit(1);
    }
}
