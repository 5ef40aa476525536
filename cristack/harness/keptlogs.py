"""Container logs kept as they appear, for a harness that shows a run's output once it is over.

fake-kubelet deletes the log of every container it removes, as the real kubelet does (kuberuntime
``removeContainer`` -> ``removeContainerLog``), and a scenario's garbage collection runs every second: by the end
of a crash loop only the newest attempts' logs would be left. ``KeptLogs.sweep``, called from the harness's own
loop, hard-links each new log file (the container keeps appending to the same inode) into a directory of its
own, where the deletion cannot reach it; ``lines`` reads them all afterwards.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from cristack.containers.crilog import read_log


def _attempt(path: Path) -> tuple[int, str]:
    head = path.name.split(".", 1)[0]
    return (int(head), path.name) if head.isdigit() else (1 << 30, path.name)


class KeptLogs:
    def __init__(self, pod_logs: Path, into: Path) -> None:
        self.pod_logs = pod_logs
        self.into = into
        self._seen: set[tuple[int, int]] = set()

    def sweep(self) -> None:
        """Links every container log not seen yet (a file is known by its device and inode)."""
        for log in self.pod_logs.glob("*/*/*.log"):
            try:
                st = log.stat()
            except FileNotFoundError:
                continue
            key = (st.st_dev, st.st_ino)
            if key in self._seen:
                continue
            dest = self.into / log.parent.parent.name / log.parent.name / f"{log.name}.{st.st_ino}"
            dest.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.link(log, dest)
            except FileNotFoundError:
                continue
            except OSError:  # no hard links here: a copy of what there is now
                shutil.copyfile(log, dest)
            self._seen.add(key)

    def lines(self) -> dict[str, list[str]]:
        """``POD/CONTAINER`` -> the lines of its logs, attempt by attempt."""
        self.sweep()
        out: dict[str, list[str]] = {}
        for ctr_dir in sorted(self.into.glob("*/*")):
            key = f"{ctr_dir.parent.name.split('_')[1]}/{ctr_dir.name}"
            for log in sorted(ctr_dir.iterdir(), key=_attempt):
                out.setdefault(key, []).extend(text for _, text in read_log(log))
        return out
