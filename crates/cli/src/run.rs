//! `berth run`: parses Docker's flags, resolves the image and hands both to
//! the engine; exits with the container's status, or with Docker's 125,
//! 126 or 127 when the container could not run.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use engine::{EngineError, RunOptions};
use image::refs::Refs;
use image::ContentStore;

/// `docker run`'s flags that berth has so far.
#[derive(Args)]
pub struct RunArgs {
    /// Remove the container when it exits.
    #[arg(long)]
    rm: bool,
    /// The container's name (default: a generated one).
    #[arg(long)]
    name: Option<String>,
    /// Run in the background under berth-shim; print the container's id.
    #[arg(short = 'd', long)]
    detach: bool,
    /// Keep stdin open: ours goes to the container (with -d, for `attach`).
    #[arg(short = 'i', long)]
    interactive: bool,
    /// Allocate a terminal (copied to ours; with -d, for `attach`).
    #[arg(short = 't', long)]
    tty: bool,
    /// The keys that detach from the container and leave it running.
    #[arg(long = "detach-keys")]
    detach_keys: Option<String>,
    /// The log driver: json-file (default), local or none.
    #[arg(long = "log-driver")]
    log_driver: Option<String>,
    /// A log driver option (`max-size=10m`, `max-file=3`).
    #[arg(long = "log-opt")]
    log_opt: Vec<String>,
    /// Set an environment variable (`KEY=value`, or `KEY` to take it from here).
    #[arg(short = 'e', long = "env")]
    env: Vec<String>,
    /// Read environment variables from a file (one `KEY=value` per line).
    #[arg(long = "env-file")]
    env_file: Vec<PathBuf>,
    /// Working directory inside the container.
    #[arg(short = 'w', long)]
    workdir: Option<String>,
    /// User (`name|uid[:group|gid]`).
    #[arg(short = 'u', long)]
    user: Option<String>,
    /// Override the image's ENTRYPOINT ("" clears it).
    #[arg(long)]
    entrypoint: Option<String>,
    /// The container's host name (default: the first 12 digits of its id).
    #[arg(long)]
    hostname: Option<String>,
    /// Bind a host path: `/host:/container[:ro|rw|z|Z]` (named volumes: not yet).
    #[arg(short = 'v', long = "volume")]
    volume: Vec<String>,
    /// A mount: `type=bind|tmpfs,source=…,target=…[,readonly][,tmpfs-size=…]`.
    #[arg(long)]
    mount: Vec<String>,
    /// A tmpfs: `/container[:options]`.
    #[arg(long)]
    tmpfs: Vec<String>,
    /// Restart policy: no, on-failure[:N], always, unless-stopped.
    #[arg(long)]
    restart: Option<String>,
    /// Network: bridge (the default network), none (the default, unless ports are published), host, container:NAME, or a network's name (repeatable: more networks).
    #[arg(long, visible_alias = "net")]
    network: Vec<String>,
    /// IPC namespace: private, shareable, none, host, container:NAME.
    #[arg(long)]
    ipc: Option<String>,
    /// PID namespace: host, container:NAME.
    #[arg(long)]
    pid: Option<String>,
    /// UTS namespace: host.
    #[arg(long)]
    uts: Option<String>,
    /// Cgroup namespace: private, host.
    #[arg(long)]
    cgroupns: Option<String>,
    /// User namespace: host (the default), auto[:size=N] (a block of host
    /// ids of its own) or keep-id[:uid=U,gid=G] (the calling or sudo user
    /// keeps its ids).
    #[arg(long)]
    userns: Option<String>,
    /// A uid mapping of a user namespace of its own: CONTAINER_ID:HOST_ID:SIZE (repeatable).
    #[arg(long)]
    uidmap: Vec<String>,
    /// A gid mapping: CONTAINER_ID:HOST_ID:SIZE (repeatable; the uid mapping when absent).
    #[arg(long)]
    gidmap: Vec<String>,
    /// A host device: HOST[:CONTAINER][:PERMISSIONS].
    #[arg(long)]
    device: Vec<String>,
    /// The container's IPv4 address on its network (--network NAME).
    #[arg(long)]
    ip: Option<String>,
    /// The container's IPv6 address on its network (one made with --ipv6).
    #[arg(long)]
    ip6: Option<String>,
    /// The container's MAC address on its (first) network.
    #[arg(long = "mac-address")]
    mac_address: Option<String>,
    /// Another name the container answers to on its network's DNS (repeatable).
    #[arg(long = "network-alias", visible_alias = "net-alias")]
    network_alias: Vec<String>,
    /// Publish a container port on the host: `[IP:][HOST_PORT[-END]:]PORT[-END][/tcp|udp|sctp]` (no host port: a free one).
    #[arg(short = 'p', long = "publish")]
    publish: Vec<String>,
    /// Publish every exposed port (the image's EXPOSE and --expose) on a free host port.
    #[arg(short = 'P', long = "publish-all")]
    publish_all: bool,
    /// Expose a port or a range (`80`, `53/udp`, `8000-8010`) without publishing it.
    #[arg(long)]
    expose: Vec<String>,
    /// A device cgroup rule: 'c|b|a MAJOR:MINOR rwm'.
    #[arg(long)]
    device_cgroup_rule: Vec<String>,
    /// The container's NIS domain name.
    #[arg(long)]
    domainname: Option<String>,
    /// The signal `stop` sends first (default: the image's, else SIGTERM).
    #[arg(long)]
    stop_signal: Option<String>,
    /// Seconds `stop` waits before SIGKILL.
    #[arg(long, allow_hyphen_values = true)]
    stop_timeout: Option<i64>,
    /// A label: KEY=VALUE.
    #[arg(short = 'l', long)]
    label: Vec<String>,
    /// The health check: a command run by /bin/sh -c in the container.
    #[arg(long = "health-cmd")]
    health_cmd: Option<String>,
    /// Between health checks (a duration: 30s, 1m).
    #[arg(long = "health-interval")]
    health_interval: Option<String>,
    /// A health check running longer fails.
    #[arg(long = "health-timeout")]
    health_timeout: Option<String>,
    /// Failures in this time after start do not count.
    #[arg(long = "health-start-period")]
    health_start_period: Option<String>,
    /// Between health checks during the start period.
    #[arg(long = "health-start-interval")]
    health_start_interval: Option<String>,
    /// Failures in a row that make the container unhealthy.
    #[arg(long = "health-retries", allow_hyphen_values = true)]
    health_retries: Option<i64>,
    /// Mount the volumes and bind mounts of another container (`NAME[:ro|:rw]`).
    #[arg(long = "volumes-from")]
    volumes_from: Vec<String>,
    /// Run an init (berth-init) as PID 1 that reaps orphans and passes signals on.
    #[arg(long)]
    init: bool,
    /// No health check, not even the image's.
    #[arg(long = "no-healthcheck")]
    no_healthcheck: bool,
    /// Read labels from a file (one KEY=VALUE per line).
    #[arg(long)]
    label_file: Vec<PathBuf>,
    /// An /etc/hosts entry: NAME:IP.
    #[arg(long)]
    add_host: Vec<String>,
    /// A DNS server for /etc/resolv.conf.
    #[arg(long)]
    dns: Vec<String>,
    /// A DNS search domain.
    #[arg(long)]
    dns_search: Vec<String>,
    /// A resolver option.
    #[arg(long)]
    dns_option: Vec<String>,
    /// Write the container's id to this file (which must not exist).
    #[arg(long)]
    cidfile: Option<PathBuf>,
    /// Kernel memory limit (refused: Linux removed kernel memory limits).
    #[arg(long)]
    kernel_memory: Option<String>,
    /// Do not let the OOM killer kill the container's processes.
    #[arg(long)]
    oom_kill_disable: bool,
    /// The processes' OOM score adjustment (-1000 to 1000).
    #[arg(long, allow_hyphen_values = true)]
    oom_score_adj: Option<i32>,
    /// Block I/O weight (10 to 1000).
    #[arg(long)]
    blkio_weight: Option<u16>,
    /// Read rate limit of a device: DEVICE:RATE (1mb).
    #[arg(long)]
    device_read_bps: Vec<String>,
    /// Write rate limit of a device: DEVICE:RATE.
    #[arg(long)]
    device_write_bps: Vec<String>,
    /// Read IO/s limit of a device: DEVICE:COUNT.
    #[arg(long)]
    device_read_iops: Vec<String>,
    /// Write IO/s limit of a device: DEVICE:COUNT.
    #[arg(long)]
    device_write_iops: Vec<String>,
    /// The size of /dev/shm (default 64m).
    #[arg(long)]
    shm_size: Option<String>,
    /// Make the container's root filesystem read-only.
    #[arg(long)]
    read_only: bool,
    /// Memory limit (`64m`, `1g`, …).
    #[arg(short = 'm', long)]
    memory: Option<String>,
    /// Memory plus swap limit (`-1`: unlimited swap).
    #[arg(long, allow_hyphen_values = true)]
    memory_swap: Option<String>,
    /// Memory soft limit.
    #[arg(long)]
    memory_reservation: Option<String>,
    /// Number of CPUs (`0.5`, `2`).
    #[arg(long)]
    cpus: Option<String>,
    /// CPU weight (relative; 1024 is the default).
    #[arg(short = 'c', long)]
    cpu_shares: Option<u64>,
    /// CFS period (µs).
    #[arg(long)]
    cpu_period: Option<u64>,
    /// CFS quota (µs per period).
    #[arg(long, allow_hyphen_values = true)]
    cpu_quota: Option<i64>,
    /// CPUs the container may use (`0-1`, `0,2`).
    #[arg(long)]
    cpuset_cpus: Option<String>,
    /// Memory nodes the container may use.
    #[arg(long)]
    cpuset_mems: Option<String>,
    /// Process limit (`-1`: unlimited).
    #[arg(long, allow_hyphen_values = true)]
    pids_limit: Option<i64>,
    /// A resource limit: `NAME=SOFT[:HARD]`.
    #[arg(long)]
    ulimit: Vec<String>,
    /// Add a capability (`NET_ADMIN`, `ALL`).
    #[arg(long)]
    cap_add: Vec<String>,
    /// Drop a capability (`CHOWN`, `ALL`).
    #[arg(long)]
    cap_drop: Vec<String>,
    /// Security options: `no-new-privileges`, `seccomp=unconfined`, `apparmor=…`, `label=…`.
    #[arg(long)]
    security_opt: Vec<String>,
    /// Give extended privileges (not implemented yet).
    #[arg(long)]
    privileged: bool,
    /// Add a supplementary group (numeric gid).
    #[arg(long)]
    group_add: Vec<String>,
    /// A namespaced kernel parameter: `KEY=VALUE`.
    #[arg(long)]
    sysctl: Vec<String>,
    /// The OCI runtime binary (default: berth-runtime beside this program).
    #[arg(long, env = "BERTH_RUNTIME")]
    runtime: Option<PathBuf>,
    /// Pull the image first: always, missing (when it is not here; the
    /// default) or never.
    #[arg(long, default_value = "missing")]
    pull: String,
    /// The platform of the image (os/arch[/variant]); this host runs linux/amd64.
    #[arg(long)]
    platform: Option<String>,
    /// Print nothing of a pull.
    #[arg(short = 'q', long)]
    quiet: bool,
    /// The image.
    image: String,
    /// The command and its arguments (default: the image's CMD).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    command: Vec<String>,
}

