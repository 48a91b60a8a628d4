//! `regex` for berth's dependencies, served by `regex-lite`.
//!
//! oci-spec compiles two regular expressions (a `process.execCPUAffinity`
//! check and the image-reference grammar), and for them links the whole of
//! `regex` (about 700 KiB of code: its automata, parser and Aho-Corasick).
//! Every berth-runtime exec pages part of that in, although a runtime call
//! almost never runs it (bench/README.md has the numbers). `regex-lite`,
//! by the same authors, has the same API for what oci-spec uses (`Regex`,
//! `RegexBuilder`, captures), with ASCII-only classes, linear-time
//! matching and a fraction of the code. A use of any API regex-lite lacks
//! fails to compile, never silently.
pub use regex_lite::*;

#[cfg(test)]
mod tests {
    use super::*;

    /// oci-spec 0.10's image-reference grammar, built as oci-spec builds it.
    const REFERENCE: &str = r"^((?:(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])(?:(?:\.(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9]))+)?(?::[0-9]+)?/)?[a-z0-9]+(?:(?:(?:[._]|__|[-]*)[a-z0-9]+)+)?(?:(?:/[a-z0-9]+(?:(?:(?:[._]|__|[-]*)[a-z0-9]+)+)?)+)?)(?::([\w][\w.-]{0,127}))?(?:@([A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*[:][[:xdigit:]]{32,}))?$";

    #[test]
    fn oci_specs_reference_grammar_compiles_and_captures() {
        let re = RegexBuilder::new(REFERENCE)
            .size_limit(10 * (1 << 21))
            .build()
            .unwrap();
        let digest = format!("sha256:{}", "ab".repeat(32));
        let text = format!("localhost:5000/library/busy_box:1.36-x@{digest}");
        let c = re.captures(&text).unwrap();
        assert_eq!(&c[1], "localhost:5000/library/busy_box");
        assert_eq!(c.get(2).unwrap().as_str(), "1.36-x");
        assert_eq!(c.get(3).unwrap().as_str(), digest);
        assert!(re.captures("library/Busybox").is_none());
        assert!(re.captures("busybox:t\u{e9}g").is_none(), "\\w is ASCII, as in Go");
    }

    #[test]
    fn oci_specs_cpu_affinity_check() {
        let re = Regex::new(r"^(\d+(-\d+)?)(,\d+(-\d+)?)*$").unwrap();
        assert!(re.is_match("0-3,7"));
        assert!(!re.is_match("0-3,"));
        assert!(!re.is_match("\u{0663}"), "\\d is ASCII only");
    }
}
