//! Docker's namespace flags: `--network none|host|container:NAME`,
//! `--ipc private|shareable|none|host|container:NAME`, `--pid
//! host|container:NAME`, `--uts host`, `--cgroupns private|host` and
//! `--userns host` (remapping: [`crate::userns`]). `host` leaves the container in the host's namespace
//! (the spec lists none of that kind); `container:NAME` joins the
//! namespace of another running container's init, by its
//! `/proc/<pid>/ns/…` path. A user-defined network (`--network NAME`)
//! is a private namespace that the engine sets up ([`crate::net_setup`]).
//! A network namespace of the container's own gets Docker's sysctls
//! ([`NETWORK_SYSCTLS`]).

use oci_spec::runtime::{LinuxNamespace, LinuxNamespaceBuilder, LinuxNamespaceType, Spec};

use crate::error::{invalid, EngineError};

/// The sysctls Docker sets in a container's own network namespace.
pub const NETWORK_SYSCTLS: [(&str, &str); 2] = [
    ("net.ipv4.ping_group_range", "0 2147483647"),
    ("net.ipv4.ip_unprivileged_port_start", "0"),
];

/// The namespace flags of one run (None: the default).
#[derive(Debug, Clone, Default)]
pub struct NamespaceFlags {
    /// `--network` (`--net`).
    pub network: Option<String>,
    /// `--ipc`.
    pub ipc: Option<String>,
    /// `--pid`.
    pub pid: Option<String>,
    /// `--uts`.
    pub uts: Option<String>,
    /// `--cgroupns`.
    pub cgroupns: Option<String>,
    /// `--userns`.
    pub userns: Option<String>,
    /// `--uidmap C:H:N` (repeatable).
    pub uidmap: Vec<String>,
    /// `--gidmap C:H:N` (repeatable).
    pub gidmap: Vec<String>,
}

/// What one flag asks of its namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Choice {
    /// A new namespace of its own (the default).
    Private,
    /// The host's.
    Host,
    /// That of container NAME's init.
    Container(String),
}

fn choice(option: &'static str, value: &str, private: &[&str]) -> Result<Choice, EngineError> {
    if value == "host" {
        return Ok(Choice::Host);
    }
    if let Some(name) = value.strip_prefix("container:") {
        if name.is_empty() {
            return Err(invalid(
                option,
                value,
                "container: needs a container name or id",
            ));
        }
        return Ok(Choice::Container(name.to_string()));
    }
    if private.contains(&value) {
        return Ok(Choice::Private);
    }
    Err(invalid(
        option,
        value,
        format!("expected {}, host or container:NAME", private.join(", ")),
    ))
}

impl NamespaceFlags {
    /// Each flag's kind and choice, checked.
    fn choices(&self) -> Result<Vec<(LinuxNamespaceType, Choice)>, EngineError> {
        let mut out = vec![];
        if let Some(n) = &self.network {
            // A network of the engine's gets a namespace of its own, which
            // the engine pins and sets up (crate::net_setup).
            let c = if crate::networks::is_user_network(n) {
                Choice::Private
            } else {
                choice("--network", n, &["none"])?
            };
            out.push((LinuxNamespaceType::Network, c));
        }
        if let Some(v) = &self.ipc {
            out.push((
                LinuxNamespaceType::Ipc,
                choice("--ipc", v, &["private", "shareable", "none", ""])?,
            ));
        }
        if let Some(v) = &self.pid {
            out.push((
                LinuxNamespaceType::Pid,
                choice("--pid", v, &["private", ""])?,
            ));
        }
        if let Some(v) = &self.uts {
            let c = choice("--uts", v, &["private", ""])?;
            if matches!(c, Choice::Container(_)) {
                return Err(invalid("--uts", v, "expected host"));
            }
            out.push((LinuxNamespaceType::Uts, c));
        }
        if let Some(v) = &self.cgroupns {
            let c = choice("--cgroupns", v, &["private"])?;
            if matches!(c, Choice::Container(_)) {
                return Err(invalid("--cgroupns", v, "expected private or host"));
            }
            out.push((LinuxNamespaceType::Cgroup, c));
        }
        // The user namespace is set up with its mappings (crate::userns).
        self.userns_request()?;
        Ok(out)
    }

    /// What `--userns`, `--uidmap` and `--gidmap` ask for.
    pub fn userns_request(&self) -> Result<crate::userns::UsernsRequest, EngineError> {
        crate::userns::UsernsRequest::parse(self.userns.as_deref(), &self.uidmap, &self.gidmap)
    }

    /// The containers these flags join (`container:NAME`).
    pub fn joined(&self) -> Result<Vec<String>, EngineError> {
        Ok(self
            .choices()?
            .into_iter()
            .filter_map(|(_, c)| match c {
                Choice::Container(n) => Some(n),
                _ => None,
            })
            .collect())
    }
}

