#!/usr/bin/env python3
"""End to end through each engine: `run --rm busybox echo hi` with
berth-runtime and with runc under the same engine, alternating, and the
ratio berth/runc of the medians. Engines: Podman (conmon), containerd
(`ctr run` through the runc v2 shim) and Docker (dockerd 20.10 with
`--add-runtime berth=…`). Each engine is started here with its own root,
run and socket directories under a temp dir (never the machine's
defaults), no network set-up, and stopped with everything it started.
Every run's exit status and output are checked: a fast failure is not a
result.

Usage (root): bench/engines.py [--iterations N] [--engines podman,ctr,docker] [--json FILE]
"""
import argparse
import hashlib
import io
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BERTH = os.path.join(ROOT, "target", "release", "berth-runtime")
RUNC = shutil.which("runc") or "/usr/sbin/runc"


def busybox_archive(path, tag, extra=()):
    """A docker-archive (`docker save` format) of a busybox image; `extra`
    host files (symlinks followed) are added at their own paths."""
    layer = io.BytesIO()
    with tarfile.open(fileobj=layer, mode="w") as t:
        for d in ["bin", "dev", "proc", "sys", "etc", "tmp"]:
            info = tarfile.TarInfo(d)
            info.type, info.mode = tarfile.DIRTYPE, 0o755
            t.addfile(info)
        t.add("/bin/busybox", arcname="bin/busybox")
        made = set()
        for f in extra:
            parts = f.strip("/").split("/")
            for i in range(1, len(parts)):
                d = "/".join(parts[:i])
                if d not in made and d not in ("bin", "dev", "proc", "sys", "etc", "tmp"):
                    info = tarfile.TarInfo(d)
                    info.type, info.mode = tarfile.DIRTYPE, 0o755
                    t.addfile(info)
                    made.add(d)
            t.add(os.path.realpath(f), arcname=f.strip("/"))
        for applet in ["sh", "echo", "true", "sleep", "cat"]:
            info = tarfile.TarInfo("bin/" + applet)
            info.type, info.linkname = tarfile.SYMTYPE, "busybox"
            t.addfile(info)
    layer = layer.getvalue()
    diff = "sha256:" + hashlib.sha256(layer).hexdigest()
    config = json.dumps({"architecture": "amd64", "os": "linux",
                         "config": {"Env": ["PATH=/bin"], "Cmd": ["sh"]},
                         "rootfs": {"type": "layers", "diff_ids": [diff]}}).encode()
    config_name = hashlib.sha256(config).hexdigest() + ".json"
    manifest = json.dumps([{"Config": config_name, "RepoTags": [tag], "Layers": ["0/layer.tar"]}]).encode()
    with tarfile.open(path, "w") as t:
        for name, data in [(config_name, config), ("0/layer.tar", layer), ("manifest.json", manifest)]:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))


def check(argv, env=None):
    r = subprocess.run(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=120)
    if r.returncode != 0:
        raise SystemExit(f"failed ({r.returncode}): {' '.join(argv)}\n{r.stderr.decode()}")
    return r.stdout.decode()


