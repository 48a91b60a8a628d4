//! The Container Network Interface, runtime side: network configuration
//! lists (`*.conflist`, or a single plugin's `*.conf`) as other tools
//! write them (Kubernetes' CRI, nerdctl, Podman 3), and the plugins of a
//! list run by the CNI protocol (spec 1.0, back to 0.3): each plugin a
//! program, found in the plugin directories by its `type`, given the
//! command (`ADD`, `DEL`) and the container in environment variables and
//! its configuration on stdin, answering with a result or an error on
//! stdout. `ADD` runs the plugins in order, each seeing the result of the
//! one before (`prevResult`); `DEL` runs them in reverse, with the result
//! `ADD` gave. Values the runtime supplies (published ports, a MAC
//! address, static addresses) go to the plugins that declare the
//! matching `capabilities`, under `runtimeConfig`.
//!
//! Each plugin runs with a clean environment, a deadline and a bound on
//! what is read of its output. Nothing here keeps state: the caller
//! caches the list and the result of an `ADD` for the `DEL`.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::{Map, Value};

use crate::exec::ExecError;

/// Where plugins are looked for when no directories are given: Debian's
/// containernetworking-plugins, then the upstream default.
pub const DEFAULT_PLUGIN_DIRS: &[&str] = &["/usr/lib/cni", "/opt/cni/bin"];

/// Where configuration lists are looked for by network name.
pub const DEFAULT_CONFIG_DIR: &str = "/etc/cni/net.d";

/// How long one plugin may run (a DHCP lease can take a while).
const PLUGIN_TIMEOUT: Duration = Duration::from_secs(60);

/// The most that is read of a plugin's output, or of a configuration file.
const LIMIT: usize = 1 << 20;

/// Why a CNI step failed.
#[derive(Debug, thiserror::Error)]
pub enum CniError {
    /// A configuration file cannot be read or is not a valid list.
    #[error("CNI configuration {path}: {reason}")]
    Config {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// No configuration in the directory names the network.
    #[error("no CNI configuration in {dir} names network {name:?} (give -o cni.config=FILE, or put a .conflist naming it there)")]
    NotFound {
        /// The network's name.
        name: String,
        /// The directory searched.
        dir: PathBuf,
    },
    /// A plugin's program is in none of the plugin directories.
    #[error("CNI plugin {plugin:?} is not in {dirs} (apt-get install containernetworking-plugins, or give -o cni.path=DIR)")]
    NoPlugin {
        /// Its type.
        plugin: String,
        /// The directories searched, joined by ':'.
        dirs: String,
    },
    /// A plugin answered with an error.
    #[error("CNI plugin {plugin} {command}: {msg}{details} (code {code})")]
    Plugin {
        /// Its type.
        plugin: String,
        /// `ADD` or `DEL`.
        command: &'static str,
        /// The CNI error code.
        code: u64,
        /// Its message.
        msg: String,
        /// Its details (": …", or empty).
        details: String,
    },
    /// A plugin could not be run to its end.
    #[error("CNI plugin {plugin}: {err}")]
    Exec {
        /// Its type.
        plugin: String,
        /// What went wrong.
        err: ExecError,
    },
    /// A plugin's answer is not a CNI result.
    #[error("CNI plugin {plugin} {command}: its result is not valid: {reason}")]
    BadResult {
        /// Its type.
        plugin: String,
        /// `ADD` or `DEL`.
        command: &'static str,
        /// What is wrong with it.
        reason: String,
    },
}

/// A network configuration list.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfList {
    /// The CNI version the plugins are spoken to in.
    pub cni_version: String,
    /// The CNI network's name.
    pub name: String,
    /// The plugins' configurations, in order.
    pub plugins: Vec<Map<String, Value>>,
    /// `disableCheck`: the runtime runs no `CHECK`.
    pub disable_check: bool,
}

