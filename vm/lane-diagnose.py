#!/usr/bin/env python3
"""Says why the cgroup v2 lane failed, from the guest's console log.

Usage: lane-diagnose.py LOG QEMU_EXIT_STATUS ELAPSED_SECONDS LANE_TIMEOUT

Names the test binary that was running and the tests in it that had not
finished when the guest panicked (soft lockup, hung task) or a binary ran
past its timeout, and prints the kernel's reason and the first call traces,
so a hang is diagnosed from CI's output alone.
"""
import re
import subprocess
import sys


def unfinished(binary, out_lines):
    """Tests of `binary` (run on the host with --list) with no result line."""
    try:
        listed = subprocess.run([binary, "--list"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.TimeoutExpired):
        return []
    names = [l[: -len(": test")] for l in listed.splitlines() if l.endswith(": test")]
    done = set()
    for l in out_lines:
        m = re.match(r"test (\S+) \.\.\. ", l)
        if m:
            done.add(m.group(1))
    return [n for n in names if n not in done and n != "ps_lists"]


def main():
    log_path, qemu_rc, elapsed, lane_timeout = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
    text = open(log_path, "rb").read().decode("utf-8", "replace").replace("\r", "")
    lines = text.splitlines()
    print(f"cgroup v2 lane FAILED after {elapsed} s (qemu exit {qemu_rc}; full console log: {log_path})")

    running = [i for i, l in enumerate(lines) if l.startswith("lane: running ")]
    binary = lines[running[-1]].split(" ", 2)[2].strip() if running else None
    since = lines[running[-1] + 1 :] if running else []
    finished_binary = any(l.startswith("lane: ") and " exited " in l for l in since)

    panic = next((l for l in lines if "Kernel panic - not syncing" in l), None)
    lockups = [l for l in lines if "soft lockup" in l or "blocked for more than" in l]
    timeouts = [l for l in lines if l.startswith("lane: TIMEOUT") or l.startswith("lane: hung test")]

    if panic:
        print(f"the guest kernel panicked: {panic.split('Kernel panic - not syncing:')[-1].strip()}")
    elif qemu_rc == 124:
        print(f"the guest ran past the lane's {lane_timeout} s timeout and was killed")
    for l in lockups[:6]:
        print(f"  {l.strip()}")
    for l in timeouts:
        print(l)
    if binary and not finished_binary:
        names = unfinished(binary, since)
        print(f"test binary running at the end: {binary}")
        if names:
            print("tests in it that had not finished: " + ", ".join(names))

    failed = [i for i, l in enumerate(lines) if re.match(r"test .* FAILED", l) or "panicked at" in l]
    for i in failed[:10]:
        # The failure and the message under it.
        print("\n".join(lines[i : i + 3]))

    # For a hang, the call traces that say where: those after the lockup,
    # hung-task or sysrq report (an OOM report's trace is a test's doing).
    hang = bool(panic or lockups or timeouts or qemu_rc == 124)
    if hang:
        starts = [
            i
            for i, l in enumerate(lines)
            if "soft lockup" in l or "blocked for more than" in l or "sysrq:" in l or "NMI backtrace" in l or "rcu: INFO" in l
        ]
        shown = 0
        for start in starts:
            call = next((j for j in range(start, min(start + 40, len(lines))) if "Call Trace:" in lines[j]), None)
            if call is None:
                continue
            block = []
            for l in lines[start : call + 30]:
                block.append(l)
                if l.strip().endswith("</TASK>"):
                    break
            print("---- trace ----")
            print("\n".join(block))
            shown += 1
            if shown == 6:
                break

    if not (panic or lockups or timeouts or failed or qemu_rc == 124):
        print("no result line from the guest; the last lines of its console:")
        print("\n".join(lines[-30:]))


if __name__ == "__main__":
    main()
