#!/usr/bin/env python3
"""Networking (issue 15), berth against Podman 4.3 (netavark, runc), in one
run, inside a network namespace of the bench's own that plays the host (the
machine's devices and firewall are never touched):

1. Network set-up cost: the median of `run --rm --network NET true` on a
   user-defined bridge network minus the median of `run --rm --network none
   true`, alternating engines; berth / Podman of that difference (goal <= 0.5).
2. Container to container: a TCP stream of 256 MiB from one container to
   another on the network (busybox nc on both ends; the bytes received are
   checked), as MB/s, and against plain loopback in the bench's namespace.

3. iperf3 (Debian's, in an image of the bench's own with its libraries):
   container to container on the network, against iperf3 over loopback in the
   bench's namespace (goal >= 0.9), and from the namespace's loopback to a
   port the container publishes (`-p`), as Gbit/s.
4. Connection rate: short HTTP/1.0 GETs (connect, request, read to the close)
   from the namespace's loopback to busybox httpd behind a published port,
   one at a time for 2 s, as connections per second: a fresh server
   container per sample, N samples per engine (alternating, in a loop of
   their own after the iperf3 ones); the samples go to the JSON too, since
   one sample spreads by about +-15% here.

Peers: Podman 4.3 (netavark) and Docker (dockerd with its own bridge and
iptables rules, in the same namespace; `--peers podman` leaves it out), on
their default storage, overlay (overlay2 for dockerd), as berth's: the
servers then read their files through the same kind of root, and the
connection rate measures the network path. `--peer-storage vfs` puts the
peers on plain directories instead (busybox httpd's per-connection fork
and file reads cost about 5% less there than through overlayfs).

Every command's exit status is checked; a fast failure is not a result.
Usage (root): bench/network.py [--iterations N] [--json FILE] [--peer-storage overlay|vfs]
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
import engines  # noqa: E402
import run as runbench  # noqa: E402

SIZE_MB = 256


def check(cmd, **kw):
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=300, **kw)
    if r.returncode != 0:
        raise SystemExit(f"{' '.join(cmd[:6])} failed ({r.returncode}): {r.stderr.decode()[-2000:]}")
    return r.stdout.decode()


class Netns:
    """A network namespace of the bench's own, pinned with `ip netns`."""

    def __init__(self):
        self.name = f"berth-bench-{os.getpid()}"
        check(["ip", "netns", "add", self.name])
        check(["ip", "netns", "exec", self.name, "ip", "link", "set", "lo", "up"])

    def wrap(self, cmd):
        return ["nsenter", f"--net=/run/netns/{self.name}"] + cmd

    def close(self):
        subprocess.call(["ip", "netns", "del", self.name])


class Berth(runbench.Berth):
    def __init__(self, work, ns):
        super().__init__(work)
        self.ns = ns

    def cmd(self, args):
        return self.ns.wrap(super().cmd(args))

    def image(self):
        return "busybox:bench"

    def make_network(self, subnet):
        check(self.cmd(["network", "create", "--subnet", subnet, "benchnet"]))

    def close(self):
        ids = subprocess.run(self.cmd(["ps", "-aq"]), stdout=subprocess.PIPE).stdout.decode().split()
        if ids:
            subprocess.call(self.cmd(["rm", "-f"] + ids), stdout=subprocess.DEVNULL)
        subprocess.call(self.cmd(["network", "rm", "benchnet"]), stdout=subprocess.DEVNULL,
                        stderr=subprocess.DEVNULL)


class Podman(engines.Podman):
    def __init__(self, work, ns, storage):
        self.ns = ns
        self.storage = storage
        self.netdir = os.path.join(work, "podman-networks")
        os.makedirs(self.netdir)
        super().__init__(work)
        self.env = None

    def base(self, runtime):
        base = [self.storage if a == "vfs" else a for a in super().base(runtime)]
        return self.ns.wrap(base + ["--network-config-dir", self.netdir])

    def cmd(self, args):
        base = self.base(engines.RUNC)
        if args and args[0] == "run":
            args = ["run", "--cgroup-parent", self.cgroup, "--ulimit", "nofile=1024:1024",
                    "--ulimit", "nproc=1024:1024"] + args[1:]
        if args[:2] == ["rm", "-f"]:
            # Podman's rm -f waits the stop timeout (10 s) first; berth's kills at once.
            args = ["rm", "-f", "--time", "0"] + args[2:]
        return base + args

    def image(self):
        return "localhost/busybox:bench"

    def make_network(self, subnet):
        check(self.cmd(["network", "create", "--subnet", subnet, "benchnet"]))

    def close(self):
        subprocess.call(self.cmd(["rm", "-af", "-t", "0"]), stdout=subprocess.DEVNULL,
                        stderr=subprocess.DEVNULL)
        subprocess.call(self.cmd(["network", "rm", "-f", "benchnet"]), stdout=subprocess.DEVNULL,
                        stderr=subprocess.DEVNULL)
        super().close()


