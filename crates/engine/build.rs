//! Builds berth-init (crates/init) statically linked, for `run --init`:
//! it runs inside containers, which have no loader or libc of ours. The
//! engine embeds the result (see src/init.rs).

use std::path::PathBuf;
use std::process::Command;

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    let source = manifest.join("../init/src/main.rs");
    println!("cargo:rerun-if-changed={}", source.display());
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("OUT_DIR")).join("berth-init");
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let status = Command::new(rustc)
        .args([
            "--edition=2021",
            "--crate-name=berth_init",
            "--crate-type=bin",
            "-Copt-level=s",
            "-Cpanic=abort",
            "-Cstrip=symbols",
            "-Ctarget-feature=+crt-static",
        ])
        .arg(&source)
        .arg("-o")
        .arg(&out)
        .status()
        .expect("run rustc for berth-init");
    assert!(status.success(), "building the static berth-init failed");
}
