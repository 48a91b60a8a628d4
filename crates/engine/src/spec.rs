//! The OCI spec of a container: berth-runtime's default spec (Docker's
//! capabilities, seccomp profile, masked and read-only paths, its own
//! namespaces, so no network: `--network none`) with the image's run
//! defaults and the user's options applied, as `docker run` combines them.

use std::path::Path;

use oci_spec::runtime::{Mount, Spec};

use crate::error::EngineError;
use crate::image_config::RunDefaults;
use crate::user::ResolvedUser;

/// What a `run` asks for beyond the image.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// `--name` (default: a generated one).
    pub name: Option<String>,
    /// `--rm`: remove the container when it exits.
    pub auto_remove: bool,
    /// `-d`: hand the container to berth-shim and return.
    pub detach: bool,
    /// `-i`: the container's stdin is ours (through its terminal with `-t`).
    pub interactive: bool,
    /// `-t`: the container's stdio is a terminal, copied to ours.
    pub tty: bool,
    /// `--volumes-from CONTAINER[:ro|:rw]`.
    pub volumes_from: Vec<String>,
    /// `--init`: berth-init as PID 1, running the command.
    pub init: bool,
    /// `--health-*` and `--no-healthcheck`.
    pub health: crate::health::HealthFlags,
    /// `--log-driver` (json-file, local, none).
    pub log_driver: Option<String>,
    /// `--log-opt KEY=VALUE`.
    pub log_opts: Vec<String>,
    /// `--detach-keys` (default ctrl-p,ctrl-q) for an attached run.
    pub detach_keys: Option<String>,
    /// `--restart` (no, on-failure[:N], always, unless-stopped).
    pub restart: Option<String>,
    /// `--network`, `--ipc`, `--pid`, `--uts`, `--cgroupns`, `--userns`.
    pub namespaces: crate::namespaces::NamespaceFlags,
    /// `--device HOST[:CONTAINER][:PERMISSIONS]`.
    pub devices: Vec<String>,
    /// `--device-cgroup-rule`.
    pub device_cgroup_rules: Vec<String>,
    /// `--domainname`.
    pub domainname: Option<String>,
    /// `--stop-signal` (default: the image's STOPSIGNAL, else SIGTERM).
    pub stop_signal: Option<String>,
    /// `--stop-timeout` in seconds (default 10).
    pub stop_timeout: Option<i64>,
    /// `--label KEY=VALUE` (and the lines of `--label-file`).
    pub labels: Vec<String>,
    /// `--add-host NAME:IP`.
    pub add_hosts: Vec<String>,
    /// `--ip`: the container's address on its network.
    pub ip: Option<String>,
    /// `--ip6`: its IPv6 address on its (dual-stack) network.
    pub ip6: Option<String>,
    /// `--mac-address`: its MAC address on its (first) network.
    pub mac_address: Option<String>,
    /// Networks after the first `--network` (each a network's name).
    pub more_networks: Vec<String>,
    /// `--network-alias`: more names on its network.
    pub network_aliases: Vec<String>,
    /// `-p`/`--publish`: `[IP:][HOST_PORT:]PORT[/PROTO]`.
    pub publish: Vec<String>,
    /// `-P`/`--publish-all`: every exposed port on a free host port.
    pub publish_all: bool,
    /// `--expose`: ports exposed beyond the image's.
    pub expose: Vec<String>,
    /// `--dns`.
    pub dns: Vec<String>,
    /// `--dns-search`.
    pub dns_search: Vec<String>,
    /// `--dns-option`.
    pub dns_options: Vec<String>,
    /// `--cidfile`: the id is written there once the container exists (the
    /// file must not exist).
    pub cidfile: Option<std::path::PathBuf>,
    /// The command (replaces the image's CMD).
    pub cmd: Vec<String>,
    /// `--entrypoint` (replaces the image's ENTRYPOINT; "" clears it).
    pub entrypoint: Option<String>,
    /// `-e KEY=value` / `-e KEY` (taken from the caller's environment).
    pub env: Vec<String>,
    /// `-w`.
    pub workdir: Option<String>,
    /// `-u`.
    pub user: Option<String>,
    /// `-h`.
    pub hostname: Option<String>,
    /// Resource flags.
    pub limits: crate::limits::Limits,
    /// Mount flags.
    pub mounts: crate::mounts::MountFlags,
    /// Confinement flags.
    pub confinement: crate::confine::Confinement,
}

/// Applies the resource, mount and confinement flags to `spec` (after the
/// user is set: `--group-add` adds to its groups).
pub fn apply_flags(
    spec: &mut Spec,
    opts: &RunOptions,
    init_pid: &dyn Fn(&str) -> Result<i32, EngineError>,
) -> Result<(), EngineError> {
    crate::namespaces::apply(spec, &opts.namespaces, init_pid)?;
    crate::devices::apply(
        spec,
        &opts.devices,
        &opts.device_cgroup_rules,
        opts.confinement.privileged,
    )?;
    if let Some(d) = &opts.domainname {
        spec.set_domainname(Some(d.clone()));
    }
    crate::hosts::check(opts)?;
    if opts.tty {
        if let Some(p) = spec.process_mut() {
            p.set_terminal(Some(true));
        }
    }
    crate::limits::apply(spec, &opts.limits)?;
    crate::mounts::apply(spec, &opts.mounts)?;
    crate::confine::apply(spec, &opts.confinement)
}

