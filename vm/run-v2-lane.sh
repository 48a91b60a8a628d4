#!/usr/bin/env bash
# The pure cgroup v2 lane: boots Debian's 6.1 kernel under qemu (TCG) with
# cgroup_no_v1=all, so cgroup2 holds every controller, runs berth's
# kernel-facing integration tests inside it from an initramfs, and fails
# when any test fails.
#
# A hang can never stall CI: the guest kernel panics on a soft lockup or a
# hung task (after printing every CPU's backtrace and the task list), each
# test binary runs under a timeout that dumps the blocked tasks and names the
# tests that had not finished, and each runtime command a test starts has a
# timeout of its own (test-support, BERTH_TEST_TIMEOUT). The host then prints
# a diagnosis naming the binary and test that hung.
#
# Usage: vm/run-v2-lane.sh [extra test-harness arguments, e.g. a filter]
# Environment: LANE_BINS (space-separated test target names to run, default
# all of them), LANE_BIN_TIMEOUT (seconds per test binary, default 120; the
# slowest takes ~20 s), LANE_TIMEOUT (seconds for the whole guest, default
# 600; a passing lane takes ~3.5 minutes), LANE_CACHE (where the kernel,
# the initramfs and the console log go, default target/vm; two lanes can
# run side by side with two).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
cache=${LANE_CACHE:-$root/target/vm}
mkdir -p "$cache"
bin_timeout=${LANE_BIN_TIMEOUT:-120}
lane_timeout=${LANE_TIMEOUT:-600}
lane_bins=${LANE_BINS:-cgroups device_filter lifecycle isolation resources seccomp cve exec bad_input hooks console}

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
  | LANE_BINS="$lane_bins" python3 -c 'import json,os,sys
wanted = os.environ["LANE_BINS"].split()
for l in sys.stdin:
    m = json.loads(l)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["profile"]["test"]:
        if m["target"]["name"] in wanted:
            print(m["executable"])' | tr '\n' ' ')
[ -n "$bins" ] || { echo "cgroup v2 lane: no test binary matches LANE_BINS=$lane_bins" >&2; exit 1; }
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
echo "lane: kernel \$(uname -r), \$(grep -c ^processor /proc/cpuinfo) cpus"
# A hang must end the lane quickly and say where: sysrq for task dumps, and
# a hung task (D state for 60 s) panics, as a soft lockup does (command line).
echo 1 > /proc/sys/kernel/sysrq
echo 60 > /proc/sys/kernel/hung_task_timeout_secs 2>/dev/null
echo 1 > /proc/sys/kernel/hung_task_panic 2>/dev/null
ip link set lo up 2>/dev/null
# Runtime commands inside tests time out sooner than the binary does.
export BERTH_TEST_TIMEOUT=60
status=0
for t in $bins; do
  name=\$(basename \$t)
  echo "lane: running \$t"
  start=\$(date +%s)
  # ps_lists expects procps' \`ps -ef\` columns; the guest has busybox ps.
  { timeout -s KILL $bin_timeout \$t --test-threads=2 --skip ps_lists $*; echo \$? > /tmp/rc; } 2>&1 | tee /tmp/out
  rc=\$(cat /tmp/rc)
  echo "lane: \$name exited \$rc after \$((\$(date +%s) - start)) s"
  if [ "\$rc" = 137 ]; then
    echo "lane: TIMEOUT: \$name ran past $bin_timeout s; tests that had not finished:"
    \$t --list 2>/dev/null | sed -n 's/: test\$//p' | while read n; do
      grep -q "^test \$n \.\.\. " /tmp/out || echo "lane: hung test: \$name \$n"
    done
    echo "lane: blocked tasks and CPU backtraces follow"
    echo w > /proc/sysrq-trigger; echo l > /proc/sysrq-trigger
    sleep 2
  fi
  [ "\$rc" = 0 ] || status=1
done
echo "BERTH-LANE-RESULT: \$status"
poweroff -f
INIT
chmod +x "$ir/stage2"
(cd "$ir" && find . | cpio -o -H newc --quiet | gzip -1) > "$cache/initramfs.cpio.gz"

# Kernel messages up to KERN_WARNING reach the console (stack traces print at
# that level); a soft lockup or hung task panics with every CPU's backtrace
# and the task list (panic_print=1), and the panic ends qemu (-no-reboot).
#
# TCG runs single-threaded (one host thread takes the vCPUs in turn). With
# multi-threaded TCG the guest kernel now and then locked up both vCPUs at
# the same instruction while it live-patched a jump label there (an int3 at
# ___slab_alloc+0x833: one vCPU in asm_exc_int3, the other spinning at the
# site, kworkers in D state, an RCU stall, then the soft lockup): the
# cross-vCPU code modification that text_poke_bp relies on is what MTTCG
# got wrong. Single-threaded TCG cannot interleave the two vCPUs inside it.
log=$cache/lane.log
started=$(date +%s)
set +e
timeout -k 10 "$lane_timeout" qemu-system-x86_64 -accel tcg,thread=single -m 3072 -smp 2 -nographic -no-reboot \
  -kernel "$kernel" -initrd "$cache/initramfs.cpio.gz" \
  -append "console=ttyS0 cgroup_no_v1=all panic=-1 loglevel=5 softlockup_panic=1 softlockup_all_cpu_backtrace=1 hung_task_panic=1 panic_print=1" \
  </dev/null >"$log" 2>&1
qemu_rc=$?
set -e
elapsed=$(($(date +%s) - started))
grep -a -E "^(lane:|test result|test .*FAILED|BERTH-LANE)" "$log" || true
# No result line (the guest panicked or was killed) is a failure to diagnose, not a script error.
result=$(grep -a "BERTH-LANE-RESULT" "$log" | tail -1 | awk '{print $2}' | tr -d '\r' || true)
if [ "$result" = "0" ]; then
  echo "cgroup v2 lane passed in ${elapsed} s"
  exit 0
fi
vm/lane-diagnose.py "$log" "$qemu_rc" "$elapsed" "$lane_timeout"
exit 1
