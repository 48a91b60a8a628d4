//! User namespace remapping: `--userns auto|keep-id|host` and
//! `--uidmap`/`--gidmap` (Podman's flags). A remapped container's root is
//! an unprivileged host id: a process that escapes the container owns
//! nothing on the host.
//!
//! - `auto[:size=N]`: a block of N host ids (65536 by default) that no
//!   other container of this store holds, from the pool that
//!   `/etc/subuid` and `/etc/subgid` give user `containers` (Podman's
//!   convention), else from [`DEFAULT_POOL`].
//! - `keep-id[:uid=U,gid=G]`: a host user keeps its ids: host uid H is
//!   uid U inside (U is H unless given) and the container runs as U:G
//!   unless `--user` says otherwise; every other id, root included, comes
//!   from an `auto` block. H is the calling user, or, for root, the user
//!   who ran `sudo` (`SUDO_UID`/`SUDO_GID`), so files it writes to a bind
//!   mount are that user's on the host.
//! - `--uidmap C:H:N` / `--gidmap C:H:N` (repeatable): the mapping as
//!   given (a gid map defaults to the uid map and back).
//!
//! The root filesystem and the volumes are idmapped mounts
//! ([`crate::rootfs`], the runtime's `idmap` option), so the image's files
//! and a volume's stay on disk as they are and show as the container's own.

use berth_fs::idmap::IdRange;
use serde::{Deserialize, Serialize};

use crate::error::{invalid, EngineError};

/// Host ids `auto` takes blocks from when `/etc/subuid` has no range for
/// user `containers`: (first, count), the upper half of the 32-bit ids.
pub const DEFAULT_POOL: (u32, u32) = (1 << 31, (1 << 31) - 2);

/// The default size of an `auto` block.
pub const DEFAULT_SIZE: u32 = 65536;

/// A container's id mappings, as recorded with it.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct IdMappings {
    /// `--userns` as given (`auto`, `keep-id`, or empty for explicit maps).
    #[serde(rename = "Mode", default)]
    pub mode: String,
    /// Uid ranges: [container, host, size].
    #[serde(rename = "Uids")]
    pub uids: Vec<[u32; 3]>,
    /// Gid ranges.
    #[serde(rename = "Gids")]
    pub gids: Vec<[u32; 3]>,
}

fn to_ranges(v: &[[u32; 3]]) -> Vec<IdRange> {
    v.iter()
        .map(|r| IdRange {
            container: r[0],
            host: r[1],
            size: r[2],
        })
        .collect()
}

impl IdMappings {
    /// The uid ranges.
    pub fn uid_ranges(&self) -> Vec<IdRange> {
        to_ranges(&self.uids)
    }

    /// The gid ranges.
    pub fn gid_ranges(&self) -> Vec<IdRange> {
        to_ranges(&self.gids)
    }

    /// The host uid and gid of the container's root.
    pub fn host_root(&self) -> Option<(u32, u32)> {
        Some((
            berth_fs::idmap::to_host(&self.uid_ranges(), 0)?,
            berth_fs::idmap::to_host(&self.gid_ranges(), 0)?,
        ))
    }

    /// Every host id range the mapping holds (uids and gids).
    fn host_spans(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        self.uids
            .iter()
            .chain(self.gids.iter())
            .map(|r| (r[1] as u64, r[1] as u64 + r[2] as u64))
    }
}

/// What `--userns` (with `--uidmap`/`--gidmap`) asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UsernsRequest {
    /// The host's user namespace (the default).
    Host,
    /// A free block of `size` ids.
    Auto {
        /// How many ids.
        size: u32,
    },
    /// The host user's ids kept at (uid, gid) inside (None: the same numbers).
    KeepId {
        /// uid= inside.
        uid: Option<u32>,
        /// gid= inside.
        gid: Option<u32>,
    },
    /// The maps as given.
    Explicit(IdMappings),
}

/// `key=value` options after `auto:` or `keep-id:`.
fn options<'a>(
    value: &'a str,
    rest: &'a str,
    known: &[&str],
) -> Result<Vec<(&'a str, u32)>, EngineError> {
    let mut out = vec![];
    for item in rest.split(',').filter(|s| !s.is_empty()) {
        let (k, v) = item
            .split_once('=')
            .ok_or_else(|| invalid("--userns", value, format!("{item:?} is not key=value")))?;
        if !known.contains(&k) {
            return Err(invalid(
                "--userns",
                value,
                format!("unknown option {k:?} (expected {})", known.join(", ")),
            ));
        }
        let n = v
            .parse::<u32>()
            .map_err(|_| invalid("--userns", value, format!("{k}={v:?} is not a number")))?;
        out.push((k, n));
    }
    Ok(out)
}

