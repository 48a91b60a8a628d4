//! The `mounts` of a spec: option parsing and mounting one entry inside the
//! container root. Destinations are resolved with `safe_path`; bind mounts
//! are built as detached trees (`open_tree`), given their flags with
//! `mount_setattr`, and attached to the resolved target with `move_mount`.
//! This module must not decide the order of mounts: `rootfs` does. (The
//! `cgroup` mount is `cgroup_mount`'s; binds cloned before a new user
//! namespace exists are `prepared_binds`'.)

use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};

use libc::c_ulong;
use nix::errno::Errno;
use oci_spec::runtime::Mount;

use crate::error::{Result, RuntimeError};
use crate::mount_api::{self, MountAttr};
use crate::safe_path;
use crate::tmpcopyup;

/// A mount entry's options, split into what each system call needs.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct MountOptions {
    /// Flags for `mount(2)` (MS_*), without propagation.
    pub flags: c_ulong,
    /// Flags the options explicitly clear (e.g. `rw`, `dev`).
    pub clear: c_ulong,
    /// Propagation flags to apply after mounting (MS_SHARED, MS_REC, ...).
    pub propagation: Vec<c_ulong>,
    /// Recursive attribute changes (`rro`, `rnosuid`, ...).
    pub recursive: MountAttr,
    /// Filesystem-specific data (`mode=755,size=64k`).
    pub data: Vec<String>,
    /// A bind mount (`bind` or `rbind`).
    pub bind: bool,
    /// `rbind`.
    pub rec: bool,
    /// runc's `tmpcopyup` extension.
    pub tmpcopyup: bool,
    /// `idmap` (Some(false)) or `ridmap` (Some(true)): the bind shows its
    /// files through the mount's (or the container's) id mapping.
    pub idmap: Option<bool>,
}

