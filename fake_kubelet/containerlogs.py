"""The kubelet's side of container logs: it, not the runtime, deletes them.

CRI-O's RemoveContainer leaves the log file (server/container_remove.go); the kubelet removes it first:
kuberuntime ``removeContainer`` -> ``removeContainerLog`` -> the container log manager's ``Clean``
(pkg/kubelet/logs/container_log_manager.go: ContainerStatus, then every file matching ``LOG_PATH*``, the
log and its rotations), and the container GC removes the log directory of a pod whose content may go
(kuberuntime_gc.go ``evictPodLogsDirectories``, the pod uid parsed from ``NAMESPACE_NAME_UID``).

Ours, beyond upstream: nothing outside the kubelet's pod logs directory is removed (the path comes from the
runtime's answer), and only directories of pods this kubelet ran and deleted, never those of pods it does
not know (the real kubelet owns /var/log/pods; fake-kubelet may share it with one).
"""

from __future__ import annotations

import glob
import logging
import os
import shutil
from collections.abc import Iterable
from pathlib import Path

log = logging.getLogger(__name__)


def _inside(root: Path, path: Path) -> bool:
    """Whether ``path`` itself (a link is not followed: removing it removes the link) lies below ``root``."""
    return root.resolve() in (path.parent.resolve() / path.name).parents


def clean(log_path: str, root: Path) -> list[Path]:
    """Removes a container's log and its rotated copies (``LOG_PATH*``) below ``root``; what it removed."""
    if not log_path:
        return []
    removed = []
    for name in glob.glob(glob.escape(log_path) + "*"):
        path = Path(name)
        if not _inside(root, path) or path.is_dir():
            continue
        try:
            path.unlink()
        except FileNotFoundError:
            continue
        except OSError as err:
            log.warning("cannot remove container log %s: %s", path, err.strerror)
            continue
        removed.append(path)
    return removed


def pod_uid(directory_name: str) -> str:
    """``parsePodUIDFromLogsDirectory``: the last ``_``-separated part (NAMESPACE_NAME_UID, or a bare UID)."""
    return directory_name.rsplit("_", 1)[-1]


def evict_pod_log_dirs(root: Path, removable: Iterable[str]) -> list[Path]:
    """Removes the log directories below ``root`` of the pods in ``removable``; what it removed."""
    gone = set(removable)
    if not gone:
        return []
    removed = []
    try:
        entries = list(os.scandir(root))
    except FileNotFoundError:
        return []
    for entry in entries:
        if pod_uid(entry.name) not in gone or not entry.is_dir(follow_symlinks=False):
            continue
        try:
            shutil.rmtree(entry.path)
        except OSError as err:
            log.warning("cannot remove pod log directory %s: %s", entry.path, err.strerror or err)
            continue
        removed.append(Path(entry.path))
    return removed
