//! `POST /containers/create`: Docker's container config (`Image`, `Cmd`,
//! `Env`, …, `HostConfig`, `NetworkingConfig`) turned into the engine's
//! run options, the flags `berth create` takes, so the engine checks both
//! alike. A field of the wrong type is refused by its name; a field berth
//! knows but cannot honour yet is refused by its name; a field berth does
//! not know is passed over, as dockerd passes over what it does not know.

use std::sync::Arc;

use hyper::StatusCode;
use serde_json::{json, Map, Value};

use engine::RunOptions;

use crate::error::ApiError;
use crate::fields::{wrong, Fields};
use crate::http::{json, read_json, Response};
use crate::router::{blocking, Call, State};

/// `RestartPolicy` (`{"Name", "MaximumRetryCount"}`) as `--restart` takes it.
pub(crate) fn restart_policy(r: &Fields<'_>) -> Result<Option<String>, ApiError> {
    Ok(match (r.string("Name")?, r.int("MaximumRetryCount")?) {
        (None, _) => None,
        (Some(n), Some(k)) if n == "on-failure" && k > 0 => Some(format!("{n}:{k}")),
        (Some(n), _) => Some(n),
    })
}

/// The resource fields (`HostConfig`'s, or an update's body) as the
/// engine's limits.
pub(crate) fn resources(h: &Fields<'_>) -> Result<engine::limits::Limits, ApiError> {
    let ulimits = h
        .get("Ulimits")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|u| {
            let f = Fields::of("HostConfig.Ulimits.", Some(u))?;
            Ok(format!(
                "{}={}:{}",
                f.string("Name")?.unwrap_or_default(),
                f.int("Soft")?.unwrap_or(0),
                f.int("Hard")?.unwrap_or(0)
            ))
        })
        .collect::<Result<Vec<_>, ApiError>>()?;
    let nano = h.int("NanoCpus")?.filter(|n| *n > 0);
    Ok(engine::limits::Limits {
        memory: h.int("Memory")?.filter(|m| *m > 0).map(|m| m.to_string()),
        memory_swap: h
            .int("MemorySwap")?
            .filter(|m| *m != 0)
            .map(|m| m.to_string()),
        memory_reservation: h
            .int("MemoryReservation")?
            .filter(|m| *m > 0)
            .map(|m| m.to_string()),
        cpus: nano.map(|n| format!("{}", n as f64 / 1e9)),
        cpu_shares: h.int("CpuShares")?.filter(|n| *n > 0).map(|n| n as u64),
        cpu_period: h.int("CpuPeriod")?.filter(|n| *n > 0).map(|n| n as u64),
        cpu_quota: h.int("CpuQuota")?.filter(|n| *n != 0),
        cpuset_cpus: h.string("CpusetCpus")?,
        cpuset_mems: h.string("CpusetMems")?,
        pids_limit: h.int("PidsLimit")?.filter(|n| *n != 0),
        ulimits,
        oom_kill_disable: h.boolean("OomKillDisable")?,
        oom_score_adj: h.int("OomScoreAdj")?.filter(|n| *n != 0).map(|n| n as i32),
        blkio_weight: h.int("BlkioWeight")?.filter(|n| *n > 0).map(|n| n as u16),
        shm_size: h.int("ShmSize")?.filter(|n| *n > 0).map(|n| n.to_string()),
        ..Default::default()
    })
}

/// `HostConfig.PortBindings` as `-p` values.
fn publish(bindings: Option<&Map<String, Value>>) -> Result<Vec<String>, ApiError> {
    let mut out = vec![];
    for (port, list) in bindings.into_iter().flatten() {
        let list = match list {
            Value::Null => continue,
            Value::Array(a) => a,
            other => {
                return Err(wrong(
                    "HostConfig.",
                    &format!("PortBindings.{port}"),
                    "a list",
                    other,
                ))
            }
        };
        if list.is_empty() {
            out.push(port.clone());
        }
        for b in list {
            let f = Fields::of("HostConfig.PortBindings.", Some(b))?;
            let ip = f.string("HostIp")?.unwrap_or_default();
            let host = f.string("HostPort")?.unwrap_or_default();
            out.push(match (ip.is_empty(), host.is_empty()) {
                (true, true) => port.clone(),
                (true, false) => format!("{host}:{port}"),
                (false, _) if ip.contains(':') => format!("[{ip}]:{host}:{port}"),
                (false, _) => format!("{ip}:{host}:{port}"),
            });
        }
    }
    Ok(out)
}