impl MountOptions {
    /// Parses the options of one mount entry.
    pub fn parse(options: &[String]) -> Result<Self> {
        let mut o = MountOptions::default();
        for opt in options {
            let set = |o: &mut MountOptions, f: c_ulong| {
                o.flags |= f;
                o.clear &= !f;
            };
            let clr = |o: &mut MountOptions, f: c_ulong| {
                o.flags &= !f;
                o.clear |= f;
            };
            match opt.as_str() {
                "defaults" => {}
                "ro" => set(&mut o, libc::MS_RDONLY),
                "rw" => clr(&mut o, libc::MS_RDONLY),
                "nosuid" => set(&mut o, libc::MS_NOSUID),
                "suid" => clr(&mut o, libc::MS_NOSUID),
                "nodev" => set(&mut o, libc::MS_NODEV),
                "dev" => clr(&mut o, libc::MS_NODEV),
                "noexec" => set(&mut o, libc::MS_NOEXEC),
                "exec" => clr(&mut o, libc::MS_NOEXEC),
                "sync" => set(&mut o, libc::MS_SYNCHRONOUS),
                "async" => clr(&mut o, libc::MS_SYNCHRONOUS),
                "dirsync" => set(&mut o, libc::MS_DIRSYNC),
                "remount" => set(&mut o, libc::MS_REMOUNT),
                "mand" => set(&mut o, libc::MS_MANDLOCK),
                "nomand" => clr(&mut o, libc::MS_MANDLOCK),
                "atime" => clr(&mut o, libc::MS_NOATIME),
                "noatime" => set(&mut o, libc::MS_NOATIME),
                "diratime" => clr(&mut o, libc::MS_NODIRATIME),
                "nodiratime" => set(&mut o, libc::MS_NODIRATIME),
                "relatime" => set(&mut o, libc::MS_RELATIME),
                "norelatime" => clr(&mut o, libc::MS_RELATIME),
                "strictatime" => set(&mut o, libc::MS_STRICTATIME),
                "nostrictatime" => clr(&mut o, libc::MS_STRICTATIME),
                "lazytime" => set(&mut o, libc::MS_LAZYTIME),
                "nolazytime" => clr(&mut o, libc::MS_LAZYTIME),
                "iversion" => set(&mut o, libc::MS_I_VERSION),
                "noiversion" => clr(&mut o, libc::MS_I_VERSION),
                "silent" => set(&mut o, libc::MS_SILENT),
                "loud" => clr(&mut o, libc::MS_SILENT),
                "bind" => o.bind = true,
                "rbind" => {
                    o.bind = true;
                    o.rec = true
                }
                "private" => o.propagation.push(libc::MS_PRIVATE),
                "rprivate" => o.propagation.push(libc::MS_PRIVATE | libc::MS_REC),
                "shared" => o.propagation.push(libc::MS_SHARED),
                "rshared" => o.propagation.push(libc::MS_SHARED | libc::MS_REC),
                "slave" => o.propagation.push(libc::MS_SLAVE),
                "rslave" => o.propagation.push(libc::MS_SLAVE | libc::MS_REC),
                "unbindable" => o.propagation.push(libc::MS_UNBINDABLE),
                "runbindable" => o.propagation.push(libc::MS_UNBINDABLE | libc::MS_REC),
                "rro" => o.recursive.attr_set |= mount_api::MOUNT_ATTR_RDONLY,
                "rrw" => o.recursive.attr_clr |= mount_api::MOUNT_ATTR_RDONLY,
                "rnosuid" => o.recursive.attr_set |= mount_api::MOUNT_ATTR_NOSUID,
                "rsuid" => o.recursive.attr_clr |= mount_api::MOUNT_ATTR_NOSUID,
                "rnodev" => o.recursive.attr_set |= mount_api::MOUNT_ATTR_NODEV,
                "rdev" => o.recursive.attr_clr |= mount_api::MOUNT_ATTR_NODEV,
                "rnoexec" => o.recursive.attr_set |= mount_api::MOUNT_ATTR_NOEXEC,
                "rexec" => o.recursive.attr_clr |= mount_api::MOUNT_ATTR_NOEXEC,
                "rnodiratime" => o.recursive.attr_set |= mount_api::MOUNT_ATTR_NODIRATIME,
                "rdiratime" => o.recursive.attr_clr |= mount_api::MOUNT_ATTR_NODIRATIME,
                "rnosymfollow" => o.recursive.attr_set |= mount_api::MOUNT_ATTR_NOSYMFOLLOW,
                "rsymfollow" => o.recursive.attr_clr |= mount_api::MOUNT_ATTR_NOSYMFOLLOW,
                "rnoatime" => {
                    o.recursive.attr_clr |= mount_api::MOUNT_ATTR__ATIME;
                    o.recursive.attr_set |= mount_api::MOUNT_ATTR_NOATIME
                }
                "rrelatime" => o.recursive.attr_clr |= mount_api::MOUNT_ATTR__ATIME,
                "rstrictatime" => {
                    o.recursive.attr_clr |= mount_api::MOUNT_ATTR__ATIME;
                    o.recursive.attr_set |= mount_api::MOUNT_ATTR_STRICTATIME
                }
                "tmpcopyup" => o.tmpcopyup = true,
                "idmap" => o.idmap = Some(false),
                "ridmap" => o.idmap = Some(true),
                other => o.data.push(other.to_string()),
            }
        }
        Ok(o)
    }

    fn data(&self) -> Option<String> {
        if self.data.is_empty() {
            None
        } else {
            Some(self.data.join(","))
        }
    }

