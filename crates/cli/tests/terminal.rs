//! Stdin and terminals: `run -i` feeds the container our stdin, `run -t`
//! gives it a terminal of its own that berth copies to ours (window size,
//! TERM, raw input, exit status), and `exec` runs one more process in a
//! running container, with and without a terminal. A pty made by the test
//! plays the user's terminal.

use std::io::Write;
use std::process::Stdio;
use std::time::Duration;

mod common;
use common::pty::{exit_code, UserTerminal};
use common::Fixture;

#[test]
fn run_it_is_an_interactive_terminal() {
    let f = Fixture::new();
    let (mut term, mut child) =
        UserTerminal::spawn(f.command(&["run", "--rm", "-it", "bb:1", "sh"]), 33, 101);
    term.type_in("echo \"size=$(stty size) term=$TERM tty=$(tty)\"\n");
    term.wait_for("size=33 101 term=xterm tty=/dev/pts/0");
    // Our terminal is raw now: only the container's terminal echoes a
    // line (a cooked one of ours would echo it a second time).
    term.type_in("echo mark-$((6 * 7))\n");
    term.wait_for("mark-42\r\n");
    assert_eq!(
        term.seen().matches("echo mark-").count(),
        1,
        "{:?}",
        term.seen()
    );
    // And ^C reaches the container's terminal as a byte: it interrupts
    // the shell's foreground job there, and neither berth nor the shell.
    term.type_in("sleep 100; echo not-interrupted\n");
    std::thread::sleep(Duration::from_millis(300));
    term.type_in("\x03");
    term.type_in("echo still-here\n");
    term.wait_for("still-here\r\n");
    assert!(
        !term.seen().contains("\nnot-interrupted"),
        "{:?}",
        term.seen()
    );
    term.type_in("exit 7\n");
    assert_eq!(exit_code(&mut child), 7, "{}", term.seen());
    f.assert_clean();
}

#[test]
fn run_i_feeds_stdin_and_t_alone_gives_a_terminal() {
    let f = Fixture::new();
    let mut child = f
        .command(&[
            "run",
            "--rm",
            "-i",
            "bb:1",
            "sh",
            "-c",
            "read x; read y; echo got:$x:$y; cat",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"one\ntwo\nthree\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "got:one:two\nthree\n");
    assert!(out.status.success());

    // Without -i the container's stdin is empty, as Docker's.
    let o = f.run(&["bb:1", "sh", "-c", "cat; echo end"]);
    assert_eq!((o.code, o.stdout.as_str()), (0, "end\n"), "{o:?}");

    // -t without -i: a terminal (output through it, CRLF), nothing read.
    let o = f.run(&[
        "-t",
        "bb:1",
        "sh",
        "-c",
        "tty; test -t 0 && echo stdin-is-a-tty; exit 4",
    ]);
    assert_eq!(o.code, 4, "{o:?}");
    assert_eq!(o.stdout, "/dev/pts/0\r\nstdin-is-a-tty\r\n", "{o:?}");
    f.assert_clean();
}

#[test]
fn exec_runs_in_the_running_container() {
    let f = Fixture::new();
    let o = f
        .berth(&[
            "run", "-d", "--name", "ex1", "-e", "A=run", "bb:1", "sleep", "100",
        ])
        .ok();
    let id = o.stdout.trim().to_string();
    // The container's environment and namespaces, changed by the flags.
    let o = f.berth(&[
        "exec",
        "-e",
        "A=exec",
        "-e",
        "B=2",
        "-w",
        "/tmp",
        "-u",
        "1234:5678",
        "ex1",
        "sh",
        "-c",
        "echo $A $B $(pwd) $(id -u):$(id -g) $(hostname); exit 5",
    ]);
    assert_eq!(o.code, 5, "{o:?}");
    assert_eq!(o.stdout, format!("exec 2 /tmp 1234:5678 {}\n", &id[..12]));
    // The exec'd process is in the container: it sees the container's init.
    let o = f
        .berth(&[
            "exec",
            "ex1",
            "sh",
            "-c",
            "cat /proc/1/cmdline | tr '\\0' ' '",
        ])
        .ok();
    assert_eq!(o.stdout, "sleep 100 ");
    // -i: our stdin.
    let out = f
        .command(&["exec", "-i", &id[..8], "sh", "-c", "read x; echo got:$x"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            c.stdin.take().unwrap().write_all(b"hello\n")?;
            c.wait_with_output()
        })
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "got:hello\n");
    // -it on a terminal of ours.
    let (mut term, mut child) =
        UserTerminal::spawn(f.command(&["exec", "-it", "ex1", "sh"]), 21, 77);
    term.type_in("echo \"size=$(stty size) term=$TERM\"; exit 3\n");
    assert_eq!(exit_code(&mut child), 3, "{}", term.seen());
    assert!(
        term.seen().contains("size=21 77 term=xterm"),
        "{}",
        term.seen()
    );
    // Docker's codes when it cannot run.
    let o = f.berth(&["exec", "ex1", "nothere"]);
    assert_eq!(o.code, 127, "{o:?}");
    assert!(o.stderr.contains("nothere"), "{o:?}");
    let o = f.berth(&["exec", "ex1", "/etc/passwd"]);
    assert_eq!(o.code, 126, "{o:?}");
    let o = f.berth(&["exec", "nosuch", "true"]);
    assert_eq!(o.code, 1, "{o:?}");
    assert!(o.stderr.contains("no such container: nosuch"), "{o:?}");
    f.berth(&["stop", "-t", "0", "ex1"]).ok();
    let o = f.berth(&["exec", "ex1", "true"]);
    assert_eq!(o.code, 1, "{o:?}");
    assert!(o.stderr.contains("is not running"), "{o:?}");
    // Nothing of the execs is left in the bundle.
    let bundle = f.root().join("containers").join(&id).join("bundle");
    let left: Vec<String> = std::fs::read_dir(&bundle)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("exec-"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
    f.berth(&["rm", "ex1"]).ok();
    f.assert_clean();
    assert!(
        std::fs::read_dir(f.root().join("run"))
            .map(|d| d.count() == 0)
            .unwrap_or(true),
        "console sockets left in run/"
    );
    drop(term);
}