def wait_up(what, proc, probe, log):
    end = time.time() + 60
    while subprocess.run(probe, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode != 0:
        if proc.poll() is not None or time.time() > end:
            raise SystemExit(f"{what} did not start; its log:\n{open(log).read()[-3000:]}")
        time.sleep(0.05)


def stop(proc):
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def fixed_dirs(dirs):
    """The host directories an engine makes whatever its flags, that do not exist yet."""
    return [d for d in dirs if not os.path.exists(d)]


def remove_empty(dirs):
    for d in reversed(dirs):
        try:
            os.rmdir(d)
        except OSError:
            pass


def remove_cgroup(path):
    for base in os.listdir("/sys/fs/cgroup"):
        d = os.path.join("/sys/fs/cgroup", base, path.lstrip("/"))
        if os.path.isdir(d) and not os.path.islink(os.path.join("/sys/fs/cgroup", base)):
            for sub, _, _ in sorted(os.walk(d), key=lambda w: -len(w[0])):
                try:
                    os.rmdir(sub)
                except OSError:
                    pass


def unmount_under(path):
    mounts = [l.split()[4] for l in open("/proc/self/mountinfo") if l.split()[4].startswith(path)]
    for m in sorted(mounts, key=len, reverse=True):
        subprocess.call(["umount", "-l", m])


class Podman:
    name = "podman"

    def __init__(self, work):
        self.dir = os.path.join(work, "podman")
        self.fixed = fixed_dirs(["/run/runc"])
        self.cgroup = "/berth-bench-podman"
        busybox_archive(os.path.join(work, "podman.tar"), "localhost/busybox:bench")
        check(self.base(RUNC) + ["load", "-i", os.path.join(work, "podman.tar")])

    def base(self, runtime):
        return ["podman", "--root", self.dir + "/store", "--runroot", self.dir + "/run",
                "--cgroup-manager", "cgroupfs", "--storage-driver", "vfs", "--events-backend", "none",
                "--runtime", runtime]

    def run(self, runtime):
        return self.base(runtime) + ["run", "--rm", "--network", "none", "--cgroup-parent", self.cgroup,
                                     "--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024",
                                     "localhost/busybox:bench", "echo", "hi"]

    def close(self):
        subprocess.call(self.base(RUNC) + ["system", "reset", "--force"],
                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        unmount_under(self.dir)
        remove_cgroup(self.cgroup)
        remove_empty(self.fixed)


class Containerd:
    name = "ctr"

    def __init__(self, work):
        self.dir = os.path.join(work, "ctd")
        os.makedirs(self.dir)
        self.fixed = fixed_dirs(["/run/containerd", "/run/containerd/s"])
        self.ns = f"berth-bench-{os.getpid()}"
        cfg = os.path.join(self.dir, "config.toml")
        with open(cfg, "w") as f:
            f.write(f'version = 2\nroot = "{self.dir}/root"\nstate = "{self.dir}/state"\n'
                    'disabled_plugins = ["io.containerd.grpc.v1.cri"]\n'
                    f'[grpc]\n  address = "{self.dir}/sock"\n[ttrpc]\n  address = "{self.dir}/sock.ttrpc"\n')
        self.log = os.path.join(self.dir, "log")
        self.proc = subprocess.Popen(["containerd", "--config", cfg], stdout=open(self.log, "w"),
                                     stderr=subprocess.STDOUT, start_new_session=True)
        wait_up("containerd", self.proc, self.ctr() + ["version"], self.log)
        busybox_archive(os.path.join(work, "ctd.tar"), "docker.io/library/busybox:bench")
        check(self.ctr() + ["images", "import", os.path.join(work, "ctd.tar")])
        self.n = 0

    def ctr(self):
        return ["ctr", "--address", self.dir + "/sock", "--namespace", self.ns]

    def run(self, runtime):
        self.n += 1
        return self.ctr() + ["run", "--rm", "--fifo-dir", self.dir + "/fifo", "--runc-binary", runtime,
                             "--runc-root", self.dir + "/runtime-root",
                             "docker.io/library/busybox:bench", f"b{self.n}", "echo", "hi"]

    def close(self):
        stop(self.proc)
        unmount_under(self.dir)
        remove_cgroup("/" + self.ns)
        remove_empty(self.fixed)


class Docker:
    name = "docker"

    def __init__(self, work):
        self.dir = os.path.join(work, "docker")
        os.makedirs(self.dir)
        self.fixed = fixed_dirs(["/run/docker", "/run/docker/plugins", "/run/containerd", "/run/containerd/s"])
        self.cgroup = "/berth-bench-docker"
        cfg = os.path.join(self.dir, "daemon.json")
        json.dump({"deprecated-key-path": self.dir + "/key.json"}, open(cfg, "w"))
        self.log = os.path.join(self.dir, "log")
        self.env = dict(os.environ, DOCKER_HOST=f"unix://{self.dir}/sock", DOCKER_API_VERSION="1.41",
                        DOCKER_CONFIG=self.dir + "/cli")
        self.proc = subprocess.Popen(
            ["dockerd", "--data-root", self.dir + "/data", "--exec-root", self.dir + "/exec",
             "--pidfile", self.dir + "/pid", "--config-file", cfg, "-H", f"unix://{self.dir}/sock",
             "--bridge=none", "--iptables=false", "--ip6tables=false", "--ip-masq=false",
             "--storage-driver=vfs", "--cgroup-parent", self.cgroup, "--add-runtime", f"berth={BERTH}"],
            stdout=open(self.log, "w"), stderr=subprocess.STDOUT, start_new_session=True)
        wait_up("dockerd", self.proc, ["env", f"DOCKER_HOST=unix://{self.dir}/sock", "DOCKER_API_VERSION=1.41",
                                       f"DOCKER_CONFIG={self.dir}/cli", "docker", "version"], self.log)
        busybox_archive(os.path.join(work, "docker.tar"), "busybox:bench")
        check(["docker", "load", "-i", os.path.join(work, "docker.tar")], env=self.env)

    def run(self, runtime):
        name = "berth" if runtime == BERTH else "runc"
        return ["docker", "run", "--rm", "--runtime", name, "busybox:bench", "echo", "hi"]

    def close(self):
        stop(self.proc)
        unmount_under(self.dir)
        remove_cgroup(self.cgroup)
        remove_empty(self.fixed)


def timed(argv, env=None):
    t0 = time.perf_counter()
    r = subprocess.run(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=120)
    dt = time.perf_counter() - t0
    if r.returncode != 0 or r.stdout.decode().strip() != "hi":
        raise SystemExit(f"failed ({r.returncode}): {' '.join(argv)}\n{r.stdout.decode()}{r.stderr.decode()}")
    return dt


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--iterations", type=int, default=10)
    ap.add_argument("--engines", default="podman,ctr,docker")
    ap.add_argument("--json")
    args = ap.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("run as root")
    if not os.path.exists(BERTH):
        raise SystemExit(f"{BERTH} missing: cargo build --release")
    classes = {"podman": Podman, "ctr": Containerd, "docker": Docker}
    work = tempfile.mkdtemp(prefix="berth-bench-engines-")
    summary = {}
    try:
        for name in args.engines.split(","):
            engine = classes[name](work)
            try:
                env = getattr(engine, "env", None)
                # One warm-up each (page cache, image unpacked), not measured.
                timed(engine.run(BERTH), env)
                timed(engine.run(RUNC), env)
                times = {"berth": [], "runc": []}
                for i in range(args.iterations):
                    order = [("berth", BERTH), ("runc", RUNC)]
                    for label, rt in (order if i % 2 == 0 else order[::-1]):
                        times[label].append(timed(engine.run(rt), env))
            finally:
                engine.close()
            b, r = statistics.median(times["berth"]) * 1000, statistics.median(times["runc"]) * 1000
            summary[name] = {"berth_ms": b, "runc_ms": r, "ratio": b / r}
            print(f"{name:<7} run --rm echo: berth {b:7.1f} ms, runc {r:7.1f} ms, berth/runc {b / r:.2f}", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if args.json:
        json.dump(summary, open(args.json, "w"), indent=2)


if __name__ == "__main__":
    main()