class Docker:
    """dockerd with its own bridge and iptables (nft), started in the bench's
    namespace with its own data and exec roots and socket."""
    name = "docker"

    def __init__(self, work, ns, storage):
        self.ns = ns
        self.dir = os.path.join(work, "docker")
        os.makedirs(self.dir)
        self.fixed = engines.fixed_dirs(["/run/docker", "/run/docker/plugins", "/run/containerd",
                                         "/run/containerd/s"])
        self.cgroup = "/berth-bench-docker-net"
        cfg = os.path.join(self.dir, "daemon.json")
        json.dump({"deprecated-key-path": self.dir + "/key.json"}, open(cfg, "w"))
        self.log = os.path.join(self.dir, "log")
        self.proc = subprocess.Popen(
            ns.wrap(["dockerd", "--data-root", self.dir + "/data", "--exec-root", self.dir + "/exec",
                     "--pidfile", self.dir + "/pid", "--config-file", cfg, "-H", f"unix://{self.dir}/sock",
                     "--bip", "10.99.0.1/24",
                     "--storage-driver=" + ("overlay2" if storage == "overlay" else storage), "--cgroup-parent", self.cgroup]),
            stdout=open(self.log, "w"), stderr=subprocess.STDOUT, start_new_session=True)
        engines.wait_up("dockerd", self.proc, self.cmd(["version"]), self.log)
        engines.busybox_archive(os.path.join(work, "docker.tar"), "busybox:bench")
        check(self.cmd(["load", "-i", os.path.join(work, "docker.tar")]))

    def cmd(self, args):
        return ["env", f"DOCKER_HOST=unix://{self.dir}/sock", "DOCKER_API_VERSION=1.41",
                f"DOCKER_CONFIG={self.dir}/cli", "docker"] + args

    def image(self):
        return "busybox:bench"

    def make_network(self, subnet):
        check(self.cmd(["network", "create", "--subnet", subnet, "benchnet"]))

    def close(self):
        ids = subprocess.run(self.cmd(["ps", "-aq"]), stdout=subprocess.PIPE).stdout.decode().split()
        if ids:
            subprocess.call(self.cmd(["rm", "-f"] + ids), stdout=subprocess.DEVNULL)
        subprocess.call(self.cmd(["network", "rm", "benchnet"]), stdout=subprocess.DEVNULL,
                        stderr=subprocess.DEVNULL)
        engines.stop(self.proc)
        engines.unmount_under(self.dir)
        engines.remove_cgroup(self.cgroup)
        engines.remove_empty(self.fixed)


def run_true(e, network):
    t = time.perf_counter()
    check(e.cmd(["run", "--rm", "--network", network, e.image(), "true"]))
    return time.perf_counter() - t


def stream(e, iterations):
    """MB/s of a TCP stream between two containers on benchnet (medians)."""
    server = check(e.cmd(["run", "-d", "--network", "benchnet", e.image(), "sh", "-c",
                          # (busybox nc stops reading the network at the end of its
                          # stdin: a FIFO held open gives it none)
                          "mkfifo /tmp/f; exec 3<>/tmp/f; "
                          "while :; do nc -l -p 5001 <&3 | wc -c > /tmp/n; mv /tmp/n /tmp/got; done"])).strip()
    ip = check(e.cmd(["inspect", "-f",
                      '{{(index .NetworkSettings.Networks "benchnet").IPAddress}}', server])).strip()
    rates = []
    try:
        time.sleep(0.5)
        for _ in range(iterations):
            t = time.perf_counter()
            check(e.cmd(["run", "--rm", "--network", "benchnet", e.image(), "sh", "-c",
                         f"head -c {SIZE_MB << 20} /dev/zero | nc -w 5 {ip} 5001"]))
            dt = time.perf_counter() - t
            time.sleep(0.2)
            got = check(e.cmd(["exec", server, "cat", "/tmp/got"])).strip()
            if got != str(SIZE_MB << 20):
                raise SystemExit(f"{e.name}: the server got {got} bytes, not {SIZE_MB << 20}")
            rates.append(SIZE_MB / dt)
    finally:
        subprocess.call(e.cmd(["rm", "-f", server]), stdout=subprocess.DEVNULL)
    return statistics.median(rates)