/// `HostConfig.Mounts` as `--mount` values.
fn mounts(list: Option<&Value>) -> Result<Vec<String>, ApiError> {
    let mut out = vec![];
    for m in list.and_then(Value::as_array).into_iter().flatten() {
        let f = Fields::of("HostConfig.Mounts.", Some(m))?;
        let mut parts = vec![format!(
            "type={}",
            f.string("Type")?.unwrap_or_else(|| "volume".into())
        )];
        if let Some(s) = f.string("Source")? {
            parts.push(format!("source={s}"));
        }
        if let Some(t) = f.string("Target")? {
            parts.push(format!("target={t}"));
        }
        if f.boolean("ReadOnly")? {
            parts.push("readonly".into());
        }
        out.push(parts.join(","));
    }
    Ok(out)
}

/// The engine's run options for Docker's create body `v`.
pub fn run_options(name: Option<String>, v: &Value) -> Result<(String, RunOptions), ApiError> {
    let c = Fields::of("", Some(v))?;
    let image = c.string("Image")?.ok_or_else(|| {
        ApiError::bad_request("invalid JSON: Image is missing (the image to run)")
    })?;
    let h = Fields::of("HostConfig.", c.get("HostConfig"))?;
    let net = Fields::of("NetworkingConfig.", c.get("NetworkingConfig"))?;
    c.unsupported(
        "Healthcheck",
        "health checks through the API are not there yet",
    )?;
    h.unsupported("Links", "links are not there yet")?;
    h.unsupported("VolumeDriver", "volume drivers are not there yet")?;
    h.unsupported("Runtime", "a runtime per container is not there yet")?;
    // Entrypoint: its first word is --entrypoint, the rest go before Cmd;
    // [] or "" resets the image's.
    let mut cmd = c.strings("Cmd")?.unwrap_or_default();
    let entrypoint = match c.strings("Entrypoint")? {
        None => None,
        Some(e) if e.is_empty() || (e.len() == 1 && e[0].is_empty()) => Some(String::new()),
        Some(mut e) => {
            let first = e.remove(0);
            e.append(&mut cmd);
            cmd = e;
            Some(first)
        }
    };
    // "default" is the engine's default (berth's: none, or bridge when
    // ports are published); clients also name it as an endpoint.
    let network_mode = h.string("NetworkMode")?.filter(|m| m != "default");
    let mut more_networks = vec![];
    let (mut ip, mut ip6, mut aliases, mut mac) = (None, None, vec![], c.string("MacAddress")?);
    for (i, (n, cfg)) in net
        .object("EndpointsConfig")?
        .into_iter()
        .flatten()
        .filter(|(n, _)| n.as_str() != "default")
        .enumerate()
    {
        let e = Fields::of("NetworkingConfig.EndpointsConfig.", Some(cfg))?;
        if i == 0 {
            let ipam = Fields::of(
                "NetworkingConfig.EndpointsConfig.IPAMConfig.",
                e.get("IPAMConfig"),
            )?;
            ip = ipam.string("IPv4Address")?;
            ip6 = ipam.string("IPv6Address")?;
            aliases = e.strings("Aliases")?.unwrap_or_default();
            mac = mac.or(e.string("MacAddress")?);
        }
        if network_mode.as_deref() != Some(n.as_str()) {
            more_networks.push(n.clone());
        }
    }
    let network =
        network_mode.or_else(|| (!more_networks.is_empty()).then(|| more_networks.remove(0)));
    let restart = restart_policy(&Fields::of(
        "HostConfig.RestartPolicy.",
        h.get("RestartPolicy"),
    )?)?;
    let log = Fields::of("HostConfig.LogConfig.", h.get("LogConfig"))?;
    let devices = h
        .get("Devices")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|d| {
            let f = Fields::of("HostConfig.Devices.", Some(d))?;
            let host = f.string("PathOnHost")?.unwrap_or_default();
            let inside = f.string("PathInContainer")?.unwrap_or_else(|| host.clone());
            let perms = f
                .string("CgroupPermissions")?
                .unwrap_or_else(|| "rwm".into());
            Ok(format!("{host}:{inside}:{perms}"))
        })
        .collect::<Result<Vec<_>, ApiError>>()?;
    let tmpfs = h
        .string_map("Tmpfs")?
        .into_iter()
        .map(|kv| match kv.split_once('=') {
            Some((p, "")) => p.to_string(),
            Some((p, o)) => format!("{p}:{o}"),
            None => kv,
        })
        .collect();
    let opts = RunOptions {
        name,
        auto_remove: h.boolean("AutoRemove")?,
        // StdinOnce (docker run -i): stdin closes when the attached
        // client's input ends; the engine keeps it for attached runs.
        detach: !c.boolean("StdinOnce")?,
        interactive: c.boolean("OpenStdin")?,
        tty: c.boolean("Tty")?,
        init: h.boolean("Init")?,
        volumes_from: h.strings("VolumesFrom")?.unwrap_or_default(),
        log_driver: log.string("Type")?,
        log_opts: log.string_map("Config")?,
        restart,
        namespaces: engine::namespaces::NamespaceFlags {
            network,
            ipc: h.string("IpcMode")?,
            pid: h.string("PidMode")?,
            uts: h.string("UTSMode")?,
            cgroupns: h.string("CgroupnsMode")?,
            userns: h.string("UsernsMode")?,
            ..Default::default()
        },
        devices,
        device_cgroup_rules: h.strings("DeviceCgroupRules")?.unwrap_or_default(),
        domainname: c.string("Domainname")?,
        stop_signal: c.string("StopSignal")?,
        stop_timeout: c.int("StopTimeout")?,
        labels: c.string_map("Labels")?,
        add_hosts: h.strings("ExtraHosts")?.unwrap_or_default(),
        ip,
        ip6,
        mac_address: mac,
        more_networks,
        network_aliases: aliases,
        publish: publish(h.object("PortBindings")?)?,
        publish_all: h.boolean("PublishAllPorts")?,
        expose: c
            .object("ExposedPorts")?
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default(),
        dns: h.strings("Dns")?.unwrap_or_default(),
        dns_search: h.strings("DnsSearch")?.unwrap_or_default(),
        dns_options: h.strings("DnsOptions")?.unwrap_or_default(),
        cmd,
        entrypoint,
        env: c.strings("Env")?.unwrap_or_default(),
        workdir: c.string("WorkingDir")?,
        user: c.string("User")?,
        hostname: c.string("Hostname")?,
        limits: resources(&h)?,
        mounts: engine::mounts::MountFlags {
            volumes: h.strings("Binds")?.unwrap_or_default(),
            mounts: mounts(h.get("Mounts"))?,
            tmpfs,
            read_only: h.boolean("ReadonlyRootfs")?,
        },
        confinement: engine::confine::Confinement {
            cap_add: h.strings("CapAdd")?.unwrap_or_default(),
            cap_drop: h.strings("CapDrop")?.unwrap_or_default(),
            security_opt: h.strings("SecurityOpt")?.unwrap_or_default(),
            group_add: h.strings("GroupAdd")?.unwrap_or_default(),
            sysctl: h.string_map("Sysctls")?,
            privileged: h.boolean("Privileged")?,
        },
        ..Default::default()
    };
    Ok((image, opts))
}

