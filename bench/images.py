#!/usr/bin/env python3
"""Image benchmark: the same multi-layer image pulled from a local registry
and loaded from a docker-archive by berth and by its peers, interleaved in one
run, each iteration into a fresh empty store. Prints medians and the ratios
berth / peer, with plain `tar -xzf` of the same layer blobs as the floor.

Debian packages it needs (apt-get install -y ...):
  docker-registry   the local registry (Debian's docker/distribution)
  skopeo umoci      push the image; skopeo copy + umoci unpack as a peer
  podman            podman pull and podman load as a peer
  pigz              optional: compresses the layers faster while building

The image is built from host content, 5 gzip layers written as an OCI layout
in a temp dir, each from a sorted walk of its directories that takes files
until a budget is spent (about 300 MB in all): /usr/lib/x86_64-linux-gnu,
/usr/share, /usr/bin + /usr/sbin, the rest of /usr/lib and /etc. A
docker-registry on 127.0.0.1 (a free port, storage in the temp dir) serves it;
nothing is sent anywhere else. Each tool's result is checked (the largest
file of every layer is there, with its size) so a failure is not timed as a
success. The registry, every store, mount and temp dir are gone at the end.

Rows:
  berth pull          berth --root S pull --quiet 127.0.0.1:P/bench:latest
  skopeo+umoci        skopeo copy docker://... oci:L:bench, then umoci unpack
  podman pull         podman --root S --runroot R --storage-driver overlay pull
  berth load          berth --root S load -i ARCHIVE, then berth image mount, which
                      unpacks any layer load left packed: the row ends where podman
                      load ends, with the layers unpacked. ARCHIVE: a docker-archive
                      of the image, written by skopeo (uncompressed layers, as
                      `docker save` writes them)
  podman load         podman ... load -i ARCHIVE
  tar sequential      tar -xzf of each layer blob in turn, into one dir
  tar parallel        one tar -xzf per layer, all at once, each into its own dir

Usage (root): bench/images.py [--iterations N] [--json FILE]
"""
import argparse
import concurrent.futures
import hashlib
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BERTH = os.path.join(ROOT, "target", "release", "berth")
# (name, directories (relative to /), excluded directories, budget in bytes of file content).
# Each layer takes the files of its directories in sorted order until its budget is spent, so
# the image is about 300 MB uncompressed on any host whose /usr is large enough.
MB = 1 << 20
LAYERS = [
    ("libs", ["usr/lib/x86_64-linux-gnu"], [], 90 * MB),
    ("share", ["usr/share"], [], 70 * MB),
    ("bin", ["usr/bin", "usr/sbin"], [], 60 * MB),
    ("lib", ["usr/lib"], ["usr/lib/x86_64-linux-gnu"], 50 * MB),
    ("etc", ["etc"], [], 30 * MB),
]
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
# Local traffic only: no proxy for any tool.
ENV = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
ENV["NO_PROXY"] = ENV["no_proxy"] = "127.0.0.1,localhost"
CHILDREN = []  # background processes to stop on an interrupt


def run(argv, **kw):
    """Runs argv quietly; on failure prints its stderr and stops."""
    p = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=ENV, text=True, **kw)
    if p.returncode != 0:
        raise SystemExit(f"failed ({p.returncode}): {' '.join(argv)}\n{p.stderr.strip()}")
    return p


def timed(argv):
    """Runs argv; returns its wall time in seconds."""
    t0 = time.perf_counter()
    run(argv)
    return time.perf_counter() - t0


def select_files(dirs, excludes, budget):
    """The entries (relative to /) of a layer: the parents of dirs, then a
    sorted walk of dirs taking every directory and symlink and regular files
    until their sizes add up to budget. Returns (entries, (largest regular
    file, its size))."""
    parents = sorted({"/".join(d.split("/")[:i]) for d in dirs for i in range(1, d.count("/") + 1)})
    entries, used, best = list(parents), 0, ("", -1)
    for d in dirs:
        for dirpath, dirnames, filenames in os.walk("/" + d):
            rel = dirpath[1:]
            dirnames[:] = sorted(n for n in dirnames if os.path.join(rel, n) not in excludes)
            entries.append(rel)
            for n in sorted(filenames):
                st = os.lstat(os.path.join(dirpath, n))
                kind = st.st_mode & 0o170000
                if kind == 0o100000:
                    if used + st.st_size > budget:
                        continue
                    used += st.st_size
                    if st.st_size > best[1]:
                        best = (os.path.join(rel, n), st.st_size)
                elif kind != 0o120000:
                    continue  # sockets, fifos, devices: not image content
                entries.append(os.path.join(rel, n))
    return entries, best