    /// The `mount_setattr` change equivalent to the plain flags, for bind mounts.
    fn bind_attr(&self) -> MountAttr {
        let mut a = MountAttr::default();
        let pairs = [
            (libc::MS_RDONLY, mount_api::MOUNT_ATTR_RDONLY),
            (libc::MS_NOSUID, mount_api::MOUNT_ATTR_NOSUID),
            (libc::MS_NODEV, mount_api::MOUNT_ATTR_NODEV),
            (libc::MS_NOEXEC, mount_api::MOUNT_ATTR_NOEXEC),
            (libc::MS_NODIRATIME, mount_api::MOUNT_ATTR_NODIRATIME),
        ];
        for (ms, attr) in pairs {
            if self.flags & ms != 0 {
                a.attr_set |= attr;
            }
            if self.clear & ms != 0 {
                a.attr_clr |= attr;
            }
        }
        if self.flags & libc::MS_NOATIME != 0 {
            a.attr_clr |= mount_api::MOUNT_ATTR__ATIME;
            a.attr_set |= mount_api::MOUNT_ATTR_NOATIME;
        } else if self.flags & libc::MS_STRICTATIME != 0 {
            a.attr_clr |= mount_api::MOUNT_ATTR__ATIME;
            a.attr_set |= mount_api::MOUNT_ATTR_STRICTATIME;
        } else if self.flags & libc::MS_RELATIME != 0 {
            a.attr_clr |= mount_api::MOUNT_ATTR__ATIME;
        }
        a
    }
}

/// What a mount needs to know about the container beyond the entry itself.
pub struct MountContext<'a> {
    /// O_PATH descriptor of the container root (before pivot_root).
    pub root: RawFd,
    /// The container's cgroup, for `cgroup` mounts.
    pub cgroup: Option<&'a cgroups::CgroupManager>,
    /// Whether the container has its own cgroup namespace.
    pub cgroupns: bool,
    /// Bind trees cloned before the user namespace ([`PreparedBinds`]).
    pub prepared: Option<&'a crate::prepared_binds::PreparedBinds>,
}

/// /proc files that may be bind-mounted over (lxcfs and friends), as runc allows.
const PROC_BIND_ALLOWED: &[&str] = &[
    "/proc/cpuinfo",
    "/proc/diskstats",
    "/proc/meminfo",
    "/proc/stat",
    "/proc/swaps",
    "/proc/uptime",
    "/proc/loadavg",
    "/proc/slabinfo",
    "/proc/net/dev",
    "/proc/sys/kernel/ns_last_pid",
];

