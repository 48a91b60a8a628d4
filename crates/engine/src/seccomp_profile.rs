//! `--security-opt seccomp=PROFILE`: a seccomp profile file in Docker's
//! format (or the OCI's, which is its subset) made into the container's
//! OCI `linux.seccomp` as moby does: the host's architectures from
//! `archMap`, and each rule kept or dropped by its `includes` and
//! `excludes` (capabilities the container has, the architecture, the
//! kernel version).

use std::collections::HashSet;
use std::path::Path;

use oci_spec::runtime::{Capability, LinuxSeccomp};
use serde_json::{json, Value};

use crate::error::EngineError;

/// This host's architecture in the profile's two vocabularies.
const HOST_ARCH: &str = "amd64";
const HOST_SCMP_ARCH: &str = "SCMP_ARCH_X86_64";
const DEFAULT_ARCHES: [&str; 3] = ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"];

fn bad(path: &Path, reason: impl Into<String>) -> EngineError {
    EngineError::InvalidOption {
        option: "--security-opt seccomp",
        value: path.display().to_string(),
        reason: reason.into(),
    }
}

/// The kernel's version as (major, minor).
fn kernel_version() -> (u32, u32) {
    let release = nix::sys::utsname::uname()
        .map(|u| u.release().to_string_lossy().into_owned())
        .unwrap_or_default();
    version(&release)
}

fn version(s: &str) -> (u32, u32) {
    let mut parts = s.split(['.', '-']).map(|p| p.parse::<u32>().unwrap_or(0));
    (parts.next().unwrap_or(0), parts.next().unwrap_or(0))
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

/// Whether a rule applies to this container, by its `includes` and `excludes`.
fn applies(rule: &Value, caps: &HashSet<String>, kernel: (u32, u32)) -> bool {
    let inc = &rule["includes"];
    let exc = &rule["excludes"];
    let inc_caps = strings(&inc["caps"]);
    if !inc_caps.iter().all(|c| caps.contains(c)) {
        return false;
    }
    let inc_arches = strings(&inc["arches"]);
    if !inc_arches.is_empty() && !inc_arches.iter().any(|a| a == HOST_ARCH) {
        return false;
    }
    if let Some(min) = inc["minKernel"].as_str() {
        if kernel < version(min) {
            return false;
        }
    }
    if strings(&exc["caps"]).iter().any(|c| caps.contains(c)) {
        return false;
    }
    if strings(&exc["arches"]).iter().any(|a| a == HOST_ARCH) {
        return false;
    }
    true
}

/// Reads the profile at `path` for a container with capabilities `caps`.
pub fn load(path: &Path, caps: &HashSet<Capability>) -> Result<LinuxSeccomp, EngineError> {
    let bytes = std::fs::read(path).map_err(|e| bad(path, format!("cannot read it: {e}")))?;
    // As the OCI spec writes them: CAP_SYS_ADMIN.
    let caps: HashSet<String> = caps
        .iter()
        .filter_map(|c| serde_json::to_value(c).ok())
        .filter_map(|v| v.as_str().map(String::from))
        .collect();
    convert(path, &bytes, &caps, kernel_version())
}

fn convert(
    path: &Path,
    bytes: &[u8],
    caps: &HashSet<String>,
    kernel: (u32, u32),
) -> Result<LinuxSeccomp, EngineError> {
    let v: Value =
        serde_json::from_slice(bytes).map_err(|e| bad(path, format!("not JSON: {e}")))?;
    let default_action = v["defaultAction"]
        .as_str()
        .ok_or_else(|| bad(path, "no defaultAction"))?;
    let arches: Vec<String> = match v["archMap"].as_array() {
        Some(map) => map
            .iter()
            .find(|m| m["architecture"] == HOST_SCMP_ARCH)
            .map(|m| {
                let mut a = vec![HOST_SCMP_ARCH.to_string()];
                a.extend(strings(&m["subArchitectures"]));
                a
            })
            .unwrap_or_else(|| vec![HOST_SCMP_ARCH.to_string()]),
        None => {
            let a = strings(&v["architectures"]);
            if a.is_empty() {
                DEFAULT_ARCHES.iter().map(|s| s.to_string()).collect()
            } else {
                a
            }
        }
    };
    let mut syscalls = vec![];
    for rule in v["syscalls"].as_array().into_iter().flatten() {
        if !applies(rule, caps, kernel) {
            continue;
        }
        let mut names = strings(&rule["names"]);
        if let Some(n) = rule["name"].as_str() {
            names.push(n.to_string());
        }
        if names.is_empty() {
            continue;
        }
        let mut s = json!({"names": names, "action": rule["action"]});
        if !rule["errnoRet"].is_null() {
            s["errnoRet"] = rule["errnoRet"].clone();
        }
        if let Some(args) = rule["args"].as_array().filter(|a| !a.is_empty()) {
            s["args"] = json!(args);
        }
        syscalls.push(s);
    }
    let mut oci = json!({
        "defaultAction": default_action,
        "architectures": arches,
        "syscalls": syscalls,
    });
    for key in [
        "defaultErrnoRet",
        "flags",
        "listenerPath",
        "listenerMetadata",
    ] {
        if !v[key].is_null() {
            oci[key] = v[key].clone();
        }
    }
    serde_json::from_value(oci).map_err(|e| bad(path, format!("not a seccomp profile: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_follow_their_includes_and_excludes() {
        let profile = br#"{
            "defaultAction": "SCMP_ACT_ALLOW",
            "archMap": [{"architecture": "SCMP_ARCH_X86_64", "subArchitectures": ["SCMP_ARCH_X86"]}],
            "syscalls": [
                {"names": ["mkdir"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1},
                {"names": ["chmod"], "action": "SCMP_ACT_ERRNO", "includes": {"caps": ["CAP_SYS_ADMIN"]}},
                {"names": ["chown"], "action": "SCMP_ACT_ERRNO", "excludes": {"caps": ["CAP_CHOWN"]}},
                {"names": ["link"], "action": "SCMP_ACT_ERRNO", "includes": {"arches": ["arm64"]}},
                {"names": ["unlink"], "action": "SCMP_ACT_ERRNO", "includes": {"minKernel": "99.0"}},
                {"name": "rmdir", "action": "SCMP_ACT_ERRNO"}
            ]
        }"#;
        let names = |caps: &[&str]| -> Vec<String> {
            // As the OCI spec writes them: CAP_SYS_ADMIN.
            let caps: HashSet<String> = caps
                .iter()
                .filter_map(|c| serde_json::to_value(c).ok())
                .filter_map(|v| v.as_str().map(String::from))
                .collect();
            let s = convert(Path::new("p.json"), profile, &caps, (6, 1)).unwrap();
            s.syscalls()
                .iter()
                .flatten()
                .flat_map(|r| r.names().clone())
                .collect()
        };
        assert_eq!(names(&["CAP_CHOWN"]), ["mkdir", "rmdir"]);
        assert_eq!(
            names(&["CAP_SYS_ADMIN"]),
            ["mkdir", "chmod", "chown", "rmdir"]
        );
        let s = convert(Path::new("p.json"), profile, &HashSet::new(), (6, 1)).unwrap();
        assert_eq!(s.architectures().as_ref().map(|a| a.len()), Some(2));
        for bad_profile in [
            &b"not json"[..],
            br#"{"syscalls": []}"#,
            br#"{"defaultAction": "NOPE"}"#,
        ] {
            let e = convert(Path::new("p.json"), bad_profile, &HashSet::new(), (6, 1)).unwrap_err();
            assert!(e.to_string().contains("p.json"), "{e}");
        }
    }
}
