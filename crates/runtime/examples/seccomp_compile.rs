//! Measures compiling the default seccomp profile, and reading it back from
//! the cache (used by bench/README.md):
//! `cargo run --release -p runtime --example seccomp_compile`.

fn main() {
    let profile = runtime::seccomp::default_profile::docker_default();
    let n = 2000;
    let start = std::time::Instant::now();
    let mut insns = 0;
    for _ in 0..n {
        insns = runtime::seccomp::compile(&profile)
            .expect("default profile compiles")
            .insns
            .len();
    }
    let compile = start.elapsed() / n;
    let dir = std::env::temp_dir().join(format!("berth-seccomp-cache-{}", std::process::id()));
    runtime::seccomp::compile_cached(&profile, &dir).expect("compiles");
    let start = std::time::Instant::now();
    for _ in 0..n {
        runtime::seccomp::compile_cached(&profile, &dir).expect("cached");
    }
    let cached = start.elapsed() / n;
    let _ = std::fs::remove_dir_all(&dir);
    println!("default profile: {insns} BPF instructions; compiled in {compile:?}, read from the cache in {cached:?} (means of {n})");
}
