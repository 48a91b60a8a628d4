//! How the command line prints sizes and times: as Docker does.

/// A size in decimal units with three significant digits, as `docker
/// images` prints it (`4.26MB`, `72.8MB`, `123MB`, `1.23GB`).
pub fn human(bytes: u64) -> String {
    let units = ["B", "kB", "MB", "GB", "TB", "PB"];
    let mut v = bytes as f64;
    let mut i = 0;
    while v >= 1000.0 && i < units.len() - 1 {
        v /= 1000.0;
        i += 1;
    }
    let digits = if v >= 100.0 {
        0
    } else if v >= 10.0 {
        1
    } else {
        2
    };
    let mut s = format!("{v:.digits$}");
    if s.contains('.') {
        s = s.trim_end_matches('0').trim_end_matches('.').to_string();
    }
    s + units[i]
}

/// A size in binary units with two decimals, as `docker info` prints
/// memory (`23.44GiB`).
pub fn human_binary(bytes: u64) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = bytes as f64;
    let mut i = 0;
    while v >= 1024.0 && i < units.len() - 1 {
        v /= 1024.0;
        i += 1;
    }
    format!("{v:.2}{}", units[i])
}

/// Seconds (with the fraction) since the epoch of an RFC 3339 time.
pub fn parse_rfc3339_f(s: &str) -> Option<f64> {
    engine::inspect::parse_rfc3339_f(s)
}

/// Seconds since the epoch of an RFC 3339 time (`2024-05-01T12:00:00.5Z`,
/// offsets allowed), or None.
pub fn parse_rfc3339(s: &str) -> Option<i64> {
    time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
        .ok()
        .map(|t| t.unix_timestamp())
}

/// A duration in Docker's words (`3 weeks`, `About a minute`, `Less than a second`).
pub fn duration(secs: i64) -> String {
    engine::inspect::human_duration(secs)
}

/// How long ago `then` was, in Docker's words (`3 weeks ago`).
pub fn ago(then: i64, now: i64) -> String {
    format!("{} ago", duration(now - then))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_as_docker_prints_them() {
        assert_eq!(human(999), "999B");
        assert_eq!(human(4_261_000), "4.26MB");
        assert_eq!(human(72_800_000), "72.8MB");
        assert_eq!(human(123_400_000), "123MB");
        assert_eq!(human(1_230_000_000), "1.23GB");
        assert_eq!(human(5_000_000), "5MB");
    }

    #[test]
    fn times_parse_and_read_as_ago() {
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse_rfc3339("2000-03-01T00:00:00Z"), Some(951_868_800));
        assert_eq!(
            parse_rfc3339("2000-03-01T01:00:00.123+01:00"),
            Some(951_868_800)
        );
        assert_eq!(parse_rfc3339("garbage"), None);
        assert_eq!(ago(0, 30), "30 seconds ago");
        assert_eq!(ago(0, 3 * 86400), "3 days ago");
        assert_eq!(ago(0, 21 * 86400), "3 weeks ago");
        assert_eq!(ago(0, 2 * 31_536_000), "2 years ago");
    }
}