def build_layer(name, dirs, excludes, budget, blobs, gzip):
    """tar | gzip of the selected entries, hashing both streams. Returns the
    layer's descriptor fields."""
    entries, check = select_files(dirs, excludes, budget)
    listing = os.path.join(blobs, f"tmp-{name}.list")
    with open(listing, "wb") as f:
        f.write(b"\0".join(e.encode() for e in entries) + b"\0")
    argv = ["tar", "-C", "/", "--numeric-owner", "--no-recursion", "--null", "-T", listing, "-cf", "-"]
    tmp = os.path.join(blobs, f"tmp-{name}")
    errlog = os.path.join(blobs, f"tmp-{name}.log")
    with open(tmp, "wb") as out, open(errlog, "w") as err:
        tar = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=err)
        gz = subprocess.Popen([gzip, "-n", "-c"], stdin=subprocess.PIPE, stdout=out)
        CHILDREN.extend([tar, gz])
        diff, size = hashlib.sha256(), 0
        while chunk := tar.stdout.read(1 << 20):
            diff.update(chunk)
            gz.stdin.write(chunk)
            size += len(chunk)
        gz.stdin.close()
        # tar exits 1 when a file changed while it was read (e.g. a log in /etc): still a valid layer.
        if tar.wait() not in (0, 1) or gz.wait() != 0:
            raise SystemExit(f"building layer {name} failed: {open(errlog).read()}")
    os.unlink(errlog)
    os.unlink(listing)
    h = hashlib.sha256()
    with open(tmp, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    digest = "sha256:" + h.hexdigest()
    os.rename(tmp, os.path.join(blobs, h.hexdigest()))
    return {"name": name, "digest": digest, "size": os.path.getsize(os.path.join(blobs, h.hexdigest())),
            "diff_id": "sha256:" + diff.hexdigest(), "uncompressed": size, "check": check}


def write_blob(blobs, data):
    data = json.dumps(data, separators=(",", ":")).encode()
    hexd = hashlib.sha256(data).hexdigest()
    with open(os.path.join(blobs, hexd), "wb") as f:
        f.write(data)
    return {"digest": "sha256:" + hexd, "size": len(data)}


def build_layout(layout):
    """An OCI image layout of 5 layers from host content, tagged `bench`."""
    blobs = os.path.join(layout, "blobs", "sha256")
    os.makedirs(blobs)
    gzip = shutil.which("pigz") or "gzip"
    with concurrent.futures.ThreadPoolExecutor(os.cpu_count() or 2) as pool:
        try:
            layers = list(pool.map(lambda s: build_layer(*s, blobs, gzip), LAYERS))
        except BaseException:
            pool.shutdown(wait=False, cancel_futures=True)
            stop_children()  # the running builds see EOF or a broken pipe and end
            raise
    config = {
        "created": "2024-01-01T00:00:00Z",
        "architecture": "amd64",
        "os": "linux",
        "config": {"Cmd": ["/usr/bin/bash"], "Env": ["PATH=/usr/sbin:/usr/bin"]},
        "rootfs": {"type": "layers", "diff_ids": [lay["diff_id"] for lay in layers]},
        "history": [{"created": "2024-01-01T00:00:00Z", "created_by": f"bench/images.py: layer {lay['name']}"} for lay in layers],
    }
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, **write_blob(blobs, config)},
        "layers": [{"mediaType": OCI_LAYER_GZIP, "digest": lay["digest"], "size": lay["size"]} for lay in layers],
    }
    index = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{"mediaType": OCI_MANIFEST, **write_blob(blobs, manifest),
                       "annotations": {"org.opencontainers.image.ref.name": "bench"}}],
    }
    json.dump(index, open(os.path.join(layout, "index.json"), "w"))
    json.dump({"imageLayoutVersion": "1.0.0"}, open(os.path.join(layout, "oci-layout"), "w"))
    return layers


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_registry(work):
    port = free_port()
    conf = os.path.join(work, "registry.yml")
    with open(conf, "w") as f:
        f.write(f"""version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: {work}/registry
http:
  addr: 127.0.0.1:{port}
""")
    log = open(os.path.join(work, "registry.log"), "w")
    proc = subprocess.Popen(["docker-registry", "serve", conf], stdout=log, stderr=log, env=ENV)
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    deadline = time.monotonic() + 30
    while True:
        try:
            if opener.open(f"http://127.0.0.1:{port}/v2/", timeout=2).status == 200:
                return proc, port
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            raise SystemExit("docker-registry did not start:\n" + open(log.name).read())
        time.sleep(0.1)


