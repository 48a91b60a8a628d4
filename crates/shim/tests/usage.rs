//! berth-shim refuses a bad command line with its usage and a non-zero
//! exit; what it does for a container is tested through `berth run -d`
//! (crates/cli/tests/run.rs).

const SHIM: &str = env!("CARGO_BIN_EXE_berth-shim");

#[test]
fn a_bad_command_line_gets_the_usage() {
    for args in [
        vec![],
        vec!["a", "b"],
        vec!["a", "b", "c", "d", "e", "f", "--"],
    ] {
        let o = test_support::run_through_files(std::process::Command::new(SHIM).args(&args));
        assert_eq!(o.code, 2, "{args:?}: {o:?}");
        assert!(o.stderr.contains("usage: berth-shim"), "{o:?}");
    }
}
