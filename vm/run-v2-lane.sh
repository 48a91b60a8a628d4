#!/usr/bin/env bash
# The pure cgroup v2 lane: boots Debian's 6.1 kernel under qemu (TCG) with
# cgroup_no_v1=all, so cgroup2 holds every controller, runs berth's
# kernel-facing integration tests inside it from an initramfs, and fails
# when any test fails. Usage: vm/run-v2-lane.sh [extra cargo test filters]
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
cache=$root/target/vm
mkdir -p "$cache"

need=()
for p in qemu-system-x86 cpio; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || need+=("$p")
done
if ((${#need[@]})); then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq "${need[@]}" >/dev/null
fi

# The kernel: Debian's current 6.1 image package, fetched once.
kernel=$(ls "$cache"/kernel/boot/vmlinuz-* 2>/dev/null | head -1 || true)
if [ -z "$kernel" ]; then
  pkg=$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-6/ {print $2; exit}')
  [ -n "$pkg" ] || { apt-get update -qq; pkg=$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-6/ {print $2; exit}'); }
  (cd "$cache" && rm -f linux-image-*.deb && apt-get download -qq "$pkg")
  rm -rf "$cache/kernel" && dpkg-deb -x "$cache"/linux-image-*.deb "$cache/kernel"
  kernel=$(ls "$cache"/kernel/boot/vmlinuz-* | head -1)
fi

# The tests, built on the host.
cargo build -q -p runtime-cli
bins=$(cargo test -q --no-run -p cgroups -p runtime-cli --message-format=json 2>/dev/null \
  | python3 -c 'import json,sys
for l in sys.stdin:
    m = json.loads(l)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["profile"]["test"]:
        t = m["target"]["name"]
        if t in ("cgroups", "device_filter", "lifecycle", "isolation", "resources", "seccomp", "cve", "exec", "bad_input", "hooks", "console"):
            print(m["executable"])' | tr '\n' ' ')
runtime_bin=$root/target/debug/berth-runtime

# The initramfs: busybox, the libraries the binaries need, the binaries at
# their host paths (tests find berth-runtime by its absolute path).
ir=$cache/initramfs
rm -rf "$ir" && mkdir -p "$ir"/{bin,sbin,etc,proc,sys,dev,tmp,root,run,lib64,usr/bin}
cp /bin/busybox "$ir/bin/busybox"
for a in $(/bin/busybox --list); do [ "$a" = busybox ] || ln -sf busybox "$ir/bin/$a"; done
echo 'root:x:0:0:root:/root:/bin/sh' > "$ir/etc/passwd"
for f in $bins $runtime_bin; do
  mkdir -p "$ir$(dirname "$f")" && cp "$f" "$ir$f"
  for lib in $(ldd "$f" | awk '/=>/ {print $3} /ld-linux/ {print $1}'); do
    [ -e "$ir$lib" ] || { mkdir -p "$ir$(dirname "$lib")"; cp -L "$lib" "$ir$lib"; }
  done
done
# Stage 1 moves everything onto a tmpfs and switches root to it: pivot_root
# refuses the initramfs itself as the old root, and containers need it.
cat > "$ir/init" <<'INIT'
#!/bin/sh
mount -t proc proc /proc
mkdir /newroot && mount -t tmpfs -o size=2g tmpfs /newroot
for d in /*; do case "$d" in /proc|/newroot) ;; *) cp -a "$d" /newroot/ ;; esac; done
mkdir -p /newroot/proc
umount /proc
exec switch_root /newroot /stage2
INIT
chmod +x "$ir/init"
cat > "$ir/stage2" <<INIT
#!/bin/sh
mount -t proc proc /proc; mount -t sysfs sysfs /sys; mount -t devtmpfs dev /dev
# The root is already a tmpfs: no tmpfs over /tmp or /run, which could hide
# the test binaries (they sit at their host paths, possibly under /tmp).
mkdir -p /tmp /run && chmod 1777 /tmp
mkdir -p /dev/pts /dev/shm && mount -t devpts devpts /dev/pts
mount -t cgroup2 cgroup2 /sys/fs/cgroup
for c in \$(cat /sys/fs/cgroup/cgroup.controllers); do echo "+\$c" > /sys/fs/cgroup/cgroup.subtree_control 2>/dev/null; done
echo "lane: cgroup2 controllers: \$(cat /sys/fs/cgroup/cgroup.subtree_control)"
ip link set lo up 2>/dev/null
status=0
for t in $bins; do
  echo "lane: running \$t"
  # ps_lists expects procps' \`ps -ef\` columns; the guest has busybox ps.
  \$t --test-threads=2 --skip ps_lists $* || status=1
done
echo "BERTH-LANE-RESULT: \$status"
poweroff -f
INIT
chmod +x "$ir/stage2"
(cd "$ir" && find . | cpio -o -H newc --quiet | gzip -1) > "$cache/initramfs.cpio.gz"

log=$cache/lane.log
timeout 900 qemu-system-x86_64 -accel tcg -m 3072 -smp 2 -nographic -no-reboot \
  -kernel "$kernel" -initrd "$cache/initramfs.cpio.gz" \
  -append "console=ttyS0 cgroup_no_v1=all panic=-1 quiet loglevel=3" </dev/null | tee "$log" | grep -E "^(lane:|test result|test .*FAILED|BERTH-LANE)" || true
result=$(grep -a "BERTH-LANE-RESULT" "$log" | tail -1 | awk '{print $2}' | tr -d '\r')
if [ "$result" != "0" ]; then
  echo "cgroup v2 lane FAILED (log: $log)"; grep -a -E "panicked|FAILED" "$log" | head -20
  exit 1
fi
echo "cgroup v2 lane passed"