/// Applies the flags to `spec`. `init_pid` gives the host pid of a
/// running container's init (for `container:NAME`).
pub fn apply(
    spec: &mut Spec,
    f: &NamespaceFlags,
    init_pid: &dyn Fn(&str) -> Result<i32, EngineError>,
) -> Result<(), EngineError> {
    let choices = f.choices()?;
    let mut linux = spec.linux().clone().unwrap_or_default();
    let mut namespaces: Vec<LinuxNamespace> = linux.namespaces().clone().unwrap_or_default();
    for (kind, c) in &choices {
        namespaces.retain(|n| n.typ() != *kind);
        let path: Option<std::path::PathBuf> = match c {
            Choice::Host => continue,
            Choice::Private => None,
            Choice::Container(name) => {
                let pid = init_pid(name)?;
                let file = match kind {
                    LinuxNamespaceType::Network => "net",
                    LinuxNamespaceType::Ipc => "ipc",
                    LinuxNamespaceType::Pid => "pid",
                    _ => unreachable!("checked in choices()"),
                };
                Some(format!("/proc/{pid}/ns/{file}").into())
            }
        };
        let mut b = LinuxNamespaceBuilder::default().typ(*kind);
        if let Some(p) = path {
            b = b.path(p);
        }
        namespaces.push(b.build().map_err(|e| EngineError::Spec(e.to_string()))?);
    }
    let own_network = namespaces
        .iter()
        .any(|n| n.typ() == LinuxNamespaceType::Network && n.path().is_none());
    linux.set_namespaces(Some(namespaces));
    if own_network {
        // As Docker, in a network namespace of the container's own: ping
        // without CAP_NET_RAW and ports below 1024 without
        // CAP_NET_BIND_SERVICE (a `--sysctl` given keeps its value).
        let mut sysctls = linux.sysctl().clone().unwrap_or_default();
        for (k, v) in NETWORK_SYSCTLS {
            let known = std::path::Path::new("/proc/sys").join(k.replace('.', "/"));
            if known.exists() {
                sysctls
                    .entry(k.to_string())
                    .or_insert_with(|| v.to_string());
            }
        }
        linux.set_sysctl(Some(sysctls));
    }
    spec.set_linux(Some(linux));
    let host = |k: LinuxNamespaceType| choices.iter().any(|(t, c)| *t == k && *c == Choice::Host);
    if host(LinuxNamespaceType::Uts) {
        // The host's name is the host's: a container may not set it.
        spec.set_hostname(None);
    }
    if host(LinuxNamespaceType::Ipc) || f.ipc.as_deref() == Some("none") {
        // --ipc host shares the host's /dev/shm; none has no /dev/shm.
        let mut mounts = spec.mounts().clone().unwrap_or_default();
        mounts.retain(|m| m.destination() != std::path::Path::new("/dev/shm"));
        if host(LinuxNamespaceType::Ipc) {
            mounts.push(
                oci_spec::runtime::MountBuilder::default()
                    .destination("/dev/shm")
                    .typ("bind")
                    .source("/dev/shm")
                    .options(vec![
                        "rbind".into(),
                        "rprivate".into(),
                        "nosuid".into(),
                        "nodev".into(),
                        "noexec".into(),
                    ])
                    .build()
                    .map_err(|e| EngineError::Spec(e.to_string()))?,
            );
        }
        spec.set_mounts(Some(mounts));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(s: &Spec) -> Vec<(LinuxNamespaceType, Option<String>)> {
        s.linux()
            .as_ref()
            .unwrap()
            .namespaces()
            .clone()
            .unwrap()
            .iter()
            .map(|n| (n.typ(), n.path().as_ref().map(|p| p.display().to_string())))
            .collect()
    }

    #[test]
    fn host_leaves_and_container_joins() {
        let mut s = runtime::spec_default::default_spec(false).unwrap();
        s.set_hostname(Some("h".into()));
        let f = NamespaceFlags {
            network: Some("host".into()),
            uts: Some("host".into()),
            ipc: Some("container:db".into()),
            pid: Some("container:db".into()),
            ..Default::default()
        };
        apply(&mut s, &f, &|name| {
            assert_eq!(name, "db");
            Ok(4242)
        })
        .unwrap();
        let k = kinds(&s);
        assert!(!k.iter().any(|(t, _)| *t == LinuxNamespaceType::Network));
        assert!(!k.iter().any(|(t, _)| *t == LinuxNamespaceType::Uts));
        assert!(k.contains(&(LinuxNamespaceType::Ipc, Some("/proc/4242/ns/ipc".into()))));
        assert!(k.contains(&(LinuxNamespaceType::Pid, Some("/proc/4242/ns/pid".into()))));
        assert!(k.contains(&(LinuxNamespaceType::Mount, None)));
        assert_eq!(s.hostname(), &None);
        assert_eq!(f.joined().unwrap(), ["db", "db"]);
    }

    #[test]
    fn bad_and_missing_choices_say_so() {
        let run = |f: NamespaceFlags| {
            apply(
                &mut runtime::spec_default::default_spec(false).unwrap(),
                &f,
                &|_| Ok(1),
            )
            .unwrap_err()
        };
        let e = run(NamespaceFlags {
            ipc: Some("sideways".into()),
            ..Default::default()
        });
        assert!(e.to_string().contains("--ipc"), "{e}");
        let e = run(NamespaceFlags {
            uts: Some("container:x".into()),
            ..Default::default()
        });
        assert!(e.to_string().contains("--uts"), "{e}");
        let e = run(NamespaceFlags {
            userns: Some("sideways".into()),
            ..Default::default()
        });
        assert!(e.to_string().contains("--userns"), "{e}");
    }
}
