"""A container process's resource use as the CRI reports it (ContainerStats): CPU time and resident memory,
read from /proc. Our containers are ordinary processes, so /proc is where a cgroup's figures would come from."""

from __future__ import annotations

import os
from pathlib import Path


def process_usage(pid: int) -> tuple[int, int]:
    """CPU time (ns, user + system) and resident memory (bytes) of a live process; zeros when it is gone."""
    if pid <= 0:
        return 0, 0
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        ticks = os.sysconf("SC_CLK_TCK")
        cpu = (int(fields[11]) + int(fields[12])) * 1_000_000_000 // ticks
        rss = int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        return cpu, rss
    except (OSError, IndexError, ValueError):
        return 0, 0
