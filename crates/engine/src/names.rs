//! Container names: Docker's rule for the ones users give
//! (`[a-zA-Z0-9][a-zA-Z0-9_.-]*`), and generated ones (`adjective_noun`,
//! with a number added while taken).

use crate::error::EngineError;

/// Checks a user-given name (a leading `/`, as the Docker API writes
/// names, is dropped).
pub fn check(name: &str) -> Result<String, EngineError> {
    let n = name.strip_prefix('/').unwrap_or(name);
    let ok = n.len() <= 128
        && n.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
        && n.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if !ok {
        return Err(EngineError::InvalidOption {
            option: "--name",
            value: name.to_string(),
            reason: "names are [a-zA-Z0-9][a-zA-Z0-9_.-]*, at most 128 characters".into(),
        });
    }
    Ok(n.to_string())
}

const ADJECTIVES: &[&str] = &[
    "brave", "calm", "eager", "fond", "gentle", "happy", "keen", "lucid", "merry", "nimble",
    "proud", "quiet", "sharp", "tender", "vivid", "wise", "bold", "clever", "jolly", "steady",
];
const NOUNS: &[&str] = &[
    "anchor", "buoy", "cargo", "dock", "ferry", "harbor", "keel", "lantern", "mooring", "pier",
    "quay", "rudder", "sail", "tide", "wharf", "bollard", "capstan", "hull", "mast", "tug",
];

/// A generated name from the random bytes of a container id.
pub fn generate(id: &str, attempt: u32) -> String {
    let byte = |i: usize| u8::from_str_radix(id.get(i..i + 2).unwrap_or("00"), 16).unwrap_or(0);
    let base = format!(
        "{}_{}",
        ADJECTIVES[byte(0) as usize % ADJECTIVES.len()],
        NOUNS[byte(2) as usize % NOUNS.len()]
    );
    if attempt == 0 {
        base
    } else {
        format!("{base}{attempt}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_dockers_rule() {
        assert_eq!(check("web-1.a_b").unwrap(), "web-1.a_b");
        assert_eq!(check("/web").unwrap(), "web");
        for bad in ["", "-x", "a b", "a/b", "ünï"] {
            assert!(check(bad).is_err(), "{bad}");
        }
        let g = generate("0a1b2c", 0);
        assert!(check(&g).is_ok() && g.contains('_'), "{g}");
        assert_eq!(generate("0a1b2c", 2), format!("{g}2"));
    }
}
