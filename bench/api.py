#!/usr/bin/env python3
"""`berth serve` against dockerd (docker.io, started here with networking
off) and `podman system service` (Podman 4.3's Docker-compatible API,
runc, cgroupfs), in one run, each with its own root and socket under a
temp dir:

1. docker-py: create -> start -> wait -> remove of `busybox true`, the
   engines alternating; medians. Goals: <= 0.3 x dockerd, <= 0.5 x Podman.
2. `docker ps -a` and `docker inspect` (the docker CLI) with N containers
   made (not started) in each store: medians, berth against dockerd.
   Goal: <= 0.5 x. Also `docker inspect` of all N in one call (the
   CLI's start paid once, N requests on its connection), and the same
   requests from docker-py and over one raw keep-alive HTTP connection,
   which leave out the docker CLI's own start (about 10 ms here, the
   same for both servers).
3. The idle server's memory: berth serve's RSS against dockerd's plus its
   containerd's. Goal: <= 0.3 x.
4. `docker import` of a 17 MiB root filesystem archive, every engine,
   alternating; medians.

Every call is checked (docker-py raises on an error answer; each wait must
say 0; each CLI call's exit status): a fast failure is not a result.

Usage (root): bench/api.py [--iterations N] [--containers N] [--peers docker,podman] [--json FILE]
"""
import argparse
import io
import json
import os
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time

import docker

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import engines  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BERTH_BIN = os.path.join(ROOT, "target", "release", "berth")
ULIMITS = [docker.types.Ulimit(name="nofile", soft=1024, hard=1024),
           docker.types.Ulimit(name="nproc", soft=1024, hard=1024)]


def rss_kb(pid):
    """The resident memory of `pid` and its descendants, in KiB."""
    total = 0
    todo = [pid]
    while todo:
        p = todo.pop()
        try:
            for line in open(f"/proc/{p}/status"):
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
            for t in os.listdir(f"/proc/{p}/task"):
                todo += [int(c) for c in open(f"/proc/{p}/task/{t}/children").read().split()]
        except (FileNotFoundError, ProcessLookupError):
            pass
    return total


