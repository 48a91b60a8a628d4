//! The CNI driver: `network create --driver cni` names a CNI configuration
//! list that another tool (or the user) wrote, and a container on that
//! network gets its interface from the list's plugins instead of from
//! berth's bridge driver. The plugins decide everything (device, address,
//! routes, NAT, published ports through `portmap`); berth's firewall and
//! DNS server stay out of it.
//!
//! Each start runs `ADD` with the list as it is then; the list and the
//! result are cached at `<root>/cni/<id>-<slot>.json` before and after, so
//! that teardown (`DEL`) runs with exactly what `ADD` had, even when the
//! file changed or went meanwhile, and so that a crash mid-`ADD` leaves a
//! cache that teardown and `system check` follow.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use network::cni::{self, ConfList, Invocation};
use network::firewall::Forward;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::{invalid, EngineError};
use crate::networks::{Endpoint, Network, NetworkOptions};
use crate::run::Engine;
use crate::store::Store;

/// The driver's name.
pub const DRIVER: &str = "cni";
/// `-o cni.config=FILE`: the configuration list.
const CONFIG: &str = "cni.config";
/// `-o cni.confdir=DIR`: where to find the list naming the network.
const CONFDIR: &str = "cni.confdir";
/// `-o cni.path=DIR[:DIR…]`: the plugin directories.
const PATH: &str = "cni.path";

/// What is cached of one `ADD`.
#[derive(Debug, Serialize, Deserialize)]
struct Cached {
    /// The network's id and name.
    network: String,
    name: String,
    /// The list as `ADD` ran it.
    list: Value,
    /// The container's interface.
    ifname: String,
    /// The plugin directories.
    dirs: Vec<PathBuf>,
    /// What `ADD` gave (null until it has).
    result: Value,
}

fn cache_dir(root: &Path) -> PathBuf {
    root.join("cni")
}

fn cache_path(root: &Path, id: &str, slot: u8) -> PathBuf {
    cache_dir(root).join(format!("{id}-{slot}.json"))
}

fn io<'a>(op: &'static str, path: &'a Path) -> impl Fn(std::io::Error) -> EngineError + 'a {
    move |err| EngineError::Io {
        op,
        path: path.to_path_buf(),
        err,
    }
}

fn net_err(id: &str) -> impl Fn(network::NetworkError) -> EngineError + '_ {
    move |err| EngineError::Network {
        id: id.to_string(),
        err,
    }
}

/// The plugin directories of a network's options.
fn plugin_dirs(options: &BTreeMap<String, String>) -> Vec<PathBuf> {
    match options.get(PATH) {
        Some(p) => std::env::split_paths(p).collect(),
        None => cni::DEFAULT_PLUGIN_DIRS.iter().map(PathBuf::from).collect(),
    }
}

impl Network {
    /// Whether the CNI driver makes its containers' interfaces.
    pub fn is_cni(&self) -> bool {
        self.driver == DRIVER
    }

    /// The CNI configuration list of a CNI network, as it is now.
    pub(crate) fn cni_list(&self) -> Result<ConfList, EngineError> {
        let path = self.options.get(CONFIG).cloned().unwrap_or_default();
        ConfList::load(Path::new(&path)).map_err(|e| EngineError::Network {
            id: self.name.clone(),
            err: e.into(),
        })
    }
}