impl ConfList {
    /// Parses a list (`{"cniVersion", "name", "plugins": […]}`) or a
    /// single plugin's configuration (`{"cniVersion", "name", "type", …}`);
    /// `path` names it in errors.
    pub fn parse(text: &str, path: &Path) -> Result<Self, CniError> {
        let bad = |reason: String| CniError::Config {
            path: path.to_path_buf(),
            reason,
        };
        let v: Value = serde_json::from_str(text).map_err(|e| bad(format!("not JSON: {e}")))?;
        let Value::Object(mut top) = v else {
            return Err(bad("not a JSON object".into()));
        };
        let field = |top: &Map<String, Value>, k: &str| -> Result<String, CniError> {
            match top.get(k) {
                Some(Value::String(s)) if !s.is_empty() => Ok(s.clone()),
                Some(other) => Err(bad(format!("{k:?} is {other}, not a non-empty string"))),
                None => Err(bad(format!("{k:?} is missing"))),
            }
        };
        let cni_version = field(&top, "cniVersion")?;
        let name = field(&top, "name")?;
        let disable_check = match top.get("disableCheck") {
            None | Some(Value::Null) => false,
            Some(Value::Bool(b)) => *b,
            // Some tools write it as a string.
            Some(Value::String(s)) => s == "true",
            Some(other) => return Err(bad(format!("\"disableCheck\" is {other}, not a boolean"))),
        };
        let plugins = match top.remove("plugins") {
            Some(Value::Array(list)) => list
                .into_iter()
                .enumerate()
                .map(|(i, p)| match p {
                    Value::Object(m) => Ok(m),
                    other => Err(bad(format!("plugins[{i}] is {other}, not an object"))),
                })
                .collect::<Result<Vec<_>, _>>()?,
            Some(other) => return Err(bad(format!("\"plugins\" is {other}, not a list"))),
            // A single plugin's configuration is a list of one.
            None if top.contains_key("type") => vec![top],
            None => return Err(bad("has neither \"plugins\" nor \"type\"".into())),
        };
        if plugins.is_empty() {
            return Err(bad("\"plugins\" is empty".into()));
        }
        for (i, p) in plugins.iter().enumerate() {
            match p.get("type") {
                Some(Value::String(t)) => {
                    check_type(t).map_err(|r| bad(format!("plugins[{i}]: {r}")))?
                }
                _ => return Err(bad(format!("plugins[{i}] has no \"type\""))),
            }
        }
        Ok(ConfList {
            cni_version,
            name,
            plugins,
            disable_check,
        })
    }

    /// Reads and parses the file at `path` (at most 1 MiB).
    pub fn load(path: &Path) -> Result<Self, CniError> {
        let bad = |reason: String| CniError::Config {
            path: path.to_path_buf(),
            reason,
        };
        let file = std::fs::File::open(path).map_err(|e| bad(e.to_string()))?;
        let mut text = String::new();
        std::io::Read::read_to_string(&mut std::io::Read::take(file, LIMIT as u64 + 1), &mut text)
            .map_err(|e| bad(e.to_string()))?;
        if text.len() > LIMIT {
            return Err(bad("larger than 1 MiB".into()));
        }
        Self::parse(&text, path)
    }

    /// The list as JSON (what a caller caches for `DEL`).
    pub fn to_json(&self) -> Value {
        serde_json::json!({
            "cniVersion": self.cni_version,
            "name": self.name,
            "disableCheck": self.disable_check,
            "plugins": self.plugins,
        })
    }

    /// The plugins' types, in order.
    pub fn types(&self) -> Vec<&str> {
        self.plugins
            .iter()
            .filter_map(|p| p.get("type")?.as_str())
            .collect()
    }

    /// Whether a plugin declares capability `cap` (`portMappings`, `mac`, `ips`).
    pub fn has_capability(&self, cap: &str) -> bool {
        self.plugins.iter().any(|p| declares(p, cap))
    }