/// Reads an `--env-file`: `KEY=value` or `KEY` lines; blank lines and `#`
/// comments skipped, as Docker reads them.
pub(crate) fn env_file(path: &Path) -> anyhow::Result<Vec<String>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("--env-file {}", path.display()))?;
    Ok(text
        .lines()
        .map(str::trim_start)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_string)
        .collect())
}

/// What `run` and `create` hand the engine.
struct Prepared {
    store: ContentStore,
    key: String,
    img: image::imported::ImportedImage,
    engine: engine::Engine,
    opts: RunOptions,
}

fn run(root: &Path, args: &RunArgs) -> anyhow::Result<i32> {
    let p = prepare(root, args)?;
    let (id, code) = p.engine.run_foreground(&p.store, &p.key, &p.img, &p.opts)?;
    if args.detach {
        println!("{id}");
    }
    Ok(code)
}

/// `--pull` and `--platform`: pulls the image when it is missing (or
/// always), as `docker run` does, telling stderr.
fn pull_if_wanted(root: &Path, args: &RunArgs) -> anyhow::Result<()> {
    if let Some(p) = &args.platform {
        let want = image::manifest::Platform::parse(p)
            .map_err(|e| anyhow::anyhow!("--platform {p:?}: {e}"))?;
        if !want.matches(&image::manifest::Platform::linux_amd64()) {
            return Err(EngineError::InvalidOption {
                option: "--platform",
                value: p.clone(),
                reason: "this host runs linux/amd64 containers only (berth does no emulation)"
                    .into(),
            }
            .into());
        }
    }
    let here = || {
        Refs::new(root)
            .load()
            .ok()
            .is_some_and(|refs| crate::images::find(&refs, &args.image).is_ok())
    };
    let pull = match args.pull.as_str() {
        "always" => true,
        "missing" => !here(),
        "never" => false,
        other => {
            return Err(EngineError::InvalidOption {
                option: "--pull",
                value: other.to_string(),
                reason: "one of always, missing, never".into(),
            }
            .into())
        }
    };
    if !pull {
        return Ok(());
    }
    if !args.quiet && args.pull != "always" {
        let last = args.image.rsplit('/').next().unwrap_or(&args.image);
        let tagged = last.contains(':') || args.image.contains('@');
        let shown = if tagged {
            args.image.clone()
        } else {
            format!("{}:latest", args.image)
        };
        eprintln!("Unable to find image '{shown}' locally");
    }
    let _adding = image::gc::hold_shared(root)?;
    crate::remote::pull_for_run(root, &args.image, args.platform.as_deref(), args.quiet)
}