def stop(proc):
    if proc and proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def unmount_under(path):
    """Detaches every mount at or below path, deepest first."""
    path = os.path.realpath(path)
    points = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            mp = line.split()[4].encode().decode("unicode_escape")
            if mp == path or mp.startswith(path + "/"):
                points.append(mp)
    for mp in sorted(points, key=len, reverse=True):
        subprocess.call(["umount", "-l", mp], stderr=subprocess.DEVNULL)


def remove(path):
    unmount_under(path)
    shutil.rmtree(path, ignore_errors=True)


def check_tree(tool, layer_dirs, layers):
    """Every layer's check file is in one of layer_dirs, with its size."""
    for lay in layers:
        rel, size = lay["check"]
        found = [d for d in layer_dirs
                 if os.path.isfile(os.path.join(d, rel)) and not os.path.islink(os.path.join(d, rel))
                 and os.path.getsize(os.path.join(d, rel)) == size]
        if not found:
            raise SystemExit(f"{tool}: /{rel} ({size} bytes, layer {lay['name']}) is missing from the result")


def subdirs(pattern_dir, suffix=""):
    if not os.path.isdir(pattern_dir):
        return []
    return [os.path.join(pattern_dir, n, suffix) for n in os.listdir(pattern_dir)]


def berth_layers(store):
    """berth unpacks each layer into <store>/snapshots/<chain id>/fs."""
    return subdirs(f"{store}/snapshots", "fs")


def podman_layers(d):
    """containers/storage's overlay driver: <graphroot>/overlay/<id>/diff."""
    return subdirs(f"{d}/storage/overlay", "diff")


