//! Builds `berth-exec` (trampoline/main.rs), the static program a
//! container's process is exec'd through (see that file), with the same
//! `rustc` and target as the runtime, and leaves it in OUT_DIR for
//! `include_bytes!`.
use std::path::PathBuf;
use std::process::Command;

fn main() {
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("OUT_DIR"));
    let rustc = std::env::var_os("RUSTC").expect("RUSTC");
    let target = std::env::var("TARGET").expect("TARGET");
    let src = "trampoline/main.rs";
    println!("cargo:rerun-if-changed={src}");
    let status = Command::new(rustc)
        .args([
            "--edition=2021",
            "--crate-type=bin",
            "--crate-name=berth_exec",
        ])
        .args(["--target", &target])
        .args([
            "-C",
            "opt-level=s",
            "-C",
            "panic=abort",
            "-C",
            "debuginfo=0",
        ])
        .args(["-C", "strip=symbols", "-C", "relocation-model=static"])
        .args(["-C", "link-arg=-nostartfiles", "-C", "link-arg=-nostdlib"])
        .args([
            "-C",
            "link-arg=-static",
            "-C",
            "link-arg=-Wl,--build-id=none",
        ])
        .arg("-o")
        .arg(out.join("berth-exec"))
        .arg(src)
        .status()
        .expect("run rustc for the exec trampoline");
    assert!(status.success(), "building {src} failed");
}