/// Checks every flag before anything is made, so a bad one leaves nothing
/// to clean up.
pub fn check_flags(opts: &RunOptions) -> Result<(), EngineError> {
    let policy = crate::restart::RestartPolicy::parse(opts.restart.as_deref().unwrap_or("no"))?;
    if let Some(s) = &opts.stop_signal {
        crate::containers::parse_signal(s).map_err(|_| EngineError::InvalidOption {
            option: "--stop-signal",
            value: s.clone(),
            reason: "not a signal name or number".into(),
        })?;
    }
    crate::volumes::key_values("--label", &opts.labels)?;
    if let Some(f) = opts.cidfile.as_ref().filter(|f| f.exists()) {
        return Err(EngineError::InvalidOption {
            option: "--cidfile",
            value: f.display().to_string(),
            reason: "the file exists: make sure the other container is not running, or remove it"
                .into(),
        });
    }
    if opts.auto_remove && policy != crate::restart::RestartPolicy::No {
        return Err(EngineError::InvalidOption {
            option: "--restart",
            value: opts.restart.clone().unwrap_or_default(),
            reason: "conflicting options: --restart and --rm".into(),
        });
    }
    if let Some(keys) = &opts.detach_keys {
        crate::attach::parse_detach_keys(keys)?;
    }
    crate::logging::LogSettings::parse(opts.log_driver.as_deref(), &opts.log_opts)?;
    crate::health::merge(None, &opts.health)?;
    let mut spec =
        runtime::spec_default::default_spec(false).map_err(|e| EngineError::Spec(e.to_string()))?;
    apply_flags(&mut spec, opts, &|_| Ok(1))
}

/// The process's argv: ENTRYPOINT then CMD, each replaced by the option
/// the user gave, as Docker does (an `--entrypoint` drops the image's CMD
/// too unless a command is given).
pub fn argv(img: &RunDefaults, opts: &RunOptions) -> Result<Vec<String>, EngineError> {
    let entrypoint: Vec<String> = match &opts.entrypoint {
        Some(e) if e.is_empty() => vec![],
        Some(e) => vec![e.clone()],
        None => img.entrypoint.clone().unwrap_or_default(),
    };
    let cmd: Vec<String> = if !opts.cmd.is_empty() {
        opts.cmd.clone()
    } else if opts.entrypoint.is_some() {
        vec![]
    } else {
        img.cmd.clone().unwrap_or_default()
    };
    let argv: Vec<String> = entrypoint.into_iter().chain(cmd).collect();
    if argv.is_empty() {
        return Err(EngineError::NoCommand);
    }
    Ok(argv)
}

/// The environment: the image's, then `PATH` if the image has none,
/// `HOSTNAME`, `HOME` from the user unless set, then the options' (later
/// wins). `-e KEY` without a value takes KEY from `caller_env`, or is
/// dropped when the caller has none, as Docker does.
pub fn environment(
    img: &RunDefaults,
    opts: &RunOptions,
    hostname: &str,
    user: &ResolvedUser,
    caller_env: impl Fn(&str) -> Option<String>,
) -> Result<Vec<String>, EngineError> {
    let mut env: Vec<(String, String)> = vec![];
    fn set(k: &str, v: &str, env: &mut Vec<(String, String)>) {
        match env.iter_mut().find(|(key, _)| key == k) {
            Some(e) => e.1 = v.to_string(),
            None => env.push((k.to_string(), v.to_string())),
        }
    }
    set(
        "PATH",
        "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        &mut env,
    );
    set("HOSTNAME", hostname, &mut env);
    if opts.tty {
        // Docker's: an image's ENV or -e may still say otherwise.
        set("TERM", "xterm", &mut env);
    }
    for kv in img.env.iter().flatten() {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        set(k, v, &mut env);
    }
    if !env.iter().any(|(k, _)| k == "HOME") {
        set("HOME", &user.home, &mut env);
    }
    for kv in &opts.env {
        match kv.split_once('=') {
            Some(("", _)) => {
                return Err(EngineError::InvalidOption {
                    option: "--env",
                    value: kv.clone(),
                    reason: "the variable has no name".into(),
                })
            }
            Some((k, v)) => set(k, v, &mut env),
            None => {
                if let Some(v) = caller_env(kv) {
                    set(kv, &v, &mut env);
                }
            }
        }
    }
    Ok(env.into_iter().map(|(k, v)| format!("{k}={v}")).collect())
}

/// The working directory: `-w`, else the image's WORKDIR, else `/`.
pub fn workdir(img: &RunDefaults, opts: &RunOptions) -> Result<String, EngineError> {
    let w = opts
        .workdir
        .clone()
        .or_else(|| img.working_dir.clone().filter(|w| !w.is_empty()))
        .unwrap_or_else(|| "/".into());
    if !w.starts_with('/') {
        return Err(EngineError::InvalidOption {
            option: "--workdir",
            value: w,
            reason: "the working directory must be an absolute path".into(),
        });
    }
    Ok(w)
}