/// Checks `network create --driver cni NAME`'s options and finds its
/// list: `-o cni.config=FILE`, or the list in `-o cni.confdir=DIR` (else
/// /etc/cni/net.d) whose network is called NAME. Every plugin must be in
/// the plugin directories. Returns the network to record.
pub(crate) fn new_network(
    name: &str,
    o: &NetworkOptions,
    labels: BTreeMap<String, String>,
    mut options: BTreeMap<String, String>,
) -> Result<Network, EngineError> {
    let refuse = |flag: &'static str, value: String| {
        Err(invalid(
            flag,
            &value,
            "a CNI network's addresses and routes are its configuration's (its plugins' ipam)",
        ))
    };
    if !o.subnets.is_empty() {
        return refuse("--subnet", o.subnets.join(" "));
    }
    if !o.gateways.is_empty() {
        return refuse("--gateway", o.gateways.join(" "));
    }
    if let Some(r) = &o.ip_range {
        return refuse("--ip-range", r.clone());
    }
    if o.ipv6 {
        return refuse("--ipv6", "true".into());
    }
    if o.internal {
        return refuse("--internal", "true".into());
    }
    for (k, v) in &options {
        if ![CONFIG, CONFDIR, PATH].contains(&k.as_str()) {
            return Err(invalid(
                "-o",
                &format!("{k}={v}"),
                format!("unknown option (the cni driver takes {CONFIG}, {CONFDIR} and {PATH})"),
            ));
        }
    }
    let bad = |err: cni::CniError| EngineError::Network {
        id: name.to_string(),
        err: err.into(),
    };
    let confdir = options.remove(CONFDIR);
    let file = match (options.get(CONFIG), confdir) {
        (Some(_), Some(d)) => {
            return Err(invalid(
                "-o",
                &format!("{CONFDIR}={d}"),
                format!("give {CONFIG} or {CONFDIR}, not both"),
            ))
        }
        (Some(f), None) => {
            let f = PathBuf::from(f);
            if !f.is_absolute() {
                return Err(invalid(
                    "-o",
                    &format!("{CONFIG}={}", f.display()),
                    "give an absolute path",
                ));
            }
            f
        }
        (None, dir) => cni::find(
            Path::new(dir.as_deref().unwrap_or(cni::DEFAULT_CONFIG_DIR)),
            name,
        )
        .map_err(bad)?,
    };
    let list = ConfList::load(&file).map_err(bad)?;
    let dirs = plugin_dirs(&options);
    for t in list.types() {
        cni::plugin_binary(&dirs, t).map_err(bad)?;
    }
    options.insert(CONFIG.into(), file.display().to_string());
    let ranges = list.ranges();
    let first = |v6: bool| {
        ranges
            .iter()
            .find(|(s, _)| s.contains(':') == v6)
            .cloned()
            .unwrap_or_default()
    };
    let ((subnet, gateway), (subnet6, gateway6)) = (first(false), first(true));
    let id = crate::run::new_id()?;
    Ok(Network {
        // No device of berth's: a name no device can have (the column is unique).
        bridge: format!("cni:{}", &id[..12]),
        id,
        name: name.to_string(),
        driver: DRIVER.into(),
        subnet,
        gateway: gateway.unwrap_or_default(),
        subnet6,
        gateway6: gateway6.unwrap_or_default(),
        ip_range: String::new(),
        internal: false,
        labels,
        options,
        created: crate::run::now(),
    })
}

/// What the runtime gives a CNI network's plugins for container `id`:
/// its published ports (to the first network's `portmap`), its MAC
/// address and its static addresses (`ips`). A value no plugin of the
/// list can take is refused.
fn runtime_config(
    net: &Network,
    list: &ConfList,
    mac: Option<&str>,
    ips: &[String],
    ports: &[Forward],
) -> Result<Map<String, Value>, EngineError> {
    let mut rc = Map::new();
    let need = |cap: &str, flag: &'static str, value: String| {
        if list.has_capability(cap) {
            Ok(())
        } else {
            Err(invalid(
                flag,
                &value,
                format!(
                    "no plugin of CNI network {}'s configuration has the {cap:?} capability",
                    net.name
                ),
            ))
        }
    };
    if !ports.is_empty() {
        need(
            "portMappings",
            "--publish",
            format!("{} ports", ports.len()),
        )?;
        let maps: Vec<Value> = ports
            .iter()
            .map(|f| {
                serde_json::json!({
                    "hostPort": f.host_port,
                    "containerPort": f.port,
                    "protocol": f.proto.as_str(),
                    "hostIP": f.host_ip.map(|a| a.to_string()).unwrap_or_default(),
                })
            })
            .collect();
        rc.insert("portMappings".into(), Value::Array(maps));
    }
    if let Some(m) = mac.filter(|m| !m.is_empty()) {
        need("mac", "--mac-address", m.to_string())?;
        rc.insert("mac".into(), m.into());
    }
    if !ips.is_empty() {
        need("ips", "--ip", ips.join(","))?;
        rc.insert(
            "ips".into(),
            ips.iter().map(|a| Value::from(a.as_str())).collect(),
        );
    }
    Ok(rc)
}

