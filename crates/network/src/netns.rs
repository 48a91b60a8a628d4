//! Network namespaces that outlive their processes: a file that a bind
//! mount of `/proc/thread-self/ns/net` pins (as `ip netns add` does), so
//! the engine can set a container's network up before its runtime
//! creates it and the spec joins it by path. Work inside one happens on a
//! thread of its own that has joined it (`setns` moves only that thread).

use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;

use crate::NetworkError;

fn io(step: &'static str) -> impl Fn(std::io::Error) -> NetworkError {
    move |err| NetworkError::Io { step, err }
}

fn errno(step: &'static str) -> impl Fn(nix::errno::Errno) -> NetworkError {
    move |e| NetworkError::Kernel { step, errno: e }
}

/// Makes a new network namespace pinned at `path` (which must not exist),
/// with its loopback up.
pub fn create(path: &Path) -> Result<(), NetworkError> {
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(io("create the network namespace file"))?;
    let made = std::thread::scope(|s| {
        s.spawn(|| -> Result<(), NetworkError> {
            nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET)
                .map_err(errno("unshare a network namespace"))?;
            nix::mount::mount(
                Some("/proc/thread-self/ns/net"),
                path,
                None::<&str>,
                nix::mount::MsFlags::MS_BIND,
                None::<&str>,
            )
            .map_err(errno("pin the network namespace"))?;
            let mut rtnl = crate::rtnl::Rtnl::open()?;
            if let Some(lo) = rtnl.link_index("lo")? {
                rtnl.set_up(lo, None)?;
            }
            Ok(())
        })
        .join()
        .unwrap_or(Err(NetworkError::Io {
            step: "join the namespace thread",
            err: std::io::Error::other("it panicked"),
        }))
    });
    if made.is_err() {
        let _ = remove(path);
    }
    made
}

/// Unpins and removes the namespace at `path`; nothing if it is gone.
pub fn remove(path: &Path) -> Result<(), NetworkError> {
    match nix::mount::umount2(path, nix::mount::MntFlags::MNT_DETACH) {
        Ok(()) | Err(nix::errno::Errno::EINVAL | nix::errno::Errno::ENOENT) => {}
        Err(e) => return Err(errno("unpin the network namespace")(e)),
    }
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(io("remove the network namespace file")(e))
        }
        _ => Ok(()),
    }
}

/// Opens the namespace pinned at `path`.
pub fn open(path: &Path) -> Result<OwnedFd, NetworkError> {
    std::fs::File::open(path)
        .map(OwnedFd::from)
        .map_err(io("open the network namespace"))
}

/// Runs `f` on a thread that has joined the namespace at `path`.
pub fn run_in<T: Send>(
    path: &Path,
    f: impl FnOnce() -> Result<T, NetworkError> + Send,
) -> Result<T, NetworkError> {
    let ns = open(path)?;
    std::thread::scope(|s| {
        s.spawn(|| {
            nix::sched::setns(&ns, nix::sched::CloneFlags::CLONE_NEWNET)
                .map_err(errno("join the network namespace"))?;
            let _ = ns.as_raw_fd();
            f()
        })
        .join()
        .unwrap_or(Err(NetworkError::Io {
            step: "join the namespace thread",
            err: std::io::Error::other("it panicked"),
        }))
    })
}
