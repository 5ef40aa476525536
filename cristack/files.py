"""File helpers for state and logs: atomic writes and paths confined to a root."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import BinaryIO

# What a configuration file may weigh: the kubelet's own bound on the files it reads (pkg/kubelet/config/common.go
# maxConfigLength, 10 MiB); a config named /dev/zero or a FIFO must end in an error, not in memory exhaustion.
MAX_CONFIG_BYTES = 10 * 1024 * 1024


class ReadLimitReached(ValueError):
    """k8s.io/utils/io ``ErrLimitReached``: the input is at least as long as the limit."""


def read_at_most(f: BinaryIO, limit: int) -> bytes:
    """``utilio.ReadAtMost``: up to ``limit`` bytes of ``f``; reaching the limit is the error (so a file of exactly
    ``limit`` bytes is refused, as upstream)."""
    data = f.read(limit)
    if len(data) >= limit:
        raise ReadLimitReached(f"the read limit is reached: at most {limit - 1:,} bytes are read")
    return data


def read_config(path: Path, limit: int = MAX_CONFIG_BYTES) -> bytes:
    """A configuration file's bytes, bounded (OSError or ReadLimitReached). Opened without blocking, so that a
    FIFO with no writer reads as empty instead of hanging the start."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
    with os.fdopen(fd, "rb") as f:
        os.set_blocking(fd, True)
        return read_at_most(f, limit)


def write_atomic(path: Path, data: bytes, mode: int = 0o600) -> None:
    """Writes ``data`` so that a reader sees the old content or the new, never a torn file.

    The temporary file sits beside the target (same filesystem, so the rename is atomic) and
    starts with a dot so that loaders skip leftovers of a writer killed mid-write.
    """
    tmp = path.with_name(f".{path.name}.tmp.{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def confine(root: Path, *parts: str) -> Path:
    """Joins ``parts`` under ``root`` and refuses any result that leaves ``root``.

    Absolute parts are allowed only when they already lie inside ``root``. Symlinks are
    resolved, so a link pointing outside is refused too. Raises ValueError with the reason.
    """
    base = root.resolve()
    path = base
    for part in parts:
        if not part:
            continue
        if "\x00" in part:
            raise ValueError("path contains a NUL byte")
        path = path / part  # an absolute part replaces what came before, checked below
    resolved = path.resolve()
    if resolved != base and base not in resolved.parents:
        raise ValueError(f"{path} is outside {base}")
    return resolved
