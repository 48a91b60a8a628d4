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

Not measured yet (see docs/network.md): iperf3 throughput, published ports
and the connection rate (berth has no published ports yet), and Docker.

Every command's exit status is checked; a fast failure is not a result.
Usage (root): bench/network.py [--iterations N] [--json FILE]
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
    def __init__(self, work, ns):
        self.ns = ns
        self.netdir = os.path.join(work, "podman-networks")
        os.makedirs(self.netdir)
        super().__init__(work)
        self.env = None

    def base(self, runtime):
        return self.ns.wrap(super().base(runtime) + ["--network-config-dir", self.netdir])

    def cmd(self, args):
        base = self.base(engines.RUNC)
        if args and args[0] == "run":
            args = ["run", "--cgroup-parent", self.cgroup, "--ulimit", "nofile=1024:1024",
                    "--ulimit", "nproc=1024:1024"] + args[1:]
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


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--iterations", type=int, default=10)
    ap.add_argument("--json")
    args = ap.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("run as root")
    work = tempfile.mkdtemp(prefix="berth-bench-network-")
    ns = Netns()
    made = []
    result = {}
    try:
        made.append(Berth(work, ns))
        made.append(Podman(work, ns))
        made[0].make_network("10.96.0.0/24")
        made[1].make_network("10.97.0.0/24")
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
    finally:
        for e in made:
            e.close()
        ns.close()
        shutil.rmtree(work, ignore_errors=True)
    print(f"busybox; {args.iterations} alternating runs where timed; medians")
    for what, m in result.items():
        cells = ", ".join(f"{n} {v:.1f}" for n, v in m.items())
        peers = ", ".join(f"berth/{p} {m['berth'] / m[p]:.2f}"
                          for p in m if "berth" in m and p != "berth" and m.get(p))
        print(f"{what}: {cells}" + (f"; {peers}" if "berth" in m else ""))
    if "loopback in the same namespace (MB/s)" in result:
        c2c = result[f"container to container, {SIZE_MB} MiB over TCP (MB/s)"]["berth"]
        print(f"berth container to container / loopback: {c2c / result['loopback in the same namespace (MB/s)']['loopback']:.2f}")
    if args.json:
        json.dump(result, open(args.json, "w"), indent=2)


if __name__ == "__main__":
    main()