fn write_cache(path: &Path, c: &Cached) -> Result<(), EngineError> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, serde_json::to_vec(c).unwrap_or_default()).map_err(io("write", &tmp))?;
    std::fs::rename(&tmp, path).map_err(io("rename", path))
}

/// What a container asks of a CNI network's plugins.
pub(crate) struct Asked<'a> {
    /// `--mac-address`.
    pub mac: Option<&'a str>,
    /// `--ip`, `--ip6`.
    pub ips: &'a [String],
    /// Its published ports (on its first network).
    pub ports: &'a [Forward],
}

/// Puts container `id` (its namespace pinned at `netns`) on CNI network
/// `net` as endpoint `ep`: `ADD`, then its addresses recorded with the
/// lease and in its settings.
pub(crate) fn attach(
    engine: &Engine,
    db: &Store,
    id: &str,
    ep: &Endpoint,
    net: &Network,
    asked: &Asked,
) -> Result<(), EngineError> {
    let list = net.cni_list()?;
    let dirs = plugin_dirs(&net.options);
    let rc = runtime_config(net, &list, asked.mac, asked.ips, asked.ports)?;
    let dir = cache_dir(&engine.root);
    berth_fs::private_dir(&dir).map_err(|e| EngineError::Io {
        op: "create",
        path: dir.clone(),
        err: std::io::Error::other(e.to_string()),
    })?;
    let cache = cache_path(&engine.root, id, ep.slot);
    let mut cached = Cached {
        network: net.id.clone(),
        name: net.name.clone(),
        list: list.to_json(),
        ifname: format!("eth{}", ep.slot),
        dirs,
        result: Value::Null,
    };
    // Cached before: a crash during ADD leaves what DEL needs.
    write_cache(&cache, &cached)?;
    let netns = crate::net_setup::netns_path(&engine.root, id);
    let inv = Invocation {
        container_id: id,
        netns: &netns,
        ifname: &cached.ifname,
        plugin_dirs: &cached.dirs,
        runtime_config: &rc,
    };
    let result = match cni::add(&list, &inv) {
        Ok(r) => r,
        Err(e) => {
            // `add` has run DEL for what it made.
            let _ = std::fs::remove_file(&cache);
            return Err(net_err(id)(e.into()));
        }
    };
    cached.result = result.clone();
    write_cache(&cache, &cached)?;
    let addrs = cni::addresses(&result, &cached.ifname);
    let v4 = addrs.iter().find(|a| a.ip.is_ipv4());
    let v6 = addrs.iter().find(|a| a.ip.is_ipv6());
    db.set_endpoint_addresses(
        &net.id,
        id,
        v4.map(|a| a.ip.to_string()),
        v6.map(|a| a.ip.to_string()),
    )?;
    let show = |a: Option<&cni::Address>| {
        (
            a.map(|a| a.ip.to_string()).unwrap_or_default(),
            a.map(|a| a.prefix).unwrap_or(0),
            a.and_then(|a| a.gateway)
                .map(|g| g.to_string())
                .unwrap_or_default(),
        )
    };
    let ((ip, prefix, gateway), (ip6, prefix6, gateway6)) = (show(v4), show(v6));
    db.update_settings(id, |s| {
        if let Some(a) = s.networks.get_mut(&net.name) {
            (a.ip, a.prefix, a.gateway) = (ip, prefix, gateway);
            (a.ip6, a.prefix6, a.gateway6) = (ip6, prefix6, gateway6);
        }
    })?;
    Ok(())
}

