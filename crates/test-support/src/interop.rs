//! The interop matrix: the same flows through a real engine with
//! berth-runtime and with runc, so a failure that is the engine's or this
//! machine's (runc fails it too) is told apart from berth's.

use std::time::Instant;

/// What a flow returns: Ok, or what went wrong.
pub type FlowResult = Result<(), String>;

/// A flow: a name and the steps, given the engine fixture and the runtime
/// (a name the engine knows it by, or a binary path, per engine).
pub type Flow<E> = (&'static str, fn(&E, &str) -> FlowResult);

/// Fails a flow with a message unless `cond` holds.
#[macro_export]
macro_rules! ensure {
    ($cond:expr, $($msg:tt)+) => {
        if !$cond {
            return Err(format!($($msg)+));
        }
    };
}

/// Runs every flow with `berth` then `runc` (each the runtime argument the
/// flows take), prints a table, and panics naming each failure: "berth"
/// when only berth fails, "engine or machine" when runc fails it too, and
/// "runc" when only runc does (worth knowing, not berth's fault: reported
/// without failing).
pub fn run_matrix<E>(engine: &str, fixture: &E, flows: &[Flow<E>], berth: &str, runc: &str) {
    let mut failures = vec![];
    println!("{engine}: flow | berth | runc");
    for (name, flow) in flows {
        let t = Instant::now();
        let b = flow(fixture, berth);
        let tb = t.elapsed();
        let t = Instant::now();
        let r = flow(fixture, runc);
        let tr = t.elapsed();
        let mark = |x: &FlowResult| if x.is_ok() { "ok" } else { "FAIL" };
        println!(
            "{engine}: {name} | {} {:.2}s | {} {:.2}s",
            mark(&b),
            tb.as_secs_f64(),
            mark(&r),
            tr.as_secs_f64()
        );
        match (b, r) {
            (Ok(()), Ok(())) => {}
            (Err(e), Ok(())) => failures.push(format!("{engine} {name}: berth fails: {e}")),
            (Err(e), Err(re)) => failures.push(format!(
                "{engine} {name}: fails with runc too (engine or machine): berth: {e}; runc: {re}"
            )),
            (Ok(()), Err(re)) => println!("{engine}: {name}: runc fails, berth passes: {re}"),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
