//! The fields of a JSON request body, read by name with their types
//! checked: a wrong type is refused naming the field (`HostConfig.Memory:
//! expected an integer, got "1g"`), as dockerd's decoder does.

use serde_json::{Map, Value};

use crate::error::ApiError;

/// The fields of one JSON object, read by name with their types checked.
pub(crate) struct Fields<'a> {
    /// Where the object is (`""`, `HostConfig.`), for messages.
    pub(crate) at: &'static str,
    map: Option<&'a Map<String, Value>>,
}

pub(crate) fn wrong(at: &str, key: &str, want: &str, v: &Value) -> ApiError {
    ApiError::bad_request(format!("invalid JSON: {at}{key}: expected {want}, got {v}"))
}

impl<'a> Fields<'a> {
    pub(crate) fn of(at: &'static str, v: Option<&'a Value>) -> Result<Self, ApiError> {
        match v {
            None | Some(Value::Null) => Ok(Fields { at, map: None }),
            Some(Value::Object(m)) => Ok(Fields { at, map: Some(m) }),
            Some(other) => Err(wrong("", at.trim_end_matches('.'), "an object", other)),
        }
    }

    pub(crate) fn get(&self, key: &str) -> Option<&'a Value> {
        self.map?.get(key).filter(|v| !v.is_null())
    }

    pub(crate) fn string(&self, key: &str) -> Result<Option<String>, ApiError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::String(s)) if s.is_empty() => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(v) => Err(wrong(self.at, key, "a string", v)),
        }
    }

    pub(crate) fn boolean(&self, key: &str) -> Result<bool, ApiError> {
        match self.get(key) {
            None => Ok(false),
            Some(Value::Bool(b)) => Ok(*b),
            Some(v) => Err(wrong(self.at, key, "a boolean", v)),
        }
    }

    pub(crate) fn int(&self, key: &str) -> Result<Option<i64>, ApiError> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => v
                .as_i64()
                .map(Some)
                .ok_or_else(|| wrong(self.at, key, "an integer", v)),
        }
    }

    /// A list of strings; Docker's "strslice" also takes one string.
    pub(crate) fn strings(&self, key: &str) -> Result<Option<Vec<String>>, ApiError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(vec![s.clone()])),
            Some(Value::Array(a)) => a
                .iter()
                .map(|x| {
                    x.as_str()
                        .map(String::from)
                        .ok_or_else(|| wrong(self.at, key, "a list of strings", x))
                })
                .collect::<Result<Vec<_>, _>>()
                .map(Some),
            Some(v) => Err(wrong(self.at, key, "a list of strings", v)),
        }
    }

    pub(crate) fn object(&self, key: &str) -> Result<Option<&'a Map<String, Value>>, ApiError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Object(m)) => Ok(Some(m)),
            Some(v) => Err(wrong(self.at, key, "an object", v)),
        }
    }

    /// `{"k": "v"}` as `k=v` strings.
    pub(crate) fn string_map(&self, key: &str) -> Result<Vec<String>, ApiError> {
        let mut out = vec![];
        for (k, v) in self.object(key)?.into_iter().flatten() {
            match v {
                Value::String(s) => out.push(format!("{k}={s}")),
                other => return Err(wrong(self.at, &format!("{key}.{k}"), "a string", other)),
            }
        }
        Ok(out)
    }

    /// Refuses `key` when it has a value that is not its default.
    pub(crate) fn unsupported(&self, key: &str, why: &str) -> Result<(), ApiError> {
        let set = match self.get(key) {
            None => false,
            Some(Value::Bool(b)) => *b,
            Some(Value::Number(n)) => n.as_f64() != Some(0.0),
            Some(Value::String(s)) => !s.is_empty(),
            Some(Value::Array(a)) => !a.is_empty(),
            Some(Value::Object(o)) => !o.is_empty(),
            Some(Value::Null) => false,
        };
        if set {
            return Err(ApiError::bad_request(format!("{}{key}: {why}", self.at)));
        }
        Ok(())
    }
}