    /// The subnets and gateways of the `host-local` address ranges the
    /// list names (what `inspect` shows), IPv4 and IPv6.
    pub fn ranges(&self) -> Vec<(String, Option<String>)> {
        let mut out = vec![];
        for p in &self.plugins {
            let Some(ipam) = p.get("ipam").and_then(Value::as_object) else {
                continue;
            };
            let one = |r: &Map<String, Value>| {
                Some((
                    r.get("subnet")?.as_str()?.to_string(),
                    r.get("gateway").and_then(Value::as_str).map(String::from),
                ))
            };
            if let Some(r) = one(ipam) {
                out.push(r);
            }
            for set in ipam
                .get("ranges")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                for r in set.as_array().into_iter().flatten() {
                    if let Some(r) = r.as_object().and_then(one) {
                        out.push(r);
                    }
                }
            }
        }
        out
    }
}

/// A plugin type must name a program in a plugin directory, nothing else.
fn check_type(t: &str) -> Result<(), String> {
    if t.is_empty() || t == "." || t == ".." || t.contains('/') || t.contains('\0') {
        return Err(format!("\"type\" {t:?} cannot name a plugin"));
    }
    Ok(())
}

fn declares(plugin: &Map<String, Value>, cap: &str) -> bool {
    plugin
        .get("capabilities")
        .and_then(|c| c.get(cap))
        .and_then(Value::as_bool)
        .unwrap_or(false)
}

/// The first configuration in `dir` (`*.conflist`, `*.conf`, `*.json`, by
/// file name, as libcni orders them) whose network is called `name`.
/// Files that do not parse are passed over.
pub fn find(dir: &Path, name: &str) -> Result<PathBuf, CniError> {
    let not_found = || CniError::NotFound {
        name: name.to_string(),
        dir: dir.to_path_buf(),
    };
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|_| not_found())?
        .filter_map(|e| Some(e.ok()?.path()))
        .filter(|p| {
            matches!(
                p.extension().and_then(|e| e.to_str()),
                Some("conflist" | "conf" | "json")
            )
        })
        .collect();
    files.sort();
    files
        .into_iter()
        .find(|p| ConfList::load(p).is_ok_and(|c| c.name == name))
        .ok_or_else(not_found)
}

/// The program of plugin `typ`: the first directory of `dirs` that has it.
pub fn plugin_binary(dirs: &[PathBuf], typ: &str) -> Result<PathBuf, CniError> {
    let missing = || CniError::NoPlugin {
        plugin: typ.to_string(),
        dirs: dirs
            .iter()
            .map(|d| d.display().to_string())
            .collect::<Vec<_>>()
            .join(":"),
    };
    check_type(typ).map_err(|_| missing())?;
    dirs.iter()
        .map(|d| d.join(typ))
        .find(|p| p.is_file())
        .ok_or_else(missing)
}

/// One container's interface on one CNI network.
#[derive(Debug, Clone)]
pub struct Invocation<'a> {
    /// The container's id (`CNI_CONTAINERID`).
    pub container_id: &'a str,
    /// Its network namespace (`CNI_NETNS`).
    pub netns: &'a Path,
    /// The interface in it (`CNI_IFNAME`).
    pub ifname: &'a str,
    /// The plugin directories (`CNI_PATH`).
    pub plugin_dirs: &'a [PathBuf],
    /// The values the runtime supplies, by capability name; each plugin is
    /// given those it declares.
    pub runtime_config: &'a Map<String, Value>,
}

/// Whether `version` passes `prevResult` to `DEL` (0.4.0 and later).
fn del_has_result(version: &str) -> bool {
    !(version.starts_with("0.1") || version.starts_with("0.2") || version.starts_with("0.3"))
}