def loopback(ns, iterations, work):
    """MB/s of the same stream over the bench namespace's loopback."""
    rates = []
    for _ in range(iterations):
        fifo = os.path.join(work, "fifo")
        srv = subprocess.Popen(ns.wrap(["busybox", "sh", "-c",
                                        f"rm -f {fifo}; mkfifo {fifo}; exec 3<>{fifo}; "
                                        "busybox nc -l -p 5002 <&3 | busybox wc -c"]),
                               stdout=subprocess.PIPE)
        time.sleep(0.2)
        t = time.perf_counter()
        check(ns.wrap(["busybox", "sh", "-c",
                       f"head -c {SIZE_MB << 20} /dev/zero | busybox nc -w 5 127.0.0.1 5002"]))
        out = srv.communicate(timeout=60)[0].decode().strip()
        if out != str(SIZE_MB << 20):
            raise SystemExit(f"loopback got {out} bytes")
        rates.append(SIZE_MB / (time.perf_counter() - t))
    return statistics.median(rates)


IPERF_PORT = 5201


def iperf_files():
    """iperf3 and the libraries it loads, for the bench's image."""
    out = check(["ldd", "/usr/bin/iperf3"])
    libs = [w for line in out.splitlines() for w in line.split() if w.startswith("/")]
    return ["/usr/bin/iperf3"] + libs


def load_iperf_image(e, work):
    archive = os.path.join(work, f"iperf3-{e.name}.tar")
    tag = "localhost/iperf3:bench" if e.name == "podman" else "iperf3:bench"
    engines.busybox_archive(archive, tag, extra=iperf_files())
    check(e.cmd(["load", "-i", archive]))
    return tag


def gbits(report):
    """Gbit/s received, from iperf3's JSON."""
    return json.loads(report)["end"]["sum_received"]["bits_per_second"] / 1e9


def iperf_c2c(e, image, iterations):
    server = check(e.cmd(["run", "-d", "--network", "benchnet", image,
                          "/usr/bin/iperf3", "-s", "-p", str(IPERF_PORT)])).strip()
    ip = check(e.cmd(["inspect", "-f",
                      '{{(index .NetworkSettings.Networks "benchnet").IPAddress}}', server])).strip()
    try:
        time.sleep(0.5)
        return statistics.median(
            gbits(check(e.cmd(["run", "--rm", "--network", "benchnet", image, "/usr/bin/iperf3", "-c", ip,
                               "-p", str(IPERF_PORT), "-t", "3", "-J"])))
            for _ in range(iterations))
    finally:
        subprocess.call(e.cmd(["rm", "-f", server]), stdout=subprocess.DEVNULL)