class Bench:
    def __init__(self, work, layout, archive, port, layers, berth_pull, berth):
        self.work, self.layout, self.archive, self.port = work, layout, archive, port
        self.layers, self.berth_pull, self.berth = layers, berth_pull, berth
        self.ref = f"127.0.0.1:{port}/bench:latest"
        self.n = 0

    def scratch(self, name):
        """A fresh empty directory for one measurement (caches written back
        first). Short: podman refuses a runroot over 50 characters."""
        self.n += 1
        d = os.path.join(self.work, f"{name}{self.n}")
        if len(d) + len("/run") > 50:
            raise SystemExit(f"{d}: too long a path for podman's runroot (set TMPDIR to a shorter directory)")
        os.makedirs(d)
        os.sync()
        return d

    def podman(self, d):
        return ["podman", "--root", f"{d}/storage", "--runroot", f"{d}/run", "--tmpdir", f"{d}/tmp",
                "--storage-driver", "overlay", "--cgroup-manager", "cgroupfs", "--events-backend", "none"]

    def berth_pull_once(self):
        d = self.scratch("bp")
        try:
            t = timed([self.berth, "--root", d, "pull", "--quiet", self.ref])
            check_tree("berth pull", berth_layers(d), self.layers)
            return t
        finally:
            remove(d)

    def skopeo_umoci_once(self):
        d = self.scratch("su")
        try:
            a = timed(["skopeo", "copy", "--quiet", "--src-tls-verify=false", f"docker://{self.ref}", f"oci:{d}/layout:bench"])
            b = timed(["umoci", "unpack", "--image", f"{d}/layout:bench", f"{d}/bundle"])
            check_tree("skopeo+umoci", [f"{d}/bundle/rootfs"], self.layers)
            return a + b, a, b
        finally:
            remove(d)

    def podman_pull_once(self):
        d = self.scratch("pp")
        try:
            t = timed(self.podman(d) + ["pull", "--quiet", "--tls-verify=false", self.ref])
            check_tree("podman pull", podman_layers(d), self.layers)
            return t
        finally:
            remove(d)

    def berth_load_once(self):
        """load, then `image mount`, which unpacks any layer load left packed
        (as starting a container would): the row ends where podman load
        ends, with the layers unpacked."""
        d = self.scratch("bl")
        try:
            a = timed([self.berth, "--root", d, "load", "--quiet", "-i", self.archive])
            b = timed([self.berth, "--root", d, "image", "mount", "bench:latest"])
            check_tree("berth load", berth_layers(d), self.layers)
            run([self.berth, "--root", d, "image", "unmount", "bench:latest"])
            return a + b, a, b
        finally:
            remove(d)

    def podman_load_once(self):
        d = self.scratch("pl")
        try:
            t = timed(self.podman(d) + ["load", "--quiet", "-i", self.archive])
            check_tree("podman load", podman_layers(d), self.layers)
            return t
        finally:
            remove(d)

    def blob(self, lay):
        return os.path.join(self.layout, "blobs", "sha256", lay["digest"].split(":")[1])

    def tar_seq_once(self):
        d = self.scratch("ts")
        try:
            t0 = time.perf_counter()
            for lay in self.layers:
                run(["tar", "-xzf", self.blob(lay), "-C", d])
            t = time.perf_counter() - t0
            check_tree("tar sequential", [d], self.layers)
            return t
        finally:
            remove(d)

    def tar_par_once(self):
        d = self.scratch("tp")
        try:
            dirs = [os.path.join(d, lay["name"]) for lay in self.layers]
            for x in dirs:
                os.makedirs(x)
            t0 = time.perf_counter()
            procs = [subprocess.Popen(["tar", "-xzf", self.blob(lay), "-C", x], stderr=subprocess.PIPE)
                     for lay, x in zip(self.layers, dirs)]
            if any(p.wait() != 0 for p in procs):
                raise SystemExit("tar -xzf failed: " + b"".join(p.stderr.read() for p in procs).decode())
            t = time.perf_counter() - t0
            check_tree("tar parallel", dirs, self.layers)
            return t
        finally:
            remove(d)


ROWS = ["berth pull", "skopeo+umoci", "  skopeo copy", "  umoci unpack", "podman pull",
        "berth load", "  load -i", "  image mount", "podman load", "tar sequential", "tar parallel"]
# The steps of a row, timed separately too.
PARTS = {"skopeo+umoci": ["  skopeo copy", "  umoci unpack"], "berth load": ["  load -i", "  image mount"]}


def on_sigterm(signum, frame):
    raise SystemExit("terminated")


