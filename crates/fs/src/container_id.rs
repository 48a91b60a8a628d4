//! The one rule for container ids, shared by the runtime (state
//! directories) and the image store (container root filesystems): an id
//! becomes a directory name, so it must be one.

/// The longest id: a directory name's limit (NAME_MAX).
pub const MAX_ID_LEN: usize = 255;

/// Checks `id`: 1 to 255 bytes of letters, digits, `_`, `+`, `-` and `.`,
/// not starting with `.` (as runc's rule, with the length a directory name
/// allows). Returns why it is refused.
pub fn check_container_id(id: &str) -> Result<(), &'static str> {
    if id.is_empty() {
        return Err("empty");
    }
    if id.len() > MAX_ID_LEN {
        return Err("longer than 255 bytes");
    }
    if id.starts_with('.') {
        return Err("must not start with '.'");
    }
    if !id
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"_+-.".contains(&b))
    {
        return Err("only letters, digits, '_', '+', '-' and '.' are allowed");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_directory_names() {
        for ok in ["a", "web-1", "x.y_z+1", &"a".repeat(255)] {
            assert!(check_container_id(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            ".hidden",
            "..",
            "a/b",
            "a\0b",
            "sp ace",
            &"a".repeat(256),
        ] {
            assert!(check_container_id(bad).is_err(), "{bad:?}");
        }
    }
}