fn prepare(root: &Path, args: &RunArgs) -> anyhow::Result<Prepared> {
    let mut env = vec![];
    for f in &args.env_file {
        env.extend(env_file(f)?);
    }
    env.extend(args.env.iter().cloned());
    let mut labels = vec![];
    for f in &args.label_file {
        labels.extend(env_file(f)?);
    }
    labels.extend(args.label.iter().cloned());
    let store = ContentStore::open(root)?;
    let engine = crate::containers::engine(root, args.runtime.clone())?;
    let opts = RunOptions {
        name: args.name.clone(),
        auto_remove: args.rm,
        detach: args.detach,
        interactive: args.interactive,
        tty: args.tty,
        detach_keys: args.detach_keys.clone(),
        log_driver: args.log_driver.clone(),
        log_opts: args.log_opt.clone(),
        init: args.init,
        volumes_from: args.volumes_from.clone(),
        health: engine::health::HealthFlags {
            cmd: args.health_cmd.clone(),
            interval: args.health_interval.clone(),
            timeout: args.health_timeout.clone(),
            start_period: args.health_start_period.clone(),
            start_interval: args.health_start_interval.clone(),
            retries: args.health_retries,
            none: args.no_healthcheck,
        },
        restart: args.restart.clone(),
        namespaces: engine::namespaces::NamespaceFlags {
            network: args.network.first().cloned(),
            ipc: args.ipc.clone(),
            pid: args.pid.clone(),
            uts: args.uts.clone(),
            cgroupns: args.cgroupns.clone(),
            userns: args.userns.clone(),
            uidmap: args.uidmap.clone(),
            gidmap: args.gidmap.clone(),
        },
        devices: args.device.clone(),
        device_cgroup_rules: args.device_cgroup_rule.clone(),
        domainname: args.domainname.clone(),
        stop_signal: args.stop_signal.clone(),
        stop_timeout: args.stop_timeout,
        labels,
        add_hosts: args.add_host.clone(),
        ip: args.ip.clone(),
        ip6: args.ip6.clone(),
        mac_address: args.mac_address.clone(),
        publish: args.publish.clone(),
        network_aliases: args.network_alias.clone(),
        more_networks: args.network.iter().skip(1).cloned().collect(),
        publish_all: args.publish_all,
        expose: args.expose.clone(),
        dns: args.dns.clone(),
        dns_search: args.dns_search.clone(),
        dns_options: args.dns_option.clone(),
        cidfile: args.cidfile.clone(),
        cmd: args.command.clone(),
        entrypoint: args.entrypoint.clone(),
        env,
        workdir: args.workdir.clone(),
        user: args.user.clone(),
        hostname: args.hostname.clone(),
        limits: engine::limits::Limits {
            memory: args.memory.clone(),
            memory_swap: args.memory_swap.clone(),
            memory_reservation: args.memory_reservation.clone(),
            cpus: args.cpus.clone(),
            cpu_shares: args.cpu_shares,
            cpu_period: args.cpu_period,
            cpu_quota: args.cpu_quota,
            cpuset_cpus: args.cpuset_cpus.clone(),
            cpuset_mems: args.cpuset_mems.clone(),
            pids_limit: args.pids_limit,
            ulimits: args.ulimit.clone(),
            kernel_memory: args.kernel_memory.clone(),
            oom_kill_disable: args.oom_kill_disable,
            oom_score_adj: args.oom_score_adj,
            blkio_weight: args.blkio_weight,
            device_read_bps: args.device_read_bps.clone(),
            device_write_bps: args.device_write_bps.clone(),
            device_read_iops: args.device_read_iops.clone(),
            device_write_iops: args.device_write_iops.clone(),
            shm_size: args.shm_size.clone(),
        },
        mounts: engine::mounts::MountFlags {
            volumes: args.volume.clone(),
            mounts: args.mount.clone(),
            tmpfs: args.tmpfs.clone(),
            read_only: args.read_only,
        },
        confinement: engine::confine::Confinement {
            cap_add: args.cap_add.clone(),
            cap_drop: args.cap_drop.clone(),
            security_opt: args.security_opt.clone(),
            group_add: args.group_add.clone(),
            sysctl: args.sysctl.clone(),
            privileged: args.privileged,
        },
    };
    // Bad flags are refused before anything is pulled, as the docker CLI
    // checks them before it asks the daemon.
    engine::spec::check_flags(&opts)?;
    pull_if_wanted(root, args)?;
    let refs = Refs::new(root).load().context("read images.json")?;
    let (key, rec) = crate::images::find(&refs, &args.image)
        .map_err(|_| EngineError::NoSuchImage(args.image.clone()))?;
    let img = rec
        .to_import(Some(key.clone()))
        .context("corrupt images.json")?;
    Ok(Prepared {
        store,
        key,
        img,
        engine,
        opts,
    })
}

/// Runs `berth create`: prints the new container's id.
pub fn create_main(root: &Path, args: &RunArgs) -> ExitCode {
    let made = prepare(root, args).and_then(|p| {
        Ok(p.engine
            .create_container(&p.store, &p.key, &p.img, &p.opts)?)
    });
    match made {
        Ok(id) => {
            println!("{id}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("berth: {e:#}");
            let code = e
                .downcast_ref::<EngineError>()
                .map_or(125, |e| e.exit_code());
            ExitCode::from(code)
        }
    }
}

/// Runs `berth run` and returns the exit status: the container's, or 125
/// (berth failed), 126 (cannot execute) or 127 (not found).
pub fn main(root: &Path, args: &RunArgs) -> ExitCode {
    match run(root, args) {
        Ok(code) => ExitCode::from(code.clamp(0, 255) as u8),
        Err(e) => {
            eprintln!("berth: {e:#}");
            let code = e
                .downcast_ref::<EngineError>()
                .map_or(125, |e| e.exit_code());
            ExitCode::from(code)
        }
    }
}
