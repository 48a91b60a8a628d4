//! Running a helper program (`nft`, a CNI plugin) with a deadline and a
//! bound on what is kept of its output: a helper that hangs is killed and
//! reported, one that writes without end cannot exhaust memory.

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// What a helper did.
#[derive(Debug)]
pub struct Output {
    /// How it ended.
    pub status: ExitStatus,
    /// Its stdout, at most the limit given.
    pub stdout: Vec<u8>,
    /// Its stderr, at most the limit given.
    pub stderr: Vec<u8>,
}

/// Why a helper could not be run to its end.
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    /// It could not be started, or its pipes failed.
    #[error("{program}: {err}")]
    Io {
        /// The program.
        program: String,
        /// The error.
        err: std::io::Error,
    },
    /// It ran past its deadline and was killed.
    #[error("{program} did not finish within {secs} s and was killed")]
    Timeout {
        /// The program.
        program: String,
        /// The deadline, in seconds.
        secs: u64,
    },
}

/// Reads `from` to its end, keeping at most `limit` bytes (the rest is
/// read and dropped, so the writer never blocks on a full pipe).
fn bounded_read(mut from: impl Read, limit: usize) -> Vec<u8> {
    let mut kept = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        match from.read(&mut buf) {
            Ok(0) | Err(_) => return kept,
            Ok(n) => {
                let room = limit.saturating_sub(kept.len());
                kept.extend_from_slice(&buf[..n.min(room)]);
            }
        }
    }
}

/// Runs `cmd` (its program `program`, for messages) with `stdin` written
/// to it, waiting at most `timeout`; keeps at most `limit` bytes of each
/// output stream.
pub fn run(
    mut cmd: Command,
    program: &Path,
    stdin: &[u8],
    timeout: Duration,
    limit: usize,
) -> Result<Output, ExecError> {
    let name = program.display().to_string();
    let io = |err| ExecError::Io {
        program: name.clone(),
        err,
    };
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(io)?;
    let out = child
        .stdout
        .take()
        .map(|o| std::thread::spawn(move || bounded_read(o, limit)));
    let err = child
        .stderr
        .take()
        .map(|e| std::thread::spawn(move || bounded_read(e, limit)));
    // Written from a thread too: a helper that does not read its input
    // must not block the deadline.
    let input = stdin.to_vec();
    let writer = child.stdin.take().map(|mut i| {
        std::thread::spawn(move || {
            // A helper may exit without reading: a broken pipe is its answer.
            let _ = i.write_all(&input);
        })
    });
    let started = Instant::now();
    let mut pause = Duration::from_micros(100);
    let status = loop {
        if let Some(status) = child.try_wait().map_err(io)? {
            break status;
        }
        if started.elapsed() >= timeout {
            let _ = child.kill();
            let _ = child.wait();
            return Err(ExecError::Timeout {
                program: name,
                secs: timeout.as_secs(),
            });
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(10));
    };
    if let Some(w) = writer {
        let _ = w.join();
    }
    // The pipes close when the helper (and whatever it left holding them)
    // is gone; a helper's own child that keeps them is not waited for past
    // the deadline either.
    let join = |h: Option<std::thread::JoinHandle<Vec<u8>>>| {
        let Some(h) = h else { return Vec::new() };
        while !h.is_finished() && started.elapsed() < timeout {
            std::thread::sleep(Duration::from_millis(1));
        }
        if h.is_finished() {
            h.join().unwrap_or_default()
        } else {
            Vec::new()
        }
    };
    Ok(Output {
        status,
        stdout: join(out),
        stderr: join(err),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str) -> (Command, &'static Path) {
        let mut c = Command::new("/bin/sh");
        c.arg("-c").arg(script);
        (c, Path::new("/bin/sh"))
    }

    #[test]
    fn output_and_status_come_back() {
        let (c, p) = sh("read x; echo got $x; echo oops >&2; exit 3");
        let o = run(c, p, b"hello\n", Duration::from_secs(5), 1024).unwrap();
        assert_eq!(o.status.code(), Some(3));
        assert_eq!(o.stdout, b"got hello\n");
        assert_eq!(o.stderr, b"oops\n");
    }

    #[test]
    fn a_helper_past_its_deadline_is_killed() {
        let (c, p) = sh("sleep 30");
        let t = Instant::now();
        let e = run(c, p, b"", Duration::from_millis(300), 1024).unwrap_err();
        assert!(matches!(e, ExecError::Timeout { .. }), "{e}");
        assert!(t.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn output_is_bounded() {
        let (c, p) = sh("head -c 1000000 /dev/zero");
        let o = run(c, p, b"", Duration::from_secs(5), 4096).unwrap();
        assert!(o.status.success());
        assert_eq!(o.stdout.len(), 4096);
    }

    #[test]
    fn a_missing_program_is_an_error() {
        let p = Path::new("/nonexistent/helper");
        let e = run(Command::new(p), p, b"", Duration::from_secs(1), 16).unwrap_err();
        assert!(matches!(e, ExecError::Io { .. }), "{e}");
    }
}