class BerthServe:
    name = "berth"

    def __init__(self, work):
        self.dir = os.path.join(work, "berth")
        os.makedirs(self.dir)
        self.root = os.path.join(self.dir, "root")
        archive = os.path.join(work, "berth.tar")
        engines.busybox_archive(archive, "busybox:bench")
        engines.check([BERTH_BIN, "--root", self.root, "load", "-q", "-i", archive])
        self.sock = os.path.join(self.dir, "api.sock")
        self.log = os.path.join(self.dir, "log")
        self.proc = subprocess.Popen([BERTH_BIN, "--root", self.root, "serve", "-H", f"unix://{self.sock}"],
                                     stdout=open(self.log, "w"), stderr=subprocess.STDOUT, start_new_session=True)
        self.env = dict(os.environ, DOCKER_HOST=f"unix://{self.sock}", DOCKER_CONFIG=self.dir + "/cli")
        engines.wait_up("berth serve", self.proc, ["env", f"DOCKER_HOST=unix://{self.sock}", "docker", "version"],
                        self.log)
        self.image = "busybox:bench"
        self.pid = self.proc.pid

    def close(self):
        subprocess.call([BERTH_BIN, "--root", self.root, "rm", "-f", *subprocess.run(
            [BERTH_BIN, "--root", self.root, "ps", "-aq"], stdout=subprocess.PIPE).stdout.decode().split()],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        engines.stop(self.proc)


class Dockerd(engines.Docker):
    def __init__(self, work):
        super().__init__(work)
        self.sock = f"{self.dir}/sock"
        self.env.pop("DOCKER_API_VERSION", None)
        self.image = "busybox:bench"
        self.pid = self.proc.pid


class PodmanService(engines.Podman):
    name = "podman"

    def __init__(self, work):
        super().__init__(work)
        self.sock = os.path.join(self.dir, "api.sock")
        self.log = os.path.join(self.dir, "service.log")
        self.proc = subprocess.Popen(self.base(engines.RUNC) + ["system", "service", "--time=0", f"unix://{self.sock}"],
                                     stdout=open(self.log, "w"), stderr=subprocess.STDOUT, start_new_session=True)
        self.env = dict(os.environ, DOCKER_HOST=f"unix://{self.sock}", DOCKER_CONFIG=self.dir + "/cli")
        engines.wait_up("podman system service", self.proc,
                        ["env", f"DOCKER_HOST=unix://{self.sock}", "docker", "version"], self.log)
        self.image = "localhost/busybox:bench"
        self.pid = self.proc.pid

    def close(self):
        engines.stop(self.proc)
        super().close()


def loop_once(client, image):
    """create -> start -> wait -> remove of `true`; its time."""
    t = time.perf_counter()
    c = client.containers.create(image, ["true"], network_mode="none", ulimits=ULIMITS)
    c.start()
    status = c.wait(timeout=60)
    if status["StatusCode"] != 0:
        raise SystemExit(f"wait said {status}")
    c.remove()
    return time.perf_counter() - t


class RawHttp:
    """One keep-alive HTTP/1.1 connection to a unix socket: the server's
    own time for a request, without a client library's."""

    def __init__(self, path):
        import socket
        self.s = socket.socket(socket.AF_UNIX)
        self.s.settimeout(60)
        self.s.connect(path)

    def get(self, path):
        self.s.sendall(f"GET {path} HTTP/1.1\r\nHost: bench\r\n\r\n".encode())
        buf = b""
        while b"\r\n\r\n" not in buf:
            chunk = self.s.recv(65536)
            if not chunk:
                raise SystemExit(f"GET {path}: the server closed the connection")
            buf += chunk
        head, body = buf.split(b"\r\n\r\n", 1)
        lines = head.split(b"\r\n")
        status = int(lines[0].split()[1])
        length = [ln for ln in lines if ln.lower().startswith(b"content-length:")]
        if length:
            n = int(length[0].split(b":")[1])
            while len(body) < n:
                body += self.s.recv(1 << 20)
        elif any(ln.lower() == b"transfer-encoding: chunked" for ln in lines):
            body = self.chunked(body)
        else:
            raise SystemExit(f"GET {path}: neither Content-Length nor chunked in {head!r}")
        if status != 200:
            raise SystemExit(f"GET {path}: {status} {body[:200]!r}")
        return json.loads(body)

    def chunked(self, buf):
        """Reads a chunked body whose start is `buf`."""
        out = b""
        while True:
            while b"\r\n" not in buf:
                buf += self.s.recv(65536)
            size, buf = buf.split(b"\r\n", 1)
            n = int(size.split(b";")[0], 16)
            while len(buf) < n + 2:
                buf += self.s.recv(1 << 20)
            out, buf = out + buf[:n], buf[n + 2:]
            if n == 0:
                return out


def cli_time(engine, args):
    t = time.perf_counter()
    r = subprocess.run(["docker"] + args, env=engine.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=300)
    dt = time.perf_counter() - t
    if r.returncode != 0:
        raise SystemExit(f"{engine.name}: docker {' '.join(args)} failed ({r.returncode}): {r.stderr.decode()}")
    return dt, r.stdout.decode()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--iterations", type=int, default=20)
    ap.add_argument("--containers", type=int, default=500)
    ap.add_argument("--peers", default="docker,podman")
    ap.add_argument("--json")
    args = ap.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("run as root")
    if not os.path.exists(BERTH_BIN):
        raise SystemExit(f"{BERTH_BIN} missing: cargo build --release")
    work = tempfile.mkdtemp(prefix="berth-bench-api-")
    made = []
    summary = {}
    try:
        made.append(BerthServe(work))
        peers = {"docker": Dockerd, "podman": PodmanService}
        for p in args.peers.split(","):
            made.append(peers[p](work))
        clients = {e.name: docker.DockerClient(base_url=f"unix://{e.sock}", timeout=120) for e in made}

        # 3 first: idle, before any container ran.
        time.sleep(1)
        rss = {e.name: rss_kb(e.pid) for e in made}
        for e in made:
            print(f"idle RSS {e.name:<7} {rss[e.name] / 1024:7.1f} MiB", flush=True)
        for e in made[1:]:
            summary[f"rss_vs_{e.name}"] = rss["berth"] / rss[e.name]
            print(f"idle RSS berth/{e.name}: {rss['berth'] / rss[e.name]:.2f}", flush=True)

        # 1: the docker-py loop, alternating.
        for e in made:
            loop_once(clients[e.name], e.image)  # warm-up, not measured
        times = {e.name: [] for e in made}
        for i in range(args.iterations):
            for e in (made if i % 2 == 0 else made[::-1]):
                times[e.name].append(loop_once(clients[e.name], e.image))
        med = {k: statistics.median(v) * 1000 for k, v in times.items()}
        for k, v in med.items():
            print(f"docker-py create/start/wait/remove {k:<7} {v:7.1f} ms", flush=True)
        for e in made[1:]:
            summary[f"loop_vs_{e.name}"] = med["berth"] / med[e.name]
            print(f"loop berth/{e.name}: {med['berth'] / med[e.name]:.2f}", flush=True)
        summary["loop_ms"] = med

        # 2: ps -a and inspect with N containers, berth and dockerd.
        listed = [e for e in made if e.name in ("berth", "docker")]
        for e in listed:
            c = clients[e.name]
            for n in range(args.containers):
                c.containers.create(e.image, ["true"], name=f"bench-{n}", network_mode="none")
        ps = {e.name: [] for e in listed}
        insp = {e.name: [] for e in listed}
        raw_ps = {e.name: [] for e in listed}
        raw_insp = {e.name: [] for e in listed}
        http_insp = {e.name: [] for e in listed}
        insp_all = {e.name: [] for e in listed}
        conns = {e.name: RawHttp(e.sock) for e in listed}
        for i in range(max(5, args.iterations // 2)):
            for e in (listed if i % 2 == 0 else listed[::-1]):
                # The server's share: the same two requests from docker-py.
                api = clients[e.name].api
                t = time.perf_counter()
                n = len(api.containers(all=True))
                raw_ps[e.name].append(time.perf_counter() - t)
                if n != args.containers:
                    raise SystemExit(f"{e.name}: the API listed {n} containers, not {args.containers}")
                t = time.perf_counter()
                if api.inspect_container(f"bench-{i}")["Name"] != f"/bench-{i}":
                    raise SystemExit(f"{e.name}: inspect through the API gave another container")
                raw_insp[e.name].append(time.perf_counter() - t)
                # The server alone: one keep-alive connection, no library.
                for k in range(10):
                    t = time.perf_counter()
                    got = conns[e.name].get(f"/v1.41/containers/bench-{(i * 10 + k) % args.containers}/json")
                    http_insp[e.name].append(time.perf_counter() - t)
                    if got["Name"] != f"/bench-{(i * 10 + k) % args.containers}":
                        raise SystemExit(f"{e.name}: raw inspect gave {got['Name']}")
                dt, out = cli_time(e, ["ps", "-a", "-q"])
                if len(out.split()) != args.containers:
                    raise SystemExit(f"{e.name}: ps -a listed {len(out.split())} containers, not {args.containers}")
                ps[e.name].append(dt)
                dt, out = cli_time(e, ["inspect", "-f", "{{.Name}}", f"bench-{i}"])
                if out.strip() != f"/bench-{i}":
                    raise SystemExit(f"{e.name}: inspect said {out!r}")
                insp[e.name].append(dt)
                # Every container in one docker CLI call (its start paid once).
                if i < 5:
                    names = [f"bench-{n}" for n in range(args.containers)]
                    dt, out = cli_time(e, ["inspect", "-f", "{{.Name}}"] + names)
                    if out.split() != ["/" + n for n in names]:
                        raise SystemExit(f"{e.name}: inspect of all said {out[:200]!r}...")
                    insp_all[e.name].append(dt)
        for what, d in (("ps -a", ps), ("inspect", insp), ("inspect all", insp_all), ("API list", raw_ps),
                        ("API inspect", raw_insp), ("HTTP inspect", http_insp)):
            m = {k: statistics.median(v) * 1000 for k, v in d.items()}
            line = ", ".join(f"{k} {v:.2f} ms" for k, v in m.items())
            ratio = m["berth"] / m["docker"] if "docker" in m else float("nan")
            summary[f"{what}_vs_docker"] = ratio
            print(f"{what} with {args.containers} containers: {line}, berth/docker {ratio:.2f}", flush=True)

        # 4: docker import of a root filesystem archive (busybox and 16 MiB
        # of random bytes), every engine, alternating; each import removed
        # again untimed.
        rootfs = os.path.join(work, "rootfs.tar")
        with tarfile.open(rootfs, "w") as t:
            t.add("/bin/busybox", arcname="bin/busybox")
            blob = tarfile.TarInfo("data/random")
            blob.size = 16 << 20
            t.addfile(blob, io.BytesIO(os.urandom(blob.size)))
        imports = {e.name: [] for e in made}
        for i in range(max(5, args.iterations // 4)):
            for e in (made if i % 2 == 0 else made[::-1]):
                dt, out = cli_time(e, ["import", rootfs, f"imp-bench:{i}"])
                if not out.strip().startswith("sha256:"):
                    raise SystemExit(f"{e.name}: import said {out!r}")
                imports[e.name].append(dt)
                cli_time(e, ["rmi", f"imp-bench:{i}"])
        m = {k: statistics.median(v) * 1000 for k, v in imports.items()}
        for e in made[1:]:
            summary[f"import_vs_{e.name}"] = m["berth"] / m[e.name]
        print("docker import of a 17 MiB archive: "
              + ", ".join(f"{k} {v:.1f} ms" for k, v in m.items()) + "; "
              + ", ".join(f"berth/{e.name} {m['berth'] / m[e.name]:.2f}" for e in made[1:]), flush=True)
    finally:
        for e in made:
            try:
                e.close()
            except SystemExit as err:
                print(f"closing {e.name}: {err}", file=sys.stderr)
        shutil.rmtree(work, ignore_errors=True)
    if args.json:
        json.dump(summary, open(args.json, "w"), indent=2)


if __name__ == "__main__":
    main()