/// Mounts spec entry `m` (number `index`) inside the container root.
pub fn mount_entry(ctx: &MountContext, m: &Mount, index: usize) -> Result<()> {
    let field = |f: &str| format!("mounts[{index}].{f}");
    let dest = m.destination();
    if !dest.is_absolute() {
        return Err(RuntimeError::spec(
            field("destination"),
            format!("{} is not an absolute path", dest.display()),
        ));
    }
    let dest = clean(dest);
    let opts = MountOptions::parse(m.options().as_deref().unwrap_or(&[]))?;
    let typ = m
        .typ()
        .as_deref()
        .unwrap_or(if opts.bind { "bind" } else { "" });
    let bind = opts.bind || typ == "bind";
    check_proc_destination(&dest, typ, bind, &field("destination"))?;

    if bind {
        let source = m
            .source()
            .as_ref()
            .ok_or_else(|| RuntimeError::spec(field("source"), "a bind mount needs a source"))?;
        return bind_mount(ctx, source, &dest, &opts, index);
    }
    if typ == "cgroup" {
        return crate::cgroup_mount::mount_cgroup(ctx, &dest, &opts, index);
    }
    let target = safe_path::mkdir_all_in_root(ctx.root, &dest, 0o755)?;
    check_resolved_destination(ctx, &target, &dest, typ, false, &field("destination"))?;
    let source = m.source().clone().unwrap_or_else(|| PathBuf::from(typ));
    let fstype = if typ.is_empty() { None } else { Some(typ) };
    let copyup = opts.tmpcopyup && typ == "tmpfs";
    if opts.tmpcopyup && !copyup {
        return Err(RuntimeError::spec(
            field("options"),
            format!("tmpcopyup applies to tmpfs mounts, not {typ:?}"),
        ));
    }
    // What the tmpfs will cover, opened while it is still visible; a
    // read-only tmpfs is made read-only after the copy.
    let covered = copyup
        .then(|| tmpcopyup::open_covered(&target, &dest))
        .transpose()?;
    let mut flags = opts.flags & !libc::MS_REMOUNT;
    let mut data = opts.data();
    if let Some(c) = &covered {
        flags &= !libc::MS_RDONLY;
        // As runc: the new root takes the covered directory's mode unless
        // the options give one (a later mode= wins).
        let st = nix::sys::stat::fstat(c.as_raw_fd())
            .map_err(|e| RuntimeError::sys("stat", dest.display(), e))?;
        let mode = format!("mode={:04o}", st.st_mode & 0o7777);
        data = Some(match data {
            Some(d) if !d.is_empty() => format!("{mode},{d}"),
            _ => mode,
        });
    }
    mount_api::mount(
        Some(&source),
        &safe_path::proc_fd_path(&target),
        fstype,
        flags,
        data.as_deref(),
    )
    .or_else(|e| {
        // sysfs cannot be mounted without a network namespace of our own:
        // give the container a read-only view of the host's /sys instead, as runc does.
        if typ == "sysfs" && e == Errno::EPERM {
            let o = MountOptions {
                flags: opts.flags | libc::MS_RDONLY,
                bind: true,
                rec: true,
                ..Default::default()
            };
            bind_mount(ctx, Path::new("/sys"), &dest, &o, index).map_err(|_| e)
        } else {
            Err(e)
        }
    })
    .map_err(|e| RuntimeError::sys(mount_call(typ), dest.display(), e))?;
    if let Some(covered) = covered {
        let root = safe_path::open_in_root(ctx.root, &dest, libc::O_RDONLY | libc::O_DIRECTORY, 0)
            .map_err(|e| RuntimeError::sys("open new tmpfs", dest.display(), e))?;
        tmpcopyup::copy_into(&covered, &root, &dest)?;
        if opts.flags & libc::MS_RDONLY != 0 {
            let attr = MountAttr {
                attr_set: mount_api::MOUNT_ATTR_RDONLY,
                ..Default::default()
            };
            mount_api::mount_setattr(&root, &attr, false)
                .map_err(|e| RuntimeError::sys("make tmpfs read-only", dest.display(), e))?;
        }
    }
    if !opts.propagation.is_empty() || !opts.recursive.is_empty() {
        let mounted = safe_path::open_in_root(ctx.root, &dest, libc::O_PATH, 0)
            .map_err(|e| RuntimeError::sys("reopen mount", dest.display(), e))?;
        apply_propagation(&mounted, &opts, &dest)?;
    }
    Ok(())
}

fn mount_call(typ: &str) -> &'static str {
    match typ {
        "proc" => "mount proc",
        "sysfs" => "mount sysfs",
        "tmpfs" => "mount tmpfs",
        "devpts" => "mount devpts",
        "mqueue" => "mount mqueue",
        _ => "mount",
    }
}

pub(crate) fn bind_mount(
    ctx: &MountContext,
    source: &Path,
    dest: &Path,
    opts: &MountOptions,
    index: usize,
) -> Result<()> {
    let prepared = ctx.prepared.and_then(|p| p.get(index));
    if opts.idmap.is_some() && prepared.is_none() {
        return Err(RuntimeError::spec(
            format!("mounts[{index}].options"),
            "idmap needs a container with a new user namespace (linux.namespaces and its mappings)",
        ));
    }
    let is_dir = match prepared {
        Some(tree) => {
            nix::sys::stat::fstat(tree.as_raw_fd())
                .map_err(|e| RuntimeError::sys("stat bind mount source", source.display(), e))?
                .st_mode
                & libc::S_IFMT
                == libc::S_IFDIR
        }
        None => std::fs::metadata(source)
            .map_err(|e| RuntimeError::io("stat bind mount source", source, e))?
            .is_dir(),
    };
    let target = if is_dir {
        safe_path::mkdir_all_in_root(ctx.root, dest, 0o755)?
    } else {
        safe_path::create_file_in_root(ctx.root, dest, 0o644)?
    };
    let field = format!("mounts[{index}].destination");
    check_resolved_destination(ctx, &target, dest, "bind", true, &field)?;
    let made;
    let tree = match prepared {
        Some(tree) => tree,
        None => {
            made = bind_tree(source, opts, dest, index)?;
            &made
        }
    };
    mount_api::move_mount(tree, target.as_raw_fd())
        .map_err(|e| RuntimeError::sys("move_mount", dest.display(), e))
}