/// One `C:H:N` of `--uidmap` or `--gidmap`.
fn parse_range(option: &'static str, value: &str) -> Result<[u32; 3], EngineError> {
    let parts: Vec<&str> = value.split(':').collect();
    let nums: Option<Vec<u32>> = parts.iter().map(|p| p.parse().ok()).collect();
    match nums.as_deref() {
        Some([c, h, n]) if *n > 0 => {
            if (*c as u64 + *n as u64) > u32::MAX as u64
                || (*h as u64 + *n as u64) > u32::MAX as u64
            {
                return Err(invalid(option, value, "the range passes the largest id"));
            }
            Ok([*c, *h, *n])
        }
        Some([_, _, 0]) => Err(invalid(option, value, "the size must be at least 1")),
        _ => Err(invalid(
            option,
            value,
            "expected CONTAINER_ID:HOST_ID:SIZE (numbers)",
        )),
    }
}

fn check_disjoint(option: &'static str, ranges: &[[u32; 3]]) -> Result<(), EngineError> {
    for (i, a) in ranges.iter().enumerate() {
        for b in &ranges[i + 1..] {
            let overlap = |x: u32, y: u32| {
                (x as u64) < y as u64 + b[2] as u64 && (y as u64) < x as u64 + a[2] as u64
            };
            if overlap(a[0], b[0]) || overlap(a[1], b[1]) {
                return Err(invalid(
                    option,
                    &format!("{}:{}:{}", b[0], b[1], b[2]),
                    format!("overlaps {}:{}:{}", a[0], a[1], a[2]),
                ));
            }
        }
    }
    Ok(())
}

impl UsernsRequest {
    /// Parses `--userns` and the map flags.
    pub fn parse(
        userns: Option<&str>,
        uidmap: &[String],
        gidmap: &[String],
    ) -> Result<Self, EngineError> {
        if !uidmap.is_empty() || !gidmap.is_empty() {
            if let Some(v) = userns.filter(|v| !v.is_empty()) {
                return Err(invalid(
                    "--userns",
                    v,
                    "--uidmap and --gidmap give the mapping: leave --userns out",
                ));
            }
            let uids = uidmap
                .iter()
                .map(|v| parse_range("--uidmap", v))
                .collect::<Result<Vec<_>, _>>()?;
            let gids = gidmap
                .iter()
                .map(|v| parse_range("--gidmap", v))
                .collect::<Result<Vec<_>, _>>()?;
            let (uids, gids) = match (uids.is_empty(), gids.is_empty()) {
                (true, _) => (gids.clone(), gids),
                (_, true) => (uids.clone(), uids),
                _ => (uids, gids),
            };
            check_disjoint("--uidmap", &uids)?;
            check_disjoint("--gidmap", &gids)?;
            let m = IdMappings {
                mode: String::new(),
                uids,
                gids,
            };
            if m.host_root().is_none() {
                return Err(invalid(
                    "--uidmap",
                    &uidmap.join(" "),
                    "the mapping must give the container's root (uid and gid 0) a host id",
                ));
            }
            return Ok(Self::Explicit(m));
        }
        let Some(value) = userns else {
            return Ok(Self::Host);
        };
        let (kind, rest) = value.split_once(':').unwrap_or((value, ""));
        match kind {
            "" | "host" if rest.is_empty() => Ok(Self::Host),
            "auto" => {
                let mut size = DEFAULT_SIZE;
                for (_, n) in options(value, rest, &["size"])? {
                    size = n;
                }
                if size == 0 || size > DEFAULT_POOL.1 {
                    return Err(invalid("--userns", value, "size must be 1 or more"));
                }
                Ok(Self::Auto { size })
            }
            "keep-id" => {
                let (mut uid, mut gid) = (None, None);
                for (k, n) in options(value, rest, &["uid", "gid"])? {
                    match k {
                        "uid" => uid = Some(n),
                        _ => gid = Some(n),
                    }
                }
                Ok(Self::KeepId { uid, gid })
            }
            _ => Err(invalid(
                "--userns",
                value,
                "expected host, auto[:size=N] or keep-id[:uid=U,gid=G]",
            )),
        }
    }

    /// Whether the container gets a user namespace of its own.
    pub fn is_private(&self) -> bool {
        !matches!(self, Self::Host)
    }
}