/// `DEL` for container `id`'s interface in slot `slot`, if it has a
/// CNI one (cached); whether it had.
pub(crate) fn detach(root: &Path, id: &str, slot: u8) -> Result<bool, EngineError> {
    let cache = cache_path(root, id, slot);
    if !cache.exists() {
        return Ok(false);
    }
    del_cached(root, id, &cache)?;
    Ok(true)
}

fn del_cached(root: &Path, id: &str, cache: &Path) -> Result<(), EngineError> {
    let text = std::fs::read(cache).map_err(io("read", cache))?;
    let c: Cached = serde_json::from_slice(&text).map_err(|e| EngineError::Io {
        op: "parse",
        path: cache.to_path_buf(),
        err: std::io::Error::other(e.to_string()),
    })?;
    let list = ConfList::parse(&c.list.to_string(), cache).map_err(|e| net_err(id)(e.into()))?;
    let netns = crate::net_setup::netns_path(root, id);
    let rc = Map::new();
    let inv = Invocation {
        container_id: id,
        netns: &netns,
        ifname: &c.ifname,
        plugin_dirs: &c.dirs,
        runtime_config: &rc,
    };
    let result = (!c.result.is_null()).then_some(&c.result);
    cni::del(&list, &inv, result).map_err(|e| net_err(id)(e.into()))?;
    std::fs::remove_file(cache).map_err(io("remove", cache))
}

/// `DEL` for every CNI interface container `id` has (before its namespace
/// goes). All are tried; the first failure is returned, its cache kept
/// for `system check`.
pub(crate) fn detach_all(root: &Path, id: &str) -> Result<(), EngineError> {
    let prefix = format!("{id}-");
    let Ok(entries) = std::fs::read_dir(cache_dir(root)) else {
        return Ok(());
    };
    let mut first = None;
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with(&prefix) && name.ends_with(".json") {
            if let Err(err) = del_cached(root, id, &e.path()) {
                first.get_or_insert(err);
            }
        }
    }
    first.map_or(Ok(()), Err)
}

/// `CHECK` of each CNI interface running container `id` has: the
/// networks whose plugins find it not as `ADD` left it, and why.
pub(crate) fn check_running(root: &Path, id: &str) -> Vec<(String, String)> {
    let prefix = format!("{id}-");
    let mut failed = vec![];
    for e in std::fs::read_dir(cache_dir(root))
        .into_iter()
        .flatten()
        .flatten()
    {
        let name = e.file_name().to_string_lossy().into_owned();
        if !(name.starts_with(&prefix) && name.ends_with(".json")) {
            continue;
        }
        let path = e.path();
        let Some(c) = std::fs::read(&path)
            .ok()
            .and_then(|t| serde_json::from_slice::<Cached>(&t).ok())
        else {
            failed.push((name, "its cache cannot be read".into()));
            continue;
        };
        if c.result.is_null() {
            // ADD has not finished (or failed): nothing to check yet.
            continue;
        }
        let list = match ConfList::parse(&c.list.to_string(), &path) {
            Ok(l) => l,
            Err(e) => {
                failed.push((c.name.clone(), e.to_string()));
                continue;
            }
        };
        let netns = crate::net_setup::netns_path(root, id);
        let rc = Map::new();
        let inv = Invocation {
            container_id: id,
            netns: &netns,
            ifname: &c.ifname,
            plugin_dirs: &c.dirs,
            runtime_config: &rc,
        };
        if let Err(e) = cni::check(&list, &inv, &c.result) {
            failed.push((c.name.clone(), e.to_string()));
        }
    }
    failed
}

/// The containers that have a CNI cache (for `system check`).
pub(crate) fn cached_containers(root: &Path) -> Vec<String> {
    let mut ids: Vec<String> = std::fs::read_dir(cache_dir(root))
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            Some(name.strip_suffix(".json")?.rsplit_once('-')?.0.to_string())
        })
        .collect();
    ids.sort();
    ids.dedup();
    ids
}