fn invoke(
    list: &ConfList,
    plugin: &Map<String, Value>,
    command: &'static str,
    inv: &Invocation,
    prev: Option<&Value>,
) -> Result<Option<Value>, CniError> {
    let typ = plugin
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let program = plugin_binary(inv.plugin_dirs, &typ)?;
    let mut conf = plugin.clone();
    conf.insert("cniVersion".into(), list.cni_version.clone().into());
    conf.insert("name".into(), list.name.clone().into());
    let runtime: Map<String, Value> = inv
        .runtime_config
        .iter()
        .filter(|(k, _)| declares(plugin, k))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    if !runtime.is_empty() {
        conf.insert("runtimeConfig".into(), Value::Object(runtime));
    }
    if let Some(p) = prev {
        conf.insert("prevResult".into(), p.clone());
    }
    let stdin = serde_json::to_vec(&conf).unwrap_or_default();
    let dirs = std::env::join_paths(inv.plugin_dirs).unwrap_or_default();
    let mut cmd = Command::new(&program);
    cmd.env_clear()
        .env(
            "PATH",
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        )
        .env("CNI_COMMAND", command)
        .env("CNI_CONTAINERID", inv.container_id)
        .env("CNI_NETNS", inv.netns)
        .env("CNI_IFNAME", inv.ifname)
        .env("CNI_PATH", dirs);
    let out = crate::exec::run(cmd, &program, &stdin, PLUGIN_TIMEOUT, LIMIT).map_err(|err| {
        CniError::Exec {
            plugin: typ.clone(),
            err,
        }
    })?;
    let answer: Option<Value> = serde_json::from_slice(&out.stdout).ok();
    if !out.status.success() {
        let field = |k: &str| answer.as_ref().and_then(|a| a.get(k)).cloned();
        let stderr = String::from_utf8_lossy(&out.stderr).trim().to_string();
        let msg = field("msg")
            .and_then(|m| m.as_str().map(String::from))
            .unwrap_or(if stderr.is_empty() {
                format!("exited with {}", out.status)
            } else {
                stderr
            });
        let details = field("details")
            .and_then(|d| d.as_str().map(String::from))
            .filter(|d| !d.is_empty())
            .map(|d| format!(": {d}"))
            .unwrap_or_default();
        return Err(CniError::Plugin {
            plugin: typ,
            command,
            code: field("code").and_then(|c| c.as_u64()).unwrap_or(999),
            msg,
            details,
        });
    }
    if command != "ADD" {
        return Ok(None);
    }
    match answer {
        Some(v @ Value::Object(_)) => Ok(Some(v)),
        _ => Err(CniError::BadResult {
            plugin: typ,
            command,
            reason: "not a JSON object".into(),
        }),
    }
}

/// `ADD`: runs the list's plugins in order for `inv`; the last one's
/// result. When a plugin fails, what the ones before it made is deleted
/// again (`DEL` in reverse) and the failure is returned.
pub fn add(list: &ConfList, inv: &Invocation) -> Result<Value, CniError> {
    let mut result: Option<Value> = None;
    for plugin in &list.plugins {
        match invoke(list, plugin, "ADD", inv, result.as_ref()) {
            Ok(r) => result = r,
            Err(e) => {
                let _ = del(list, inv, result.as_ref());
                return Err(e);
            }
        }
    }
    result.ok_or_else(|| CniError::BadResult {
        plugin: list.types().last().copied().unwrap_or_default().to_string(),
        command: "ADD",
        reason: "no result".into(),
    })
}

/// `DEL`: runs the list's plugins in reverse for `inv`, with `result` (what
/// `ADD` gave) as their `prevResult`. Every plugin is run even when one
/// fails; the first failure is returned.
pub fn del(list: &ConfList, inv: &Invocation, result: Option<&Value>) -> Result<(), CniError> {
    let prev = result.filter(|_| del_has_result(&list.cni_version));
    let mut first = None;
    for plugin in list.plugins.iter().rev() {
        if let Err(e) = invoke(list, plugin, "DEL", inv, prev) {
            first.get_or_insert(e);
        }
    }
    first.map_or(Ok(()), Err)
}