def stop_children():
    for p in CHILDREN:
        if p.poll() is None:
            p.kill()
            p.wait()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--iterations", type=int, default=5)
    ap.add_argument("--json")
    args = ap.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("run as root")
    if not os.path.exists(BERTH):
        raise SystemExit(f"{BERTH} missing: cargo build --release")
    missing = [t for t in ["docker-registry", "skopeo", "umoci", "podman", "tar", "gzip"] if not shutil.which(t)]
    if missing:
        raise SystemExit(f"missing: {' '.join(missing)} (apt-get install -y docker-registry skopeo umoci podman)")
    signal.signal(signal.SIGTERM, on_sigterm)
    probe = subprocess.run([BERTH, "pull", "--help"], capture_output=True, text=True)
    berth_pull = probe.returncode == 0
    if not berth_pull:
        if "unrecognized subcommand" not in probe.stderr:
            raise SystemExit(f"berth pull --help failed: {probe.stderr.strip()}")
        print("berth pull is unavailable (unrecognized subcommand): skipping the berth pull rows")

    # Other work on the machine skews every row: the load average goes with the figures.
    load0 = " ".join(f"{x:.1f}" for x in os.getloadavg())
    work = tempfile.mkdtemp(prefix="berth-bench-images-")
    # One binary for the whole run, even if target/release/berth is rebuilt meanwhile.
    berth = os.path.join(work, "berth")
    shutil.copy2(BERTH, berth)
    registry = None
    results = {k: [] for k in ROWS}
    try:
        layout = os.path.join(work, "layout")
        t0 = time.perf_counter()
        layers = build_layout(layout)
        unc = sum(lay["uncompressed"] for lay in layers)
        comp = sum(lay["size"] for lay in layers)
        print(f"berth: {BERTH}, built {time.strftime('%Y-%m-%d %H:%M', time.localtime(os.path.getmtime(BERTH)))}")
        print(f"image: {len(layers)} layers, {unc / 1e6:.0f} MB uncompressed, {comp / 1e6:.0f} MB gzip "
              f"(built in {time.perf_counter() - t0:.0f} s)")
        for lay in layers:
            print(f"  {lay['name']:<6} {lay['uncompressed'] / 1e6:>7.0f} MB  {lay['size'] / 1e6:>6.0f} MB gzip  check /{lay['check'][0]}")
        registry, port = start_registry(work)
        run(["skopeo", "--insecure-policy", "copy", "--quiet", "--dest-tls-verify=false",
             f"oci:{layout}:bench", f"docker://127.0.0.1:{port}/bench:latest"])
        archive = os.path.join(work, "bench.tar")
        run(["skopeo", "--insecure-policy", "copy", "--quiet", f"oci:{layout}:bench", f"docker-archive:{archive}:bench:latest"])
        bench = Bench(work, layout, archive, port, layers, berth_pull, berth)

        steps = [("berth pull", bench.berth_pull_once), ("skopeo+umoci", bench.skopeo_umoci_once),
                 ("podman pull", bench.podman_pull_once), ("berth load", bench.berth_load_once),
                 ("podman load", bench.podman_load_once), ("tar sequential", bench.tar_seq_once),
                 ("tar parallel", bench.tar_par_once)]
        if not berth_pull:
            steps = steps[1:]
        for i in range(args.iterations):
            # Interleaved, and the order rotated each iteration.
            k = i % len(steps)
            for name, fn in steps[k:] + steps[:k]:
                r = fn()
                if isinstance(r, tuple):
                    for part, t in zip([name] + PARTS[name], r):
                        results[part].append(t)
                else:
                    results[name].append(r)
                print(f"  iteration {i + 1}: {name} {results[name][-1]:.2f} s", flush=True)
    finally:
        stop_children()
        stop(registry)
        remove(work)

    med = {k: statistics.median(v) for k, v in results.items() if v}
    print(f"{len(layers)} layers, {unc / 1e6:.0f} MB uncompressed; {args.iterations} iterations each, interleaved, "
          f"each into an empty store; times are medians (load average {load0} at the start, "
          f"{' '.join(f'{x:.1f}' for x in os.getloadavg())} at the end)")
    for k in results:
        print(f"{k:<16} {med[k]:>8.2f} s" if k in med else f"{k:<16} {'—':>8}  (not run)")
    ratios = {}
    pairs = [("berth pull", "podman pull"), ("berth pull", "skopeo+umoci"), ("berth load", "podman load"),
             ("berth pull", "tar sequential"), ("berth pull", "tar parallel"),
             ("berth load", "tar sequential"), ("berth load", "tar parallel")]
    for a, b in pairs:
        if a in med and b in med:
            ratios[f"{a} / {b}"] = med[a] / med[b]
            print(f"ratio {a} / {b}: {med[a] / med[b]:.2f}")
    if args.json:
        json.dump({"uncompressed_bytes": unc, "gzip_bytes": comp, "iterations": args.iterations,
                   "median_s": {k.strip(): v for k, v in med.items()}, "samples_s": {k.strip(): v for k, v in results.items()},
                   "ratios": ratios}, open(args.json, "w"), indent=2)


if __name__ == "__main__":
    main()