/// The pool `auto` takes from: user `containers`'s first range in `text`
/// (`/etc/subuid` or `/etc/subgid`), else [`DEFAULT_POOL`].
pub fn pool_from(text: &str) -> (u32, u32) {
    text.lines()
        .filter_map(|l| {
            let mut f = l.trim().split(':');
            let (user, start, count) = (f.next()?, f.next()?, f.next()?);
            (user == "containers").then_some(())?;
            Some((start.parse().ok()?, count.parse().ok()?))
        })
        .next()
        .unwrap_or(DEFAULT_POOL)
}

fn read_pool(file: &str) -> (u32, u32) {
    pool_from(&std::fs::read_to_string(file).unwrap_or_default())
}

/// The first block of `size` host ids in `pool` that overlaps none of
/// `taken` (host [start, end) spans).
pub fn free_block(pool: (u32, u32), size: u32, taken: &[(u64, u64)]) -> Option<u32> {
    let (first, count) = (pool.0 as u64, pool.1 as u64);
    let mut spans: Vec<(u64, u64)> = taken.to_vec();
    spans.sort();
    let mut at = first;
    for (s, e) in spans {
        if e <= at {
            continue;
        }
        if s >= at + size as u64 {
            break;
        }
        at = e;
    }
    (at + size as u64 <= first + count).then_some(at as u32)
}

/// The host user `keep-id` keeps: the caller, or for root the user who ran
/// sudo (`sudo_uid`, `sudo_gid` from SUDO_UID and SUDO_GID).
pub fn kept_user(
    euid: u32,
    egid: u32,
    sudo_uid: Option<&str>,
    sudo_gid: Option<&str>,
) -> Result<(u32, u32), EngineError> {
    if euid != 0 {
        return Ok((euid, egid));
    }
    let parse = |v: Option<&str>| v.and_then(|s| s.parse::<u32>().ok()).filter(|&n| n != 0);
    match (parse(sudo_uid), parse(sudo_gid)) {
        (Some(u), Some(g)) => Ok((u, g)),
        _ => Err(invalid(
            "--userns",
            "keep-id",
            "keep-id keeps a user's ids, and berth runs as root: run it as that user, \
             under sudo, or map the ids with --uidmap/--gidmap",
        )),
    }
}

/// Ids [0, size) inside from `base` on the host, except `keep` inside,
/// which is host id `host`.
fn with_hole(base: u32, size: u32, keep: u32, host: u32) -> Vec<[u32; 3]> {
    let mut v = vec![];
    if keep > 0 {
        v.push([0, base, keep.min(size)]);
    }
    v.push([keep, host, 1]);
    if keep + 1 < size {
        v.push([keep + 1, base + keep, size - keep - 1]);
    }
    v
}

impl UsernsRequest {
    /// The mappings for a new container, given the host ranges other
    /// containers hold (`taken`). None for `host`. The caller holds the
    /// allocation lock until the container is recorded.
    pub fn allocate(
        &self,
        taken: &[IdMappings],
        caller: (u32, u32),
        sudo: (Option<&str>, Option<&str>),
    ) -> Result<Option<IdMappings>, EngineError> {
        let spans: Vec<(u64, u64)> = taken.iter().flat_map(|m| m.host_spans()).collect();
        let block = |size: u32, what: &str| -> Result<(u32, u32), EngineError> {
            let (pu, pg) = (read_pool("/etc/subuid"), read_pool("/etc/subgid"));
            let u = free_block(pu, size, &spans);
            let g = free_block(pg, size, &spans);
            match (u, g) {
                (Some(u), Some(g)) => Ok((u, g)),
                _ => Err(invalid(
                    "--userns",
                    what,
                    format!("no free block of {size} ids is left in the pool (/etc/subuid and /etc/subgid for user containers)"),
                )),
            }
        };
        Ok(match self {
            Self::Host => None,
            Self::Explicit(m) => Some(m.clone()),
            Self::Auto { size } => {
                let (u, g) = block(*size, "auto")?;
                Some(IdMappings {
                    mode: "auto".into(),
                    uids: vec![[0, u, *size]],
                    gids: vec![[0, g, *size]],
                })
            }
            Self::KeepId { uid, gid } => {
                let (hu, hg) = kept_user(caller.0, caller.1, sudo.0, sudo.1)?;
                let (iu, ig) = (uid.unwrap_or(hu), gid.unwrap_or(hg));
                let size = DEFAULT_SIZE.max(iu.max(ig).saturating_add(1));
                let (u, g) = block(size, "keep-id")?;
                Some(IdMappings {
                    mode: "keep-id".into(),
                    uids: with_hole(u, size, iu, hu),
                    gids: with_hole(g, size, ig, hg),
                })
            }
        })
    }

