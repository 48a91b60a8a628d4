//! What `volume ls`/`network ls` (and the API's lists) show and filter:
//! a volume as Docker's JSON shows it, a network's `ls` row, and the
//! filters both take, checked by name (an unknown filter is refused,
//! naming it).

use serde_json::{json, Value};

use crate::error::{invalid, EngineError};
use crate::networks::Network;
use crate::run::Engine;
use crate::volumes::Volume;

/// A volume as `volume inspect` (and the API) shows it.
pub fn volume_json(e: &Engine, v: &Volume) -> Value {
    json!({
        "CreatedAt": crate::inspect::rfc3339(v.created),
        "Driver": v.driver,
        "Labels": if v.labels.is_empty() { Value::Null } else { json!(v.labels) },
        "Mountpoint": e.volume_mountpoint(&v.name),
        "Name": v.name,
        "Options": if v.options.is_empty() { Value::Null } else { json!(v.options) },
        "Scope": "local",
    })
}

/// Whether `labels` has `want`: `KEY` (any value) or `KEY=VALUE`.
pub fn label_matches(labels: &std::collections::BTreeMap<String, String>, want: &str) -> bool {
    match want.split_once('=') {
        Some((k, v)) => labels.get(k).is_some_and(|x| x == v),
        None => labels.contains_key(want),
    }
}

/// Whether volume `v` (mounted by the containers `users`) passes every
/// filter (`dangling`, `name`, `driver`, `label`); an unknown filter or
/// value is an error. Filters of one key are alternatives (any may match),
/// as dockerd takes them; different keys must all match.
pub fn volume_matches(
    filters: &[(String, String)],
    v: &Volume,
    users: &[String],
) -> Result<bool, EngineError> {
    all_keys(filters, |k, val| {
        Ok(match k {
            "dangling" => match val {
                "true" | "1" => users.is_empty(),
                "false" | "0" => !users.is_empty(),
                _ => {
                    return Err(invalid(
                        "--filter",
                        &format!("dangling={val}"),
                        "dangling takes true or false",
                    ))
                }
            },
            "name" => v.name.contains(val),
            "driver" => v.driver == val,
            "label" => label_matches(&v.labels, val),
            _ => {
                return Err(invalid(
                    "--filter",
                    &format!("{k}={val}"),
                    "volumes are filtered by dangling, name, driver and label",
                ))
            }
        })
    })
}

/// Whether network `n` passes every filter (`name`, `id`, `driver`,
/// `label`, `type` custom|builtin, `dangling` is the caller's); an
/// unknown filter is an error.
pub fn network_matches(filters: &[(String, String)], n: &Network) -> Result<bool, EngineError> {
    all_keys(filters, |k, val| {
        Ok(match k {
            "name" => n.name.contains(val),
            "id" => n.id.starts_with(val),
            "driver" => n.driver == val,
            "label" => label_matches(&n.labels, val),
            "type" => match val {
                "custom" => n.name != crate::networks::DEFAULT_NETWORK,
                "builtin" => n.name == crate::networks::DEFAULT_NETWORK,
                _ => {
                    return Err(invalid(
                        "--filter",
                        &format!("type={val}"),
                        "type takes custom or builtin",
                    ))
                }
            },
            _ => {
                return Err(invalid(
                    "--filter",
                    &format!("{k}={val}"),
                    "networks are filtered by name, id, driver, label and type",
                ))
            }
        })
    })
}

/// Every key's filters checked (all of them, so a bad one is always
/// reported); true when each key has a match. As dockerd: the values of
/// one key are alternatives, except `label`'s, which must all match.
fn all_keys(
    filters: &[(String, String)],
    mut one: impl FnMut(&str, &str) -> Result<bool, EngineError>,
) -> Result<bool, EngineError> {
    let mut keys: std::collections::BTreeMap<&str, bool> = Default::default();
    for (k, v) in filters {
        let ok = one(k, v)?;
        let seen = keys.entry(k).or_insert(k == "label");
        if k == "label" {
            *seen &= ok;
        } else {
            *seen |= ok;
        }
    }
    Ok(keys.values().all(|ok| *ok))
}

/// `KEY=VALUE` filters of the command line as pairs (a bare KEY has an
/// empty value).
pub fn split_filters(filters: &[String]) -> Vec<(String, String)> {
    filters
        .iter()
        .map(|f| {
            let (k, v) = f.split_once('=').unwrap_or((f.as_str(), ""));
            (k.to_string(), v.to_string())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vol(name: &str, labels: &[(&str, &str)]) -> Volume {
        Volume {
            name: name.into(),
            driver: "local".into(),
            created: 0,
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            options: Default::default(),
            anonymous: false,
        }
    }

    fn f(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn volume_filters_match_as_dockerd_matches_them() {
        let v = vol("data1", &[("app", "web"), ("tier", "")]);
        let users = vec!["c1".to_string()];
        let m = |p: &[(&str, &str)]| volume_matches(&f(p), &v, &users).unwrap();
        assert!(m(&[]));
        assert!(m(&[("name", "ata")]));
        assert!(!m(&[("name", "other")]));
        assert!(m(&[("label", "app=web")]) && m(&[("label", "tier")]));
        assert!(!m(&[("label", "app=db")]));
        // Labels: every one asked for.
        assert!(m(&[("label", "app=web"), ("label", "tier")]));
        assert!(!m(&[("label", "app=web"), ("label", "app=db")]));
        // Two of one key: either; two keys: both.
        assert!(m(&[("name", "other"), ("name", "data")]));
        assert!(!m(&[("name", "data"), ("driver", "nfs")]));
        assert!(m(&[("dangling", "false")]) && !m(&[("dangling", "true")]));
        let e = volume_matches(&f(&[("colour", "red")]), &v, &users).unwrap_err();
        assert!(e.to_string().contains("colour=red"), "{e}");
        assert!(volume_matches(&f(&[("dangling", "maybe")]), &v, &users).is_err());
    }

    #[test]
    fn command_line_filters_split_at_the_first_equals() {
        assert_eq!(
            split_filters(&["label=a=b".into(), "dangling".into()]),
            f(&[("label", "a=b"), ("dangling", "")])
        );
    }
}