/// Binds `source` onto the already resolved `target` (`dest` names it in
/// errors).
pub(crate) fn bind_onto(
    source: &Path,
    target: &OwnedFd,
    dest: &Path,
    opts: &MountOptions,
    index: usize,
) -> Result<()> {
    let tree = bind_tree(source, opts, dest, index)?;
    mount_api::move_mount(&tree, target.as_raw_fd())
        .map_err(|e| RuntimeError::sys("move_mount", dest.display(), e))
}

/// A detached clone of bind source `source`, with the attributes and
/// propagation of `opts` set (`dest` names it in errors), ready to be
/// moved onto its target.
pub(crate) fn bind_tree(
    source: &Path,
    opts: &MountOptions,
    dest: &Path,
    index: usize,
) -> Result<OwnedFd> {
    let tree = mount_api::open_tree(libc::AT_FDCWD, source, opts.rec)
        .map_err(|e| RuntimeError::sys("open_tree", source.display(), e))?;
    let attr = opts.bind_attr();
    if !attr.is_empty() {
        mount_api::mount_setattr(&tree, &attr, false).map_err(|e| {
            RuntimeError::sys(
                "mount_setattr",
                format!("{} (mounts[{index}])", dest.display()),
                e,
            )
        })?;
    }
    apply_propagation(&tree, opts, dest)?;
    Ok(tree)
}

fn apply_propagation(mounted: &OwnedFd, opts: &MountOptions, dest: &Path) -> Result<()> {
    if !opts.recursive.is_empty() {
        mount_api::mount_setattr(mounted, &opts.recursive, true)
            .map_err(|e| RuntimeError::sys("mount_setattr (recursive)", dest.display(), e))?;
    }
    for p in &opts.propagation {
        let attr = MountAttr {
            propagation: p & !libc::MS_REC,
            ..Default::default()
        };
        mount_api::mount_setattr(mounted, &attr, p & libc::MS_REC != 0)
            .map_err(|e| RuntimeError::sys("set mount propagation", dest.display(), e))?;
    }
    Ok(())
}

/// Refuses mounts over /proc that would hide or fake kernel interfaces
/// (CVE-2019-16884 family): only procfs itself at /proc and binds over a few
/// well-known informational files are allowed.
fn check_proc_destination(dest: &Path, typ: &str, bind: bool, field: &str) -> Result<()> {
    if dest == Path::new("/proc") {
        if typ == "proc" {
            return Ok(());
        }
        return Err(RuntimeError::spec(
            field,
            format!("/proc can only be mounted as type \"proc\", not {typ:?}"),
        ));
    }
    if dest.starts_with("/proc") {
        if bind && PROC_BIND_ALLOWED.iter().any(|p| dest == Path::new(p)) {
            return Ok(());
        }
        return Err(RuntimeError::spec(
            field,
            format!(
                "{} is inside /proc: mounting over procfs is not allowed",
                dest.display()
            ),
        ));
    }
    Ok(())
}

