#!/usr/bin/env python3
"""The engine end to end: `run --rm busybox echo hi` through `berth run`,
`podman run` and `docker run` (each engine on its default runtime: berth
on berth-runtime, Podman and Docker on runc), `run -d` + `rm -f` of a
`sleep`, `run --rm -i` of a `cat` fed 64 KiB on stdin, `exec` of an `echo` in a
running container, `restart -t 0` and `pause` + `unpause` of a running container
(each checked with an exec after), `stats --no-stream`, `cp` of a 2 MB
file out of a running container, and `run --rm -v` with a named volume (a write, then a
read in a second container; the time is per run), alternating in one run; prints medians and
berth / peer.

Podman and dockerd are started as bench/engines.py starts them (their own
directories under a temp dir, no network set-up) and stopped at the end;
berth gets a store of its own. Every command's exit status and output are
checked: a fast failure is not a result.

Usage (root): bench/run.py [--iterations N] [--json FILE]
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import engines  # noqa: E402  (bench/engines.py: the engine fixtures)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BERTH_BIN = os.path.join(ROOT, "target", "release", "berth")


class Berth:
    name = "berth"

    def __init__(self, work):
        self.root = os.path.join(work, "berth")
        archive = os.path.join(work, "berth.tar")
        engines.busybox_archive(archive, "busybox:bench")
        engines.check([BERTH_BIN, "--root", self.root, "load", "-q", "-i", archive])
        self.env = None

    def cmd(self, args):
        return [BERTH_BIN, "--root", self.root] + args

    def close(self):
        subprocess.call(self.cmd(["container", "prune", "-f"]), stdout=subprocess.DEVNULL)


class PodmanRun(engines.Podman):
    def __init__(self, work):
        super().__init__(work)
        self.env = None

    def cmd(self, args):
        base = self.base(engines.RUNC)
        if args[0] == "run":
            return base + ["run", "--network", "none", "--cgroup-parent", self.cgroup,
                           "--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024"] + args[1:]
        if args[:2] == ["rm", "-f"]:
            # Podman's rm -f waits the stop timeout (10 s) first; Docker's and berth's kill at once.
            return base + ["rm", "-f", "--time", "0"] + args[2:]
        return base + args

    def image(self):
        return "localhost/busybox:bench"


class DockerRun(engines.Docker):
    def cmd(self, args):
        return ["docker"] + args

    def image(self):
        return "busybox:bench"


def image(engine):
    return engine.image() if hasattr(engine, "image") else "busybox:bench"


def run_rm(engine):
    t = time.perf_counter()
    r = subprocess.run(engine.cmd(["run", "--rm", image(engine), "echo", "hi"]), env=engine.env,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=120)
    dt = time.perf_counter() - t
    if r.returncode != 0 or r.stdout.decode().strip() != "hi":
        raise SystemExit(f"{engine.name} run --rm failed ({r.returncode}): {r.stderr.decode()}")
    return dt


def detached(engine):
    """run -d of a sleep, then rm -f: start and tear-down of a detached container."""
    t = time.perf_counter()
    r = subprocess.run(engine.cmd(["run", "-d", image(engine), "sleep", "100"]), env=engine.env,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=120)
    if r.returncode != 0:
        raise SystemExit(f"{engine.name} run -d failed ({r.returncode}): {r.stderr.decode()}")
    cid = r.stdout.decode().strip()
    r = subprocess.run(engine.cmd(["rm", "-f", cid]), env=engine.env,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=120)
    if r.returncode != 0:
        raise SystemExit(f"{engine.name} rm -f failed ({r.returncode}): {r.stderr.decode()}")
    return time.perf_counter() - t


def start_sleeper(engine):
    """A detached container for the exec rows; returns its id."""
    r = subprocess.run(engine.cmd(["run", "-d", image(engine), "sleep", "1000"]), env=engine.env,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=120)
    if r.returncode != 0:
        raise SystemExit(f"{engine.name} run -d failed ({r.returncode}): {r.stderr.decode()}")
    return r.stdout.decode().strip()


def exec_echo(engine, cid):
    """exec of an echo in a running container."""
    t = time.perf_counter()
    r = subprocess.run(engine.cmd(["exec", cid, "echo", "hi"]), env=engine.env,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=120)
    dt = time.perf_counter() - t
    if r.returncode != 0 or r.stdout.decode().strip() != "hi":
        raise SystemExit(f"{engine.name} exec failed ({r.returncode}): {r.stderr.decode()}")
    return dt


def restart(engine, cid):
    """restart -t 0 of a running container, then exec to see it runs again."""
    t = time.perf_counter()
    r = subprocess.run(engine.cmd(["restart", "-t", "0", cid]), env=engine.env,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=120)
    dt = time.perf_counter() - t
    if r.returncode != 0:
        raise SystemExit(f"{engine.name} restart failed ({r.returncode}): {r.stderr.decode()}")
    exec_echo(engine, cid)
    return dt


def pause_unpause(engine, cid):
    """pause then unpause of a running container, then exec to see it runs."""
    t = time.perf_counter()
    for verb in ("pause", "unpause"):
        r = subprocess.run(engine.cmd([verb, cid]), env=engine.env,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=120)
        if r.returncode != 0:
            raise SystemExit(f"{engine.name} {verb} failed ({r.returncode}): {r.stderr.decode()}")
    dt = time.perf_counter() - t
    exec_echo(engine, cid)
    return dt


def stats(engine, cid):
    """stats --no-stream of one running container (each engine samples
    over about a second, so this is mostly that wait)."""
    t = time.perf_counter()
    r = subprocess.run(engine.cmd(["stats", "--no-stream", cid]), env=engine.env,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=120)
    dt = time.perf_counter() - t
    if r.returncode != 0 or len(r.stdout.decode().splitlines()) != 2:
        raise SystemExit(f"{engine.name} stats failed ({r.returncode}): {r.stderr.decode()}")
    return dt


def cp_out(engine, cid, work):
    """cp of /bin/busybox (about 2 MB) out of a running container."""
    dest = os.path.join(work, f"cp-{engine.name}")
    t = time.perf_counter()
    r = subprocess.run(engine.cmd(["cp", f"{cid}:/bin/busybox", dest]), env=engine.env,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=120)
    dt = time.perf_counter() - t
    if r.returncode != 0 or os.path.getsize(dest) != os.path.getsize("/bin/busybox"):
        raise SystemExit(f"{engine.name} cp failed ({r.returncode}): {r.stderr.decode()}")
    os.remove(dest)
    return dt


def run_stdin(engine):
    """run --rm -i: the container reads our stdin (64 KiB through cat)."""
    data = b"x" * 65536
    t = time.perf_counter()
    r = subprocess.run(engine.cmd(["run", "--rm", "-i", image(engine), "cat"]), env=engine.env,
                       input=data, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=120)
    dt = time.perf_counter() - t
    if r.returncode != 0 or r.stdout != data:
        raise SystemExit(f"{engine.name} run -i failed ({r.returncode}, {len(r.stdout)} bytes back): "
                         f"{r.stderr.decode()}")
    return dt


def run_volume(engine):
    """run --rm with a named volume: write to it, then read it back in a second container."""
    t = time.perf_counter()
    for args in (["sh", "-c", "echo kept > /v/f"], ["cat", "/v/f"]):
        r = subprocess.run(engine.cmd(["run", "--rm", "-v", "benchvol:/v", image(engine)] + args),
                           env=engine.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=120)
        if r.returncode != 0:
            raise SystemExit(f"{engine.name} run -v failed ({r.returncode}): {r.stderr.decode()}")
    if r.stdout.decode().strip() != "kept":
        raise SystemExit(f"{engine.name}: the volume did not keep its data: {r.stdout.decode()!r}")
    return (time.perf_counter() - t) / 2


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--iterations", type=int, default=10)
    ap.add_argument("--json")
    args = ap.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("run as root")
    for b in [BERTH_BIN, engines.BERTH]:
        if not os.path.exists(b):
            raise SystemExit(f"{b} missing: cargo build --release")
    work = tempfile.mkdtemp(prefix="berth-bench-run-")
    made = []
    try:
        for cls in [Berth, PodmanRun, DockerRun]:
            made.append(cls(work))
        rows = ["run --rm", "run -d + rm -f", "run --rm -i", "exec", "run --rm -v vol", "restart", "pause + unpause", "stats --no-stream", "cp out"]
        times = {e.name: {row: [] for row in rows} for e in made}
        sleepers = {}
        for e in made:  # warm-up, not measured
            run_rm(e)
            detached(e)
            run_stdin(e)
            sleepers[e.name] = start_sleeper(e)
            exec_echo(e, sleepers[e.name])
            run_volume(e)
            restart(e, sleepers[e.name])
            pause_unpause(e, sleepers[e.name])
            stats(e, sleepers[e.name])
            cp_out(e, sleepers[e.name], work)
        for i in range(args.iterations):
            for e in (made if i % 2 == 0 else made[::-1]):
                times[e.name]["run --rm"].append(run_rm(e))
                times[e.name]["run -d + rm -f"].append(detached(e))
                times[e.name]["run --rm -i"].append(run_stdin(e))
                times[e.name]["exec"].append(exec_echo(e, sleepers[e.name]))
                times[e.name]["run --rm -v vol"].append(run_volume(e))
                times[e.name]["restart"].append(restart(e, sleepers[e.name]))
                times[e.name]["pause + unpause"].append(pause_unpause(e, sleepers[e.name]))
                times[e.name]["stats --no-stream"].append(stats(e, sleepers[e.name]))
                times[e.name]["cp out"].append(cp_out(e, sleepers[e.name], work))
    finally:
        for e in made:
            if e.name in sleepers:
                subprocess.run(e.cmd(["rm", "-f", sleepers[e.name]]), env=e.env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=120)
            subprocess.run(e.cmd(["volume", "rm", "-f", "benchvol"]), env=e.env,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=120)
            e.close()
        shutil.rmtree(work, ignore_errors=True)
    summary = {}
    print(f"busybox, {args.iterations} alternating runs each; medians")
    for what in rows:
        med = {n: statistics.median(t[what]) * 1000 for n, t in times.items()}
        summary[what] = med
        peers = ", ".join(f"berth/{p} {med['berth'] / med[p]:.2f}" for p in med if p != "berth")
        cells = ", ".join(f"{n} {m:.1f} ms" for n, m in med.items())
        print(f"{what:<16} {cells}; {peers}")
    if args.json:
        json.dump(summary, open(args.json, "w"), indent=2)


if __name__ == "__main__":
    main()