/// `CHECK` (CNI 0.4.0 and later): runs the list's plugins in order for
/// `inv`, with `result` (what `ADD` gave) as their `prevResult`; the
/// first failure. Nothing to run for an older list, or one that sets
/// `disableCheck`.
pub fn check(list: &ConfList, inv: &Invocation, result: &Value) -> Result<(), CniError> {
    if !del_has_result(&list.cni_version) || list.disable_check {
        return Ok(());
    }
    for plugin in &list.plugins {
        invoke(list, plugin, "CHECK", inv, Some(result))?;
    }
    Ok(())
}

/// An address a result gives an interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Address {
    /// The address.
    pub ip: IpAddr,
    /// Its prefix length.
    pub prefix: u8,
    /// The gateway, if the result names one.
    pub gateway: Option<IpAddr>,
}

/// The index of interface `ifname` in the container among `result`'s interfaces.
fn interface_index(result: &Value, ifname: &str) -> Option<usize> {
    result.get("interfaces")?.as_array()?.iter().position(|i| {
        i.get("name").and_then(Value::as_str) == Some(ifname)
            && i.get("sandbox")
                .and_then(Value::as_str)
                .is_some_and(|s| !s.is_empty())
    })
}

/// The addresses `result` gives interface `ifname` in the container (or
/// that it gives without naming an interface).
pub fn addresses(result: &Value, ifname: &str) -> Vec<Address> {
    let index = interface_index(result, ifname);
    result
        .get("ips")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|ip| match ip.get("interface").and_then(Value::as_u64) {
            Some(i) => Some(i as usize) == index,
            None => true,
        })
        .filter_map(|ip| {
            let (a, p) = ip.get("address")?.as_str()?.split_once('/')?;
            Some(Address {
                ip: a.parse().ok()?,
                prefix: p.parse().ok()?,
                gateway: ip
                    .get("gateway")
                    .and_then(Value::as_str)
                    .and_then(|g| g.parse().ok()),
            })
        })
        .collect()
}

