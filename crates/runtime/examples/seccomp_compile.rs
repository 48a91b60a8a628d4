//! Measures compiling the default seccomp profile (used by bench/README.md):
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
    let per = start.elapsed() / n;
    println!("default profile: {insns} BPF instructions, compiled in {per:?} (mean of {n})");
}
