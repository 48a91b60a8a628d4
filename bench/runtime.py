#!/usr/bin/env python3
"""Runtime benchmark: the same busybox `/bin/true` container through
create + start + wait + delete (and through `run`), for berth-runtime, runc
and crun, interleaved in one run, the order of the runtimes reversed every
other iteration. Prints medians, the ratios berth/peer and each runtime's
peak RSS, for two specs: `runc spec`'s plain one (no seccomp) and berth's
default (Docker's seccomp profile).

On a hybrid cgroup host crun refuses to work ("cgroups in hybrid mode not
supported"); the benchmark therefore runs every runtime in a private mount
namespace where /sys/fs/cgroup/unified is unmounted, so all three see the
same legacy v1 layout. Nothing on the host changes.

Usage (root): bench/runtime.py [--iterations N] [--json FILE]
"""
import argparse
import ctypes
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BERTH = os.path.join(ROOT, "target", "release", "berth-runtime")
PR_SET_CHILD_SUBREAPER = 36


def private_legacy_namespace():
    """Re-exec in a private mount namespace without the cgroup2 mount."""
    if os.environ.get("BERTH_BENCH_NS") == "1":
        return
    os.environ["BERTH_BENCH_NS"] = "1"
    args = ["unshare", "-m", "--propagation", "private", "sh", "-c",
            'umount /sys/fs/cgroup/unified 2>/dev/null; exec "$@"', "sh", sys.executable] + sys.argv
    os.execvp("unshare", args)


def make_bundle(base, plain):
    rootfs = os.path.join(base, "rootfs")
    for d in ["bin", "proc", "sys", "dev", "etc", "tmp"]:
        os.makedirs(os.path.join(rootfs, d), exist_ok=True)
    shutil.copy("/bin/busybox", os.path.join(rootfs, "bin", "busybox"))
    os.symlink("busybox", os.path.join(rootfs, "bin", "true"))
    os.symlink("busybox", os.path.join(rootfs, "bin", "sh"))
    os.symlink("busybox", os.path.join(rootfs, "bin", "sleep"))
    # The plain spec is runc's (no seccomp); the other berth's own default.
    subprocess.run(["runc" if plain else BERTH, "spec", "--bundle", base], check=True)
    path = os.path.join(base, "config.json")
    spec = json.load(open(path))
    spec["process"]["terminal"] = False
    spec["process"]["args"] = ["/bin/true"]
    # crun 1.8 refuses ociVersion 1.2.0; nothing in this spec needs more than 1.0.
    spec["ociVersion"] = "1.0.2"
    json.dump(spec, open(path, "w"))
    return spec


def set_cgroup(base, spec, name):
    spec["linux"]["cgroupsPath"] = "/berth-bench-" + name
    json.dump(spec, open(os.path.join(base, "config.json"), "w"))


def timed(argv):
    """Runs argv; returns its wall time in seconds."""
    t0 = time.perf_counter()
    if subprocess.call(argv) != 0:
        raise SystemExit(f"failed: {' '.join(argv)}")
    return time.perf_counter() - t0


def peak_rss(argv):
    """Peak RSS (KiB) of argv, measured by GNU time. (A fork of this Python
    process would count Python's own memory: the kernel carries the
    pre-exec high-water mark into ru_maxrss.)"""
    # Through a file: a created container inherits our stdio and outlives the command.
    with tempfile.NamedTemporaryFile("r") as f:
        if subprocess.call(["/usr/bin/time", "-o", f.name, "-f", "%M", "--"] + argv) != 0:
            raise SystemExit(f"failed: {' '.join(argv)}")
        return int(f.read().strip().splitlines()[-1])


def lifecycle(rt, root, bundle, cid):
    """create + start + wait + delete, as a shim drives a runtime."""
    pidfile = os.path.join(root, cid + ".pid")
    t0 = time.perf_counter()
    timed([rt, "--root", root, "create", "--bundle", bundle, "--pid-file", pidfile, cid])
    timed([rt, "--root", root, "start", cid])
    pid = int(open(pidfile).read())
    # We are a subreaper: the container's init is our child now.
    os.waitpid(pid, 0)
    timed([rt, "--root", root, "delete", cid])
    return time.perf_counter() - t0


def lifecycle_rss(rt, root, bundle, cid):
    """Peak RSS over create, start and delete."""
    pidfile = os.path.join(root, cid + ".pid")
    a = peak_rss([rt, "--root", root, "create", "--bundle", bundle, "--pid-file", pidfile, cid])
    b = peak_rss([rt, "--root", root, "start", cid])
    os.waitpid(int(open(pidfile).read()), 0)
    c = peak_rss([rt, "--root", root, "delete", cid])
    return max(a, b, c)


