#!/usr/bin/env python3
"""Memory and CPU of one process tree (e.g. a `cristack up` node: kubelet, crio, conmon and the containers'
applet processes), read from /proc, for sizing the Kubernetes requests and limits in deploy/kubernetes.

    scripts/node_footprint.py PID [--interval 30]

Prints the tree's process count, the sum of RSS (what `ps` shows; counts shared pages once per process, so
an upper bound), the sum of PSS (shared pages split between their users; close to what a memory cgroup is
charged for the tree) and the CPU the tree used during --interval seconds, in millicores. Linux only.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

PROC = Path("/proc")
TICKS = os.sysconf("SC_CLK_TCK")


@dataclass
class Footprint:
    """One sample of a process tree."""

    processes: int
    rss_kib: int
    pss_kib: int
    cpu_ticks: int


def parents() -> dict[int, int]:
    """pid -> parent pid of every process (from /proc/PID/stat, which every kernel has)."""
    out: dict[int, int] = {}
    for entry in PROC.iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue  # gone meanwhile
            out[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    return out


def tree(pid: int) -> list[int]:
    """``pid`` and all its descendants."""
    kids: dict[int, list[int]] = {}
    for child, parent in parents().items():
        kids.setdefault(parent, []).append(child)
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo += kids.get(current, [])
    return found


def field_kib(text: str, name: str) -> int:
    """A `Name:   123 kB` line's value from /proc/PID/status or smaps_rollup."""
    for line in text.splitlines():
        if line.startswith(name + ":"):
            return int(line.split()[1])
    return 0


def sample(pid: int) -> Footprint:
    """The tree's footprint now; processes that exit while being read are left out."""
    fp = Footprint(0, 0, 0, 0)
    for p in tree(pid):
        try:
            status = (PROC / str(p) / "status").read_text()
            rollup = (PROC / str(p) / "smaps_rollup").read_text()
            stat = (PROC / str(p) / "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()  # after the command name, which may hold spaces
        fp.processes += 1
        fp.rss_kib += field_kib(status, "VmRSS")
        fp.pss_kib += field_kib(rollup, "Pss")
        fp.cpu_ticks += int(fields[11]) + int(fields[12])  # utime + stime
    return fp


def main(argv: list[str] | None = None) -> int:
    """Sample the tree twice, --interval apart, and print the second sample with the CPU used between."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("pid", type=int)
    parser.add_argument("--interval", type=float, default=30.0, help="seconds over which to measure CPU")
    args = parser.parse_args(argv)
    if not (PROC / str(args.pid)).exists():
        print(f"node_footprint: no process {args.pid}", file=sys.stderr)
        return 2
    first = sample(args.pid)
    time.sleep(args.interval)
    last = sample(args.pid)
    # CPU of processes that exited during the interval is lost; fine for a steady-state node.
    millicores = 1000 * (last.cpu_ticks - first.cpu_ticks) / TICKS / args.interval
    print(f"processes {last.processes}  rss {last.rss_kib / 1024:.1f} MiB  pss {last.pss_kib / 1024:.1f} MiB  "
          f"cpu {millicores:.0f}m over {args.interval:g}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