    /// The user the container runs as when `--user` is not given:
    /// `keep-id`'s kept ids.
    pub fn default_user(&self, mappings: Option<&IdMappings>) -> Option<String> {
        match (self, mappings) {
            (Self::KeepId { .. }, Some(m)) => {
                // The one-id range is the kept user's.
                let u = m.uids.iter().find(|r| r[2] == 1 && r[0] != 0)?;
                let g = m.gids.iter().find(|r| r[2] == 1 && r[0] != 0)?;
                Some(format!("{}:{}", u[0], g[0]))
            }
            _ => None,
        }
    }
}

/// Holds the id allocation of `root`'s store while a run picks its block
/// and records it.
pub(crate) fn allocation_lock(
    root: &std::path::Path,
) -> Result<nix::fcntl::Flock<std::fs::File>, EngineError> {
    let path = root.join("userns.lock");
    let io = |err: std::io::Error| EngineError::Io {
        op: "lock",
        path: path.clone(),
        err,
    };
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(io)?;
    nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusive)
        .map_err(|(_, e)| io(e.into()))
}

/// The mappings the store's containers hold.
pub(crate) fn taken(db: &crate::store::Store) -> Result<Vec<IdMappings>, EngineError> {
    Ok(db
        .list()?
        .iter()
        .filter_map(|r| crate::restart::ContainerSettings::parse(&r.config).id_mappings)
        .collect())
}

