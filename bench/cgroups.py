#!/usr/bin/env python3
"""cgroup benchmark: the cost of applying a full linux.resources section at
create time (create with and without the section), and of one
`events --stats`, for berth-runtime and runc (crun where it can: it has no
`events`), in one run, with ratios berth/peer.

Like bench/runtime.py it runs every runtime in a private mount namespace
without the cgroup2 mount, so crun works on a hybrid host and all runtimes
see the same v1 layout. Usage (root): bench/cgroups.py [--iterations N]
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
from runtime import BERTH, make_bundle, private_legacy_namespace, timed  # noqa: E402

RESOURCES = {
    "memory": {"limit": 256 << 20, "reservation": 128 << 20, "swap": 512 << 20, "swappiness": 10},
    "cpu": {"shares": 512, "quota": 50000, "period": 100000, "cpus": "0-1", "mems": "0"},
    "pids": {"limit": 100},
    "blockIO": {},
    "devices": [{"allow": False, "access": "rwm"}, {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rwm"}],
}


def block_device():
    """major, minor of the first real disk (throttling needs a block device)."""
    for d in sorted(os.listdir("/sys/block")):
        if not d.startswith(("loop", "ram", "zram")):
            major, minor = open(f"/sys/block/{d}/dev").read().strip().split(":")
            return int(major), int(minor)
    raise SystemExit("no block device to throttle")


def write(base, spec, name, resources):
    spec = json.loads(json.dumps(spec))
    spec["linux"]["cgroupsPath"] = "/berth-bench-cg-" + name
    spec["process"]["args"] = ["sleep", "1000"]
    if resources:
        spec["linux"]["resources"] = resources
    else:
        spec["linux"].pop("resources", None)
    json.dump(spec, open(os.path.join(base, "config.json"), "w"))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--iterations", type=int, default=20)
    args = ap.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("run as root")
    private_legacy_namespace()
    major, minor = block_device()
    RESOURCES["blockIO"] = {"throttleReadBpsDevice": [{"major": major, "minor": minor, "rate": 1048576}]}
    runtimes = {"berth": BERTH}
    for name in ["runc", "crun"]:
        if shutil.which(name):
            runtimes[name] = shutil.which(name)
    work = tempfile.mkdtemp(prefix="berth-bench-cg-")
    res = {n: {"plain": [], "full": [], "stats": []} for n in runtimes}
    try:
        bundles = {}
        for name in runtimes:
            for kind in ["plain", "full"]:
                b = os.path.join(work, f"{name}-{kind}")
                os.makedirs(b)
                spec = make_bundle(b)
                write(b, spec, f"{name}-{kind}", RESOURCES if kind == "full" else None)
                bundles[(name, kind)] = b
        for i in range(args.iterations):
            for name, rt in runtimes.items():
                root = os.path.join(work, name + "-state")
                # Alternate the order: the first create after a delete pays for the kernel's cgroup teardown.
                for kind in (["plain", "full"] if i % 2 == 0 else ["full", "plain"]):
                    cid = f"{kind}{i}"
                    res[name][kind].append(timed([rt, "--root", root, "create", "--bundle", bundles[(name, kind)], cid]))
                    timed([rt, "--root", root, "delete", "--force", cid])
        for name, rt in runtimes.items():
            if name == "crun":
                continue
            root = os.path.join(work, name + "-state")
            timed([rt, "--root", root, "run", "--detach", "--bundle", bundles[(name, "full")], "stats"])
            for _ in range(args.iterations):
                t0 = time.perf_counter()
                subprocess.run([rt, "--root", root, "events", "--stats", "stats"], stdout=subprocess.DEVNULL, check=True)
                res[name]["stats"].append(time.perf_counter() - t0)
            timed([rt, "--root", root, "delete", "--force", "stats"])
    finally:
        shutil.rmtree(work, ignore_errors=True)

    med = lambda v: statistics.median(v) * 1000 if v else float("nan")  # noqa: E731
    print(f"create of a busybox container with and without a full resources section, {args.iterations} iterations, medians")
    print(f"{'runtime':<8} {'no resources':>13} {'full resources':>15} {'cost of resources':>18} {'events --stats':>15}")
    rows = {}
    for name, r in res.items():
        plain, full, stats = med(r["plain"]), med(r["full"]), med(r["stats"])
        rows[name] = (plain, full, full - plain, stats)
        print(f"{name:<8} {plain:>10.2f} ms {full:>12.2f} ms {full - plain:>15.2f} ms {stats:>12.2f} ms")
    for peer in [p for p in rows if p != "berth"]:
        b, p = rows["berth"], rows[peer]
        line = f"ratio berth/{peer}: create with resources {b[1] / p[1]:.2f}"
        if p[2] > 0:
            line += f", cost of resources {b[2] / p[2]:.2f}"
        if p[3] == p[3]:
            line += f", events --stats {b[3] / p[3]:.2f}"
        print(line)


if __name__ == "__main__":
    main()