fn bind(dest: &str, source: &Path) -> Result<Mount, EngineError> {
    oci_spec::runtime::MountBuilder::default()
        .destination(dest)
        .typ("bind")
        .source(source)
        .options(vec!["rbind".to_string(), "rprivate".to_string()])
        .build()
        .map_err(|e| EngineError::Spec(format!("mount {dest}: {e}")))
}

/// The container's spec. `files` holds the generated /etc/hostname and
/// /etc/hosts that are bound into the container.
#[allow(clippy::too_many_arguments)]
pub fn container_spec(
    rootfs: &Path,
    files: &Path,
    hostname: &str,
    argv: Vec<String>,
    env: Vec<String>,
    cwd: String,
    user: &ResolvedUser,
) -> Result<Spec, EngineError> {
    let mut spec =
        runtime::spec_default::default_spec(false).map_err(|e| EngineError::Spec(e.to_string()))?;
    let err = |e: oci_spec::OciSpecError| EngineError::Spec(e.to_string());
    let mut root = spec.root().clone().unwrap_or_default();
    root.set_path(rootfs.to_path_buf());
    root.set_readonly(Some(false));
    spec.set_root(Some(root));
    spec.set_hostname(Some(hostname.to_string()));
    let mut process = spec.process().clone().unwrap_or_default();
    process.set_terminal(Some(false));
    process.set_args(Some(argv));
    process.set_env(Some(env));
    process.set_cwd(cwd.into());
    // Docker's default: setuid programs work unless asked otherwise
    // (--security-opt no-new-privileges).
    process.set_no_new_privileges(Some(false));
    let u = oci_spec::runtime::UserBuilder::default()
        .uid(user.uid)
        .gid(user.gid)
        .additional_gids(user.additional_gids.clone())
        .build()
        .map_err(err)?;
    process.set_user(u);
    spec.set_process(Some(process));
    let mut mounts = spec.mounts().clone().unwrap_or_default();
    mounts.push(bind("/etc/hostname", &files.join("hostname"))?);
    mounts.push(bind("/etc/hosts", &files.join("hosts"))?);
    mounts.push(bind("/etc/resolv.conf", &files.join("resolv.conf"))?);
    spec.set_mounts(Some(mounts));
    Ok(spec)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn img(entrypoint: Option<&[&str]>, cmd: Option<&[&str]>) -> RunDefaults {
        let v = |s: &[&str]| s.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        RunDefaults {
            entrypoint: entrypoint.map(v),
            cmd: cmd.map(v),
            env: Some(vec!["PATH=/bin".into(), "A=image".into()]),
            ..Default::default()
        }
    }

    #[test]
    fn argv_combines_entrypoint_and_cmd_as_docker() {
        let o = |cmd: &[&str], ep: Option<&str>| RunOptions {
            cmd: cmd.iter().map(|s| s.to_string()).collect(),
            entrypoint: ep.map(str::to_string),
            ..Default::default()
        };
        let i = img(Some(&["/ep", "-x"]), Some(&["default"]));
        assert_eq!(argv(&i, &o(&[], None)).unwrap(), ["/ep", "-x", "default"]);
        assert_eq!(
            argv(&i, &o(&["mine"], None)).unwrap(),
            ["/ep", "-x", "mine"]
        );
        // --entrypoint drops the image's CMD too.
        assert_eq!(argv(&i, &o(&[], Some("/other"))).unwrap(), ["/other"]);
        assert_eq!(argv(&i, &o(&["a"], Some(""))).unwrap(), ["a"]);
        assert!(matches!(
            argv(&img(None, None), &o(&[], None)),
            Err(EngineError::NoCommand)
        ));
    }

    #[test]
    fn environment_layers_image_defaults_and_options() {
        let user = ResolvedUser {
            uid: 0,
            gid: 0,
            additional_gids: vec![],
            home: "/root".into(),
        };
        let opts = RunOptions {
            env: vec!["A=option".into(), "FROM_CALLER".into(), "UNSET".into()],
            ..Default::default()
        };
        let env = environment(&img(None, None), &opts, "box", &user, |k| {
            (k == "FROM_CALLER").then(|| "yes".to_string())
        })
        .unwrap();
        assert_eq!(
            env,
            [
                "PATH=/bin",
                "HOSTNAME=box",
                "A=option",
                "HOME=/root",
                "FROM_CALLER=yes"
            ]
        );
        let bad = RunOptions {
            env: vec!["=x".into()],
            ..Default::default()
        };
        assert!(environment(&img(None, None), &bad, "h", &user, |_| None).is_err());
    }

    #[test]
    fn workdir_must_be_absolute() {
        let o = RunOptions {
            workdir: Some("rel".into()),
            ..Default::default()
        };
        assert!(workdir(&RunDefaults::default(), &o).is_err());
        assert_eq!(
            workdir(&RunDefaults::default(), &RunOptions::default()).unwrap(),
            "/"
        );
    }
}