/// Gives `spec` a user namespace with `m`'s mappings, and makes every bind
/// mount whose source is in the store under `root` (volumes, the files
/// the engine writes for the container, berth-init) an idmapped one, so
/// the container's root owns what the store's root owns. Binds of host
/// paths keep the host's ids (they show as the overflow id, 65534, where
/// unmapped).
pub fn apply(
    spec: &mut oci_spec::runtime::Spec,
    m: &IdMappings,
    root: &std::path::Path,
) -> Result<(), EngineError> {
    use oci_spec::runtime::{LinuxIdMappingBuilder, LinuxNamespaceBuilder, LinuxNamespaceType};
    let spec_err = |e: oci_spec::OciSpecError| EngineError::Spec(e.to_string());
    let maps = |v: &[[u32; 3]]| {
        v.iter()
            .map(|r| {
                LinuxIdMappingBuilder::default()
                    .container_id(r[0])
                    .host_id(r[1])
                    .size(r[2])
                    .build()
            })
            .collect::<Result<Vec<_>, _>>()
    };
    let mut linux = spec.linux().clone().unwrap_or_default();
    let mut namespaces = linux.namespaces().clone().unwrap_or_default();
    namespaces.retain(|n| n.typ() != LinuxNamespaceType::User);
    namespaces.push(
        LinuxNamespaceBuilder::default()
            .typ(LinuxNamespaceType::User)
            .build()
            .map_err(spec_err)?,
    );
    linux.set_namespaces(Some(namespaces));
    linux.set_uid_mappings(Some(maps(&m.uids).map_err(spec_err)?));
    linux.set_gid_mappings(Some(maps(&m.gids).map_err(spec_err)?));
    if let Some(mut sysctls) = linux.sysctl().clone() {
        // The kernel refuses a ping group range whose ends the user
        // namespace does not map: Docker's range is cut to the mapped
        // block that holds group 0 (and left out when none does).
        let key = "net.ipv4.ping_group_range";
        if sysctls.get(key).is_some_and(|v| v == "0 2147483647") {
            match m.gids.iter().find(|r| r[0] == 0) {
                Some(r) => sysctls.insert(key.into(), format!("0 {}", r[2].saturating_sub(1))),
                None => sysctls.remove(key),
            };
        }
        linux.set_sysctl(Some(sysctls));
    }
    spec.set_linux(Some(linux));
    let mut mounts = spec.mounts().clone().unwrap_or_default();
    for mount in &mut mounts {
        let mut options = mount.options().clone().unwrap_or_default();
        let bind = mount.typ().as_deref() == Some("bind")
            || options.iter().any(|o| o == "bind" || o == "rbind");
        let in_store = mount.source().as_ref().is_some_and(|s| s.starts_with(root));
        if bind && in_store && !options.iter().any(|o| o == "idmap" || o == "ridmap") {
            options.push("idmap".into());
            mount.set_options(Some(options));
        }
    }
    spec.set_mounts(Some(mounts));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(v: &str) -> Result<UsernsRequest, EngineError> {
        UsernsRequest::parse(Some(v), &[], &[])
    }

    #[test]
    fn values_parse_and_bad_ones_are_named() {
        assert_eq!(parse("host").unwrap(), UsernsRequest::Host);
        assert_eq!(parse("auto").unwrap(), UsernsRequest::Auto { size: 65536 });
        assert_eq!(
            parse("auto:size=1024").unwrap(),
            UsernsRequest::Auto { size: 1024 }
        );
        assert_eq!(
            parse("keep-id:uid=7,gid=8").unwrap(),
            UsernsRequest::KeepId {
                uid: Some(7),
                gid: Some(8)
            }
        );
        for bad in [
            "sideways",
            "auto:size=0",
            "auto:size=x",
            "auto:big=1",
            "keep-id:uid",
        ] {
            let e = parse(bad).unwrap_err().to_string();
            assert!(e.contains("--userns") && e.contains(bad), "{e}");
        }
    }

    #[test]
    fn explicit_maps_are_checked() {
        let m = UsernsRequest::parse(None, &["0:100000:1000".into()], &[]).unwrap();
        let UsernsRequest::Explicit(m) = m else {
            panic!()
        };
        assert_eq!(m.gids, m.uids);
        assert_eq!(m.host_root(), Some((100000, 100000)));
        for bad in ["0:1", "a:b:c", "0:1:0", "0:4294967295:2"] {
            assert!(
                UsernsRequest::parse(None, &[bad.into()], &[]).is_err(),
                "{bad}"
            );
        }
        let e = UsernsRequest::parse(None, &["0:100:10".into(), "5:500:10".into()], &[])
            .unwrap_err()
            .to_string();
        assert!(e.contains("overlaps"), "{e}");
        let e = UsernsRequest::parse(None, &["1:100:10".into()], &[])
            .unwrap_err()
            .to_string();
        assert!(e.contains("root"), "{e}");
        assert!(UsernsRequest::parse(Some("auto"), &["0:1:1".into()], &[]).is_err());
    }

    #[test]
    fn blocks_do_not_overlap_what_is_taken() {
        let pool = (1000, 10_000);
        assert_eq!(free_block(pool, 100, &[]), Some(1000));
        assert_eq!(free_block(pool, 100, &[(1000, 1100)]), Some(1100));
        assert_eq!(
            free_block(pool, 100, &[(1050, 1060), (1200, 1300)]),
            Some(1060)
        );
        assert_eq!(free_block(pool, 100, &[(1000, 11_000)]), None);
        assert_eq!(free_block(pool, 20_000, &[]), None);
        assert_eq!(pool_from("a:1:2\ncontainers:500:600\n"), (500, 600));
        assert_eq!(pool_from(""), DEFAULT_POOL);
    }

    #[test]
    fn keep_id_keeps_the_users_ids_and_maps_the_rest() {
        let r = UsernsRequest::KeepId {
            uid: None,
            gid: None,
        };
        let m = r
            .allocate(&[], (0, 0), (Some("1000"), Some("1001")))
            .unwrap()
            .unwrap();
        assert_eq!(berth_fs::idmap::to_host(&m.uid_ranges(), 1000), Some(1000));
        assert_eq!(berth_fs::idmap::to_host(&m.gid_ranges(), 1001), Some(1001));
        let (root, _) = m.host_root().unwrap();
        assert!(
            root >= DEFAULT_POOL.0
                || root >= pool_from(&std::fs::read_to_string("/etc/subuid").unwrap_or_default()).0
        );
        assert_eq!(r.default_user(Some(&m)).as_deref(), Some("1000:1001"));
        // Root without sudo has no user to keep.
        assert!(r.allocate(&[], (0, 0), (None, None)).is_err());
        // The next auto block avoids this one.
        let next = UsernsRequest::Auto { size: 65536 }
            .allocate(std::slice::from_ref(&m), (0, 0), (None, None))
            .unwrap()
            .unwrap();
        let (a, _) = next.host_root().unwrap();
        assert!(m.uids.iter().all(|r| a as u64 >= r[1] as u64 + r[2] as u64 || (a as u64 + 65536) <= r[1] as u64), "{next:?} {m:?}");
    }
}