/// The same check on where `target` (the destination resolved inside the
/// root, symlinks followed within it) really is: an image's `/evil ->
/// /proc` makes `/evil/sys` lexically harmless but resolve into procfs. A
/// target on procfs is refused unless it is an allowed bind over /proc;
/// a target whose place cannot be told is refused too.
pub(crate) fn check_resolved_destination(
    ctx: &MountContext,
    target: &OwnedFd,
    dest: &Path,
    typ: &str,
    bind: bool,
    field: &str,
) -> Result<()> {
    let link = |fd: RawFd| std::fs::read_link(format!("/proc/self/fd/{fd}"));
    let real = match (link(ctx.root), link(target.as_raw_fd())) {
        (Ok(root), Ok(t)) => t
            .strip_prefix(&root)
            .ok()
            .map(|rel| Path::new("/").join(rel)),
        _ => None,
    };
    let Some(real) = real else {
        return Err(RuntimeError::spec(
            field,
            format!(
                "{} resolves outside the container root; refusing to mount there",
                dest.display()
            ),
        ));
    };
    if real != dest {
        check_proc_destination(&real, typ, bind, field).map_err(|_| {
            RuntimeError::spec(
                field,
                format!(
                    "{} resolves to {} (through a symlink in the root): mounting over procfs is not allowed",
                    dest.display(),
                    real.display()
                ),
            )
        })?;
    }
    let on_proc = berth_fs::is_procfs(target.as_raw_fd())
        .map_err(|e| RuntimeError::sys("fstatfs", dest.display(), e))?;
    let allowed = bind && PROC_BIND_ALLOWED.iter().any(|p| real == Path::new(p));
    if on_proc && !allowed {
        return Err(RuntimeError::spec(
            field,
            format!(
                "{} is on procfs: mounting over procfs is not allowed",
                dest.display()
            ),
        ));
    }
    Ok(())
}

/// Lexically cleans an absolute path (`//a/./b/../c` → `/a/c`), without touching the filesystem.
pub fn clean(p: &Path) -> PathBuf {
    let mut out = PathBuf::from("/");
    for c in p.components() {
        match c {
            std::path::Component::Normal(n) => out.push(n),
            std::path::Component::ParentDir => {
                out.pop();
            }
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(v: &[&str]) -> MountOptions {
        MountOptions::parse(&v.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap()
    }

    #[test]
    fn flags_and_data_are_split() {
        let o = opts(&["nosuid", "noexec", "mode=755", "size=65536k", "ro"]);
        assert_eq!(o.flags, libc::MS_NOSUID | libc::MS_NOEXEC | libc::MS_RDONLY);
        assert_eq!(o.data().as_deref(), Some("mode=755,size=65536k"));
        assert!(!o.bind);
    }

    #[test]
    fn later_option_wins() {
        let o = opts(&["ro", "rw"]);
        assert_eq!(o.flags & libc::MS_RDONLY, 0);
        assert_ne!(o.clear & libc::MS_RDONLY, 0);
    }

    #[test]
    fn rbind_and_propagation() {
        let o = opts(&["rbind", "rprivate", "rro"]);
        assert!(o.bind && o.rec);
        assert_eq!(o.propagation, vec![libc::MS_PRIVATE | libc::MS_REC]);
        assert_eq!(o.recursive.attr_set, mount_api::MOUNT_ATTR_RDONLY);
    }

    #[test]
    fn idmap_options_are_parsed() {
        assert_eq!(opts(&["bind", "idmap"]).idmap, Some(false));
        assert_eq!(opts(&["rbind", "ridmap"]).idmap, Some(true));
        assert_eq!(opts(&["bind"]).idmap, None);
    }

    #[test]
    fn proc_overmounts_are_refused() {
        assert!(check_proc_destination(Path::new("/proc"), "proc", false, "f").is_ok());
        assert!(check_proc_destination(Path::new("/proc"), "tmpfs", false, "f").is_err());
        assert!(check_proc_destination(Path::new("/proc/self"), "tmpfs", false, "f").is_err());
        assert!(check_proc_destination(Path::new("/proc/meminfo"), "bind", true, "f").is_ok());
        assert!(check_proc_destination(Path::new("/proc/sys"), "bind", true, "f").is_err());
    }

    #[test]
    fn clean_paths() {
        assert_eq!(clean(Path::new("//a/./b/../c")), PathBuf::from("/a/c"));
        assert_eq!(clean(Path::new("/../..")), PathBuf::from("/"));
    }
}