/// The MAC address `result` gives interface `ifname` in the container.
pub fn mac(result: &Value, ifname: &str) -> Option<String> {
    let i = interface_index(result, ifname)?;
    Some(result["interfaces"][i].get("mac")?.as_str()?.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIST: &str = r#"{"cniVersion": "1.0.0", "name": "lab", "plugins": [
        {"type": "bridge", "bridge": "cni0", "ipam": {"type": "host-local",
            "ranges": [[{"subnet": "10.88.7.0/24", "gateway": "10.88.7.1"}]]}},
        {"type": "portmap", "capabilities": {"portMappings": true}}]}"#;

    #[test]
    fn a_list_parses_with_its_plugins_and_ranges() {
        let l = ConfList::parse(LIST, Path::new("x")).unwrap();
        assert_eq!(l.name, "lab");
        assert_eq!(l.types(), ["bridge", "portmap"]);
        assert!(l.has_capability("portMappings"));
        assert!(!l.has_capability("mac"));
        assert_eq!(
            l.ranges(),
            [("10.88.7.0/24".to_string(), Some("10.88.7.1".to_string()))]
        );
        assert_eq!(
            ConfList::parse(&l.to_json().to_string(), Path::new("x")).unwrap(),
            l
        );
    }

    #[test]
    fn a_single_plugin_is_a_list_of_one() {
        let l = ConfList::parse(
            r#"{"cniVersion": "0.4.0", "name": "one", "type": "ptp", "ipam": {"type": "host-local", "subnet": "10.1.0.0/24"}}"#,
            Path::new("x"),
        )
        .unwrap();
        assert_eq!(l.types(), ["ptp"]);
        assert_eq!(l.ranges(), [("10.1.0.0/24".to_string(), None)]);
    }

    #[test]
    fn bad_lists_are_refused_with_the_reason() {
        for (text, says) in [
            ("nope", "not JSON"),
            ("[]", "not a JSON object"),
            (
                r#"{"name": "a", "plugins": []}"#,
                "\"cniVersion\" is missing",
            ),
            (
                r#"{"cniVersion": "1.0.0", "name": "a", "plugins": []}"#,
                "empty",
            ),
            (r#"{"cniVersion": "1.0.0", "name": "a"}"#, "neither"),
            (
                r#"{"cniVersion": "1.0.0", "name": "a", "plugins": [{"x": 1}]}"#,
                "no \"type\"",
            ),
            (
                r#"{"cniVersion": "1.0.0", "name": "a", "plugins": [{"type": "../../bin/sh"}]}"#,
                "cannot name a plugin",
            ),
            (
                r#"{"cniVersion": "1.0.0", "name": 7, "plugins": [{"type": "a"}]}"#,
                "not a non-empty string",
            ),
        ] {
            let e = ConfList::parse(text, Path::new("/etc/x.conflist")).unwrap_err();
            assert!(e.to_string().contains(says), "{text}: {e}");
            assert!(e.to_string().contains("/etc/x.conflist"), "{e}");
        }
    }

    #[test]
    fn results_give_the_containers_addresses_and_mac() {
        let r: Value = serde_json::from_str(
            r#"{"cniVersion": "1.0.0",
                "interfaces": [{"name": "cni0", "mac": "aa:aa:aa:aa:aa:aa"},
                               {"name": "eth1", "mac": "02:42:0a:58:07:02", "sandbox": "/run/netns/x"}],
                "ips": [{"address": "10.88.7.2/24", "gateway": "10.88.7.1", "interface": 1},
                        {"address": "10.99.0.1/16", "interface": 0}]}"#,
        )
        .unwrap();
        assert_eq!(
            addresses(&r, "eth1"),
            [Address {
                ip: "10.88.7.2".parse().unwrap(),
                prefix: 24,
                gateway: Some("10.88.7.1".parse().unwrap())
            }]
        );
        assert_eq!(mac(&r, "eth1").as_deref(), Some("02:42:0a:58:07:02"));
        assert!(addresses(&r, "eth0").is_empty());
    }

    #[test]
    fn a_missing_plugin_names_itself_and_the_directories() {
        let e = plugin_binary(&[PathBuf::from("/nonexistent")], "bridge").unwrap_err();
        assert!(
            e.to_string().contains("\"bridge\" is not in /nonexistent"),
            "{e}"
        );
    }

    #[test]
    fn find_picks_the_list_naming_the_network() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("10-bad.conflist"), "nope").unwrap();
        std::fs::write(dir.path().join("20-lab.conflist"), LIST).unwrap();
        std::fs::write(dir.path().join("notes.txt"), LIST).unwrap();
        assert_eq!(
            find(dir.path(), "lab").unwrap(),
            dir.path().join("20-lab.conflist")
        );
        let e = find(dir.path(), "other").unwrap_err();
        assert!(matches!(e, CniError::NotFound { .. }), "{e}");
    }

    /// A fake plugin in a shell script records what it was given and
    /// answers as the protocol says.
    #[test]
    fn plugins_run_in_order_with_the_protocol() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("log");
        let plugin = |name: &str, fail_add: bool| {
            let p = dir.path().join(name);
            std::fs::write(
                &p,
                format!(
                    "#!/bin/sh\nin=$(cat)\necho \"{name} $CNI_COMMAND $CNI_IFNAME $CNI_CONTAINERID $in\" >> {log}\n\
                     if [ $CNI_COMMAND = ADD ] && [ {fail_add} = true ]; then echo '{{\"code\": 11, \"msg\": \"no luck\", \"details\": \"at all\"}}'; exit 1; fi\n\
                     [ $CNI_COMMAND = ADD ] && echo '{{\"cniVersion\": \"1.0.0\", \"ips\": [{{\"address\": \"10.5.0.9/16\"}}], \"from\": \"{name}\"}}'\nexit 0\n",
                    log = log.display()
                ),
            )
            .unwrap();
            std::fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(0o755))
                .unwrap();
        };
        plugin("one", false);
        plugin("two", false);
        plugin("bad", true);
        let dirs = [dir.path().to_path_buf()];
        let mut rc = Map::new();
        rc.insert("portMappings".into(), serde_json::json!([{"hostPort": 80}]));
        let inv = Invocation {
            container_id: "c1",
            netns: Path::new("/run/netns/c1"),
            ifname: "eth0",
            plugin_dirs: &dirs,
            runtime_config: &rc,
        };
        let list = ConfList::parse(
            r#"{"cniVersion": "1.0.0", "name": "n", "plugins": [{"type": "one"}, {"type": "two", "capabilities": {"portMappings": true}}]}"#,
            Path::new("x"),
        )
        .unwrap();
        let r = add(&list, &inv).unwrap();
        assert_eq!(r["from"], "two");
        // CHECK: in order, with the result; none when the list disables it.
        check(&list, &inv, &r).unwrap();
        let checked: Vec<String> = std::fs::read_to_string(&log)
            .unwrap()
            .lines()
            .filter(|l| l.contains(" CHECK "))
            .map(String::from)
            .collect();
        assert_eq!(checked.len(), 2, "{checked:?}");
        assert!(checked[0].starts_with("one CHECK") && checked[0].contains("\"from\":\"two\""));
        let mut quiet = list.clone();
        quiet.disable_check = true;
        check(&quiet, &inv, &r).unwrap();
        std::fs::write(
            &log,
            std::fs::read_to_string(&log)
                .unwrap()
                .lines()
                .filter(|l| !l.contains(" CHECK "))
                .map(|l| format!("{l}\n"))
                .collect::<String>(),
        )
        .unwrap();
        let no_check = ConfList::parse(
            r#"{"cniVersion": "1.0.0", "name": "n", "disableCheck": true, "plugins": [{"type": "one"}]}"#,
            Path::new("x"),
        )
        .unwrap();
        assert!(no_check.disable_check);
        del(&list, &inv, Some(&r)).unwrap();
        let lines: Vec<String> = std::fs::read_to_string(&log)
            .unwrap()
            .lines()
            .map(String::from)
            .collect();
        assert_eq!(lines.len(), 4, "{lines:?}");
        assert!(lines[0].starts_with("one ADD eth0 c1 {"), "{}", lines[0]);
        assert!(!lines[0].contains("prevResult") && !lines[0].contains("runtimeConfig"));
        assert!(lines[1].starts_with("two ADD") && lines[1].contains("\"from\":\"one\""));
        assert!(
            lines[1].contains("\"runtimeConfig\":{\"portMappings\""),
            "{}",
            lines[1]
        );
        assert!(lines[2].starts_with("two DEL") && lines[2].contains("\"from\":\"two\""));
        assert!(lines[3].starts_with("one DEL"));
        // A failing plugin: its error, and the ones before it undone.
        std::fs::remove_file(&log).unwrap();
        let list = ConfList::parse(
            r#"{"cniVersion": "1.0.0", "name": "n", "plugins": [{"type": "one"}, {"type": "bad"}]}"#,
            Path::new("x"),
        )
        .unwrap();
        let e = add(&list, &inv).unwrap_err();
        assert_eq!(
            e.to_string(),
            "CNI plugin bad ADD: no luck: at all (code 11)"
        );
        let log = std::fs::read_to_string(&log).unwrap();
        let order: Vec<&str> = log.lines().map(|l| &l[..l.find(" {").unwrap()]).collect();
        assert_eq!(
            order,
            [
                "one ADD eth0 c1",
                "bad ADD eth0 c1",
                "bad DEL eth0 c1",
                "one DEL eth0 c1"
            ]
        );
    }
}
