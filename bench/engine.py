#!/usr/bin/env python3
"""The engine's own figures (issue 14), berth against Podman 4.3 (runc, no
network) and Docker (dockerd started here with networking off), in one run:

1. `run --rm busybox true`: medians over alternating runs; then the same
   with a user namespace of its own (`--uidmap`), berth against Podman.
2. 50 x `run -d ... sleep 1000`, then `rm -f` of all 50 (one command):
   the total, alternating engines.
3. The idle supervisors of those 50 containers: the median PSS of one
   berth-shim against one conmon (Podman's) and one containerd-shim-runc-v2
   (Docker's), each serving one container.
4. `ps -a` with 500 containers in the store (made with `create`, in
   parallel): medians; berth's own goal is also an absolute 50 ms.

Every command's exit status is checked; a fast failure is not a result.
Usage (root): bench/engine.py [--iterations N] [--containers N] [--store N] [--json FILE]
"""
import argparse
import concurrent.futures
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import engines  # noqa: E402
import run as runbench  # noqa: E402  (bench/run.py: the engine fixtures)


def ok(engine, args, timeout=300):
    r = subprocess.run(engine.cmd(args), env=engine.env, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=timeout)
    if r.returncode != 0:
        raise SystemExit(f"{engine.name} {' '.join(args[:3])} failed ({r.returncode}): "
                         f"{r.stderr.decode()[-2000:]}")
    return r.stdout.decode()


def run_true(engine, flags=()):
    t = time.perf_counter()
    ok(engine, ["run", "--rm", *flags, runbench.image(engine), "true"])
    return time.perf_counter() - t


def start_many(engine, n):
    """n x run -d of a sleep; returns the ids and the time taken."""
    t = time.perf_counter()
    ids = [ok(engine, ["run", "-d", runbench.image(engine), "sleep", "1000"]).strip() for _ in range(n)]
    return ids, time.perf_counter() - t


def remove_all(engine, ids):
    t = time.perf_counter()
    ok(engine, ["rm", "-f"] + ids)
    return time.perf_counter() - t


def pss_kb(pid):
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def processes(*words):
    """Pids whose command line has every word."""
    found = []
    for p in os.listdir("/proc"):
        if not p.isdigit():
            continue
        try:
            cmd = open(f"/proc/{p}/cmdline", "rb").read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if all(w in cmd for w in words):
            found.append(int(p))
    return found


def supervisors(engine, work):
    """This engine's supervisor processes (all under the bench's directory)."""
    word = {"berth": "berth-shim", "podman": "conmon", "docker": "containerd-shim"}[engine.name]
    return processes(word, work)


def ps_all(engine):
    t = time.perf_counter()
    out = ok(engine, ["ps", "-a", "-q"])
    dt = time.perf_counter() - t
    return dt, len(out.split())


def create_many(engine, n):
    def one(_):
        return ok(engine, ["create", runbench.image(engine), "true"]).strip()
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        return list(pool.map(one, range(n)))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--iterations", type=int, default=10)
    ap.add_argument("--containers", type=int, default=50)
    ap.add_argument("--store", type=int, default=500)
    ap.add_argument("--json")
    args = ap.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("run as root")
    for b in [runbench.BERTH_BIN, engines.BERTH]:
        if not os.path.exists(b):
            raise SystemExit(f"{b} missing: cargo build --release")
    work = tempfile.mkdtemp(prefix="berth-bench-engine-")
    made = []
    result = {}
    try:
        for cls in [runbench.Berth, runbench.PodmanRun, runbench.DockerRun]:
            made.append(cls(work))
        # 1. run --rm true
        for e in made:
            run_true(e)  # warm-up
        times = {e.name: [] for e in made}
        for i in range(args.iterations):
            for e in (made if i % 2 == 0 else made[::-1]):
                times[e.name].append(run_true(e))
        result["run --rm true (ms)"] = {n: statistics.median(t) * 1000 for n, t in times.items()}

        # 1b. the same with a user namespace of its own (berth and Podman:
        # Docker maps ids only daemon-wide, with userns-remap)
        mapped = ["--uidmap", "0:1600000:65536", "--gidmap", "0:1600000:65536"]
        for e in made[:2]:
            run_true(e, mapped)  # warm-up (Podman prepares its mapped layers once)
        times = {e.name: [] for e in made[:2]}
        for i in range(args.iterations):
            for e in (made[:2] if i % 2 == 0 else made[1::-1]):
                times[e.name].append(run_true(e, mapped))
        result["run --rm --uidmap true (ms)"] = {n: statistics.median(t) * 1000 for n, t in times.items()}

        # 2. and 3. 50 detached containers, their supervisors, then rm -f of all
        starts, removes, pss = {}, {}, {}
        for i in range(2):
            for e in (made if i % 2 == 0 else made[::-1]):
                ids, dt = start_many(e, args.containers)
                starts.setdefault(e.name, []).append(dt)
                if i == 0:
                    time.sleep(2)  # idle
                    pids = supervisors(e, work)
                    sizes = [s for s in (pss_kb(p) for p in pids) if s]
                    if not sizes:
                        raise SystemExit(f"{e.name}: no supervisor process found")
                    pss[e.name] = {"processes": len(sizes), "pss_kb_each": statistics.median(sizes)}
                removes.setdefault(e.name, []).append(remove_all(e, ids))
        result[f"{args.containers} x run -d, then rm -f all (s)"] = {
            n: statistics.median([a + b for a, b in zip(starts[n], removes[n])]) for n in starts}
        result["idle supervisor PSS per container (KiB)"] = {n: v["pss_kb_each"] for n, v in pss.items()}
        result["supervisor processes for the containers"] = {n: v["processes"] for n, v in pss.items()}

        # 4. ps -a with 500 containers (berth and Podman)
        listed = {}
        for e in made[:2]:
            create_many(e, args.store)
            ps_all(e)
            samples = []
            for _ in range(args.iterations):
                dt, n = ps_all(e)
                if n < args.store:
                    raise SystemExit(f"{e.name} ps -a listed {n} of {args.store}")
                samples.append(dt)
            listed[e.name] = statistics.median(samples) * 1000
            ok(e, ["container", "prune", "-f"], timeout=900)
        result[f"ps -a with {args.store} containers (ms)"] = listed
    finally:
        for e in made:
            e.close()
        shutil.rmtree(work, ignore_errors=True)

    print(f"busybox; {args.iterations} alternating runs where timed; medians")
    for what, med in result.items():
        if what.startswith("supervisor processes"):
            print(f"{what}: " + ", ".join(f"{n} {v}" for n, v in med.items()))
            continue
        peers = ", ".join(f"berth/{p} {med['berth'] / med[p]:.2f}" for p in med if p != "berth" and med[p])
        cells = ", ".join(f"{n} {m:.1f}" for n, m in med.items())
        print(f"{what}: {cells}; {peers}")
    if args.json:
        json.dump(result, open(args.json, "w"), indent=2)


if __name__ == "__main__":
    main()