def measure(runtimes, work, plain, iterations):
    """Every measurement for one spec; returns {runtime: {measure: [samples]}}."""
    results = {n: {"lifecycle": [], "run": [], "rss": [], "exec": [], "cold": [], "warm": []} for n in runtimes}
    bundles = {}
    tag = "plain" if plain else "default"
    for name in runtimes:
        b = os.path.join(work, f"{name}-{tag}")
        os.makedirs(b)
        spec = make_bundle(b, plain)
        set_cgroup(b, spec, f"{name}-{tag}")
        bundles[name] = b
    state = {n: os.path.join(work, f"{n}-{tag}-state") for n in runtimes}
    # Warm-up (page cache, first-exec costs), not measured.
    for name, rt in runtimes.items():
        lifecycle(rt, state[name], bundles[name], "warm")
    order = list(runtimes.items())
    for i in range(iterations):
        for name, rt in (order if i % 2 == 0 else order[::-1]):
            results[name]["lifecycle"].append(lifecycle(rt, state[name], bundles[name], f"b{i}"))
            results[name]["run"].append(timed([rt, "--root", state[name], "run", "--bundle", bundles[name], f"r{i}"]))
    for name, rt in runtimes.items():
        results[name]["rss"].append(lifecycle_rss(rt, state[name], bundles[name], "rss"))
    if not plain:
        # berth's seccomp cache: `run` with the cache emptied before each start, and warm.
        root = state["berth"]
        for i in range(iterations):
            shutil.rmtree(os.path.join(root, ".seccomp-cache"), ignore_errors=True)
            results["berth"]["cold"].append(timed([BERTH, "--root", root, "run", "--bundle", bundles["berth"], f"cold{i}"]))
            results["berth"]["warm"].append(timed([BERTH, "--root", root, "run", "--bundle", bundles["berth"], f"warm{i}"]))
    # exec latency: `exec ID /bin/true` into a running container.
    for name, rt in runtimes.items():
        spec = json.load(open(os.path.join(bundles[name], "config.json")))
        spec["process"]["args"] = ["/bin/sleep", "1000"]
        json.dump(spec, open(os.path.join(bundles[name], "config.json"), "w"))
        timed([rt, "--root", state[name], "run", "--detach", "--bundle", bundles[name], "execbox"])
        results[name]["exec"] = [timed([rt, "--root", state[name], "exec", "execbox", "/bin/true"]) for _ in range(iterations)]
        timed([rt, "--root", state[name], "delete", "--force", "execbox"])
    return results


def report(title, results, iterations):
    summary = {}
    print(f"{title}: busybox /bin/true, {iterations} iterations each, interleaved; times are medians")
    print(f"{'runtime':<8} {'create+start+wait+delete':>26} {'run':>10} {'exec':>10} {'peak RSS':>10}")
    for name, r in results.items():
        s = {
            "lifecycle_ms": statistics.median(r["lifecycle"]) * 1000,
            "run_ms": statistics.median(r["run"]) * 1000,
            "peak_rss_kib": max(r["rss"]),
            "exec_ms": statistics.median(r["exec"]) * 1000,
        }
        summary[name] = s
        print(f"{name:<8} {s['lifecycle_ms']:>23.2f} ms {s['run_ms']:>7.2f} ms {s['exec_ms']:>7.2f} ms {s['peak_rss_kib']:>6} KiB")
    for peer in [p for p in summary if p != "berth"]:
        b, p = summary["berth"], summary[peer]
        print(f"ratio berth/{peer}: create+start+wait+delete {b['lifecycle_ms'] / p['lifecycle_ms']:.2f}, "
              f"run {b['run_ms'] / p['run_ms']:.2f}, exec {b['exec_ms'] / p['exec_ms']:.2f}, peak RSS {b['peak_rss_kib'] / p['peak_rss_kib']:.2f}")
    if results["berth"]["cold"]:
        cold = statistics.median(results["berth"]["cold"]) * 1000
        warm = statistics.median(results["berth"]["warm"]) * 1000
        print(f"berth run with the default seccomp profile: first (cache empty) {cold:.2f} ms, cached {warm:.2f} ms")
    return summary


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--iterations", type=int, default=30)
    ap.add_argument("--json")
    args = ap.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("run as root")
    if not os.path.exists(BERTH):
        raise SystemExit(f"{BERTH} missing: cargo build --release")
    if not shutil.which("runc"):
        raise SystemExit("runc missing (its `runc spec` is the plain spec): scripts/install-deps")
    private_legacy_namespace()
    ctypes.CDLL(None).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)

    runtimes = {"berth": BERTH}
    for name in ["runc", "crun"]:
        if shutil.which(name):
            runtimes[name] = shutil.which(name)
    work = tempfile.mkdtemp(prefix="berth-bench-")
    try:
        plain = measure(runtimes, work, True, args.iterations)
        default = measure(runtimes, work, False, args.iterations)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    summary = {
        "plain": report("plain spec (runc spec, no seccomp)", plain, args.iterations),
        "default": report("berth's default spec (Docker's seccomp profile)", default, args.iterations),
    }
    if args.json:
        json.dump(summary, open(args.json, "w"), indent=2)


if __name__ == "__main__":
    main()