/// `POST /containers/create?name=`: 201 `{"Id", "Warnings"}`; 404 for an
/// image the store does not have (the client pulls it and asks again).
pub async fn create(state: &Arc<State>, call: Call) -> Result<Response, ApiError> {
    let name = call
        .query
        .get("name")
        .filter(|n| !n.is_empty())
        .map(String::from);
    if call
        .query
        .get("platform")
        .is_some_and(|p| !p.is_empty() && p != "linux/amd64" && p != "linux")
    {
        return Err(ApiError::bad_request(format!(
            "platform {:?}: this host runs linux/amd64 containers only",
            call.query.get("platform").unwrap_or("")
        )));
    }
    let body = read_json(call.req.into_body()).await?;
    if !body.is_object() {
        return Err(ApiError::bad_request(
            "invalid JSON: the body must be an object",
        ));
    }
    let (image, opts) = run_options(name, &body)?;
    let engine = state.engine.clone();
    let id = blocking(move || {
        engine::spec::check_flags(&opts)?;
        let refs = image::refs::Refs::new(&engine.root)
            .load()
            .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
        let (key, rec) = image::refs::find(&refs, &image).ok_or_else(|| {
            ApiError::not_found(format!("No such image: {}", image::refs::normalize(&image)))
        })?;
        let img = rec.to_import(Some(key.clone())).ok_or_else(|| {
            ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "corrupt images.json")
        })?;
        let store = image::ContentStore::open(&engine.root)
            .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
        Ok(engine.create_container(&store, &key, &img, &opts)?)
    })
    .await?;
    Ok(json(
        StatusCode::CREATED,
        &json!({"Id": id, "Warnings": []}),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_docker_config_becomes_run_flags() {
        let v = json!({
            "Image": "bb:1", "Cmd": ["-c", "echo hi"], "Entrypoint": ["sh"],
            "Env": ["A=1"], "Tty": true, "OpenStdin": true, "Labels": {"team": "a"},
            "ExposedPorts": {"80/tcp": {}}, "UnknownField": 7,
            "HostConfig": {
                "AutoRemove": true, "NetworkMode": "default", "Memory": 1048576, "NanoCpus": 1500000000,
                "PortBindings": {"80/tcp": [{"HostIp": "127.0.0.1", "HostPort": "8080"}], "53/udp": [{"HostPort": ""}]},
                "Binds": ["/srv:/srv:ro"], "RestartPolicy": {"Name": "on-failure", "MaximumRetryCount": 3},
                "Mounts": [{"Type": "tmpfs", "Target": "/t"}], "Ulimits": [{"Name": "nofile", "Soft": 10, "Hard": 20}],
                "CapAdd": ["NET_ADMIN"], "Tmpfs": {"/run": "size=1m", "/x": ""}
            },
            "NetworkingConfig": {"EndpointsConfig": {"app": {"Aliases": ["web"], "IPAMConfig": {"IPv4Address": "10.1.0.5"}}}}
        });
        let (image, o) = run_options(Some("n".into()), &v).unwrap();
        assert_eq!(image, "bb:1");
        assert_eq!(o.entrypoint.as_deref(), Some("sh"));
        assert_eq!(o.cmd, ["-c", "echo hi"]);
        assert!(o.tty && o.interactive && o.auto_remove);
        assert_eq!(o.labels, ["team=a"]);
        assert_eq!(o.expose, ["80/tcp"]);
        assert_eq!(o.namespaces.network.as_deref(), Some("app"));
        assert_eq!(o.network_aliases, ["web"]);
        assert_eq!(o.ip.as_deref(), Some("10.1.0.5"));
        assert_eq!(o.limits.memory.as_deref(), Some("1048576"));
        assert_eq!(o.limits.cpus.as_deref(), Some("1.5"));
        let mut p = o.publish.clone();
        p.sort();
        assert_eq!(p, ["127.0.0.1:8080:80/tcp", "53/udp"]);
        assert_eq!(o.restart.as_deref(), Some("on-failure:3"));
        assert_eq!(o.mounts.mounts, ["type=tmpfs,target=/t"]);
        assert_eq!(o.limits.ulimits, ["nofile=10:20"]);
        let mut t = o.mounts.tmpfs.clone();
        t.sort();
        assert_eq!(t, ["/run:size=1m", "/x"]);
    }

    #[test]
    fn the_default_network_is_the_engines_default() {
        // What the docker CLI sends without --network.
        let v = json!({"Image": "bb:1", "HostConfig": {"NetworkMode": "default"},
                       "NetworkingConfig": {"EndpointsConfig": {"default": {}}}});
        let (_, o) = run_options(None, &v).unwrap();
        assert_eq!(o.namespaces.network, None);
        assert!(o.more_networks.is_empty());
    }

    #[test]
    fn wrong_types_and_unsupported_fields_are_refused_by_name() {
        for (v, says) in [
            (json!({"Cmd": ["x"]}), "Image is missing"),
            (json!({"Image": 5}), "Image: expected a string"),
            (
                json!({"Image": "x", "Env": "A=1B", "Tty": "yes"}),
                "Tty: expected a boolean",
            ),
            (
                json!({"Image": "x", "HostConfig": {"Memory": "1g"}}),
                "HostConfig.Memory: expected an integer",
            ),
            (
                json!({"Image": "x", "HostConfig": []}),
                "HostConfig: expected an object",
            ),
            (
                json!({"Image": "x", "Cmd": [1]}),
                "Cmd: expected a list of strings",
            ),
            (
                json!({"Image": "x", "HostConfig": {"Links": ["a:b"]}}),
                "HostConfig.Links: links",
            ),
            (
                json!({"Image": "x", "Healthcheck": {"Test": ["CMD", "true"]}}),
                "Healthcheck",
            ),
        ] {
            let e = run_options(None, &v).unwrap_err();
            assert_eq!(e.status, StatusCode::BAD_REQUEST);
            assert!(e.message.contains(says), "{v}: {}", e.message);
        }
    }
}