def iperf_loopback(ns, iterations):
    rates = []
    for _ in range(iterations):
        srv = subprocess.Popen(ns.wrap(["iperf3", "-s", "-1", "-p", "5301"]),
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(0.3)
        rates.append(gbits(check(ns.wrap(["iperf3", "-c", "127.0.0.1", "-p", "5301", "-t", "3", "-J"]))))
        if srv.wait(timeout=30) != 0:
            raise SystemExit("the loopback iperf3 server failed")
    return statistics.median(rates)


def iperf_published(e, image, ns, iterations, host_port):
    server = check(e.cmd(["run", "-d", "--network", "benchnet", "-p", f"{host_port}:{IPERF_PORT}",
                          image, "/usr/bin/iperf3", "-s", "-p", str(IPERF_PORT)])).strip()
    try:
        time.sleep(0.5)
        return statistics.median(
            gbits(check(ns.wrap(["iperf3", "-c", "127.0.0.1", "-p", str(host_port), "-t", "3", "-J"])))
            for _ in range(iterations))
    finally:
        subprocess.call(e.cmd(["rm", "-f", server]), stdout=subprocess.DEVNULL)


CONNECT_LOOP = """
import socket, sys, time
port = int(sys.argv[1]); n = 0; end = time.perf_counter() + 2.0
while time.perf_counter() < end:
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.sendall(b"GET / HTTP/1.0\\r\\n\\r\\n")
    body = b""
    while True:
        d = s.recv(4096)
        if not d:
            break
        body += d
    s.close()
    if b"bench-page" not in body:
        raise SystemExit("a wrong answer: %r" % body[:200])
    n += 1
print(n / 2.0)
"""


def connection_rate(e, ns, host_port):
    server = check(e.cmd(["run", "-d", "--network", "benchnet", "-p", f"{host_port}:80", e.image(),
                          "sh", "-c", "mkdir /tmp/w && echo bench-page > /tmp/w/index.html && "
                          "exec busybox httpd -f -p 80 -h /tmp/w"])).strip()
    try:
        time.sleep(0.5)
        return float(check(ns.wrap(["python3", "-c", CONNECT_LOOP, str(host_port)])).strip())
    finally:
        subprocess.call(e.cmd(["rm", "-f", server]), stdout=subprocess.DEVNULL)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--iterations", type=int, default=10)
    ap.add_argument("--json")
    ap.add_argument("--peers", default="podman,docker", help="podman is always in; docker optional")
    ap.add_argument("--peer-storage", default="overlay", choices=["overlay", "vfs"],
                    help="the peers' storage driver: overlay (their default, and berth's) or vfs")
    args = ap.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("run as root")
    work = tempfile.mkdtemp(prefix="berth-bench-network-")
    ns = Netns()
    made = []
    result = {}
    samples = {}
    try:
        made.append(Berth(work, ns))
        made.append(Podman(work, ns, args.peer_storage))
        if "docker" in args.peers.split(","):
            made.append(Docker(work, ns, args.peer_storage))
        for k, e in enumerate(made):
            e.make_network(f"10.{96 + k}.0.0/24")
        for e in made:
            run_true(e, "none")
            run_true(e, "benchnet")
        times = {(e.name, n): [] for e in made for n in ("none", "benchnet")}
        for i in range(args.iterations):
            for e in (made if i % 2 == 0 else made[::-1]):
                for n in ("none", "benchnet"):
                    times[(e.name, n)].append(run_true(e, n))
        med = {k: statistics.median(v) * 1000 for k, v in times.items()}
        result["run --rm --network none true (ms)"] = {e.name: med[(e.name, "none")] for e in made}
        result["run --rm on a bridge network (ms)"] = {e.name: med[(e.name, "benchnet")] for e in made}
        result["network set-up cost (ms)"] = {
            e.name: med[(e.name, "benchnet")] - med[(e.name, "none")] for e in made}
        result[f"container to container, {SIZE_MB} MiB over TCP (MB/s)"] = {
            e.name: stream(e, max(3, args.iterations // 3)) for e in made}
        result["loopback in the same namespace (MB/s)"] = {"loopback": loopback(ns, 3, work)}
        images = {e.name: load_iperf_image(e, work) for e in made}
        n = max(5, args.iterations // 2)
        c2c, pub, conn = {}, {}, {}
        for i in range(n):
            for e in (made if i % 2 == 0 else made[::-1]):
                c2c.setdefault(e.name, []).append(iperf_c2c(e, images[e.name], 1))
                port = 15201 + made.index(e)
                pub.setdefault(e.name, []).append(iperf_published(e, images[e.name], ns, 1, port))
        for i in range(args.iterations):
            for e in (made if i % 2 == 0 else made[::-1]):
                conn.setdefault(e.name, []).append(connection_rate(e, ns, 18081 + made.index(e)))
        samples["HTTP/1.0 connections to a published port (per s)"] = conn
        samples["iperf3 container to container (Gbit/s)"] = c2c
        samples["iperf3 loopback to a published port (Gbit/s)"] = pub
        result["iperf3 container to container (Gbit/s)"] = {k: statistics.median(v) for k, v in c2c.items()}
        result["iperf3 loopback in the same namespace (Gbit/s)"] = {"loopback": iperf_loopback(ns, 3)}
        result["iperf3 loopback to a published port (Gbit/s)"] = {k: statistics.median(v) for k, v in pub.items()}
        result["HTTP/1.0 connections to a published port (per s)"] = {
            k: statistics.median(v) for k, v in conn.items()}
    finally:
        for e in made:
            e.close()
        ns.close()
        shutil.rmtree(work, ignore_errors=True)
    print(f"busybox; {args.iterations} alternating runs where timed; medians; "
          f"the peers' storage: {args.peer_storage}")
    for what, m in result.items():
        cells = ", ".join(f"{n} {v:.1f}" for n, v in m.items())
        peers = ", ".join(f"berth/{p} {m['berth'] / m[p]:.2f}"
                          for p in m if "berth" in m and p != "berth" and m.get(p))
        print(f"{what}: {cells}" + (f"; {peers}" if "berth" in m else ""))
    if "loopback in the same namespace (MB/s)" in result:
        c2c = result[f"container to container, {SIZE_MB} MiB over TCP (MB/s)"]["berth"]
        print(f"berth container to container / loopback: {c2c / result['loopback in the same namespace (MB/s)']['loopback']:.2f}")
    if "iperf3 loopback in the same namespace (Gbit/s)" in result:
        c2c = result["iperf3 container to container (Gbit/s)"]["berth"]
        lo = result["iperf3 loopback in the same namespace (Gbit/s)"]["loopback"]
        print(f"berth iperf3 container to container / loopback: {c2c / lo:.2f}")
    if args.json:
        json.dump(dict(result, samples=samples), open(args.json, "w"), indent=2)


if __name__ == "__main__":
    main()
