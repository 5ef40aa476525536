"""Watching one directory for changes, as the kubelet watches its static pod directory.

The real kubelet (pkg/kubelet/config/file_linux.go, v1.36) adds an fsnotify (inotify) watch on the directory
and handles a manifest's create, write, chmod, remove and rename as it happens; its full listing every
``fileCheckFrequency`` (20 s by default) only catches what a watch can miss. ``DirWatch`` is that watch for
an asyncio loop: ``wait`` returns after an entry of the directory changed (or after a timeout), a burst of
events (an editor's save, ``cp``, a ConfigMap volume swapping its ``..data`` link) waking it once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from pathlib import Path

from inotify_simple import INotify, flags

log = logging.getLogger(__name__)

# What fsnotify's Create, Write, Chmod, Remove and Rename are made of. CLOSE_WRITE rather than every MODIFY:
# a file still being written wakes us once it is whole (MODIFY alone would read it half-written).
EVENTS = (flags.CREATE | flags.CLOSE_WRITE | flags.ATTRIB | flags.DELETE | flags.MOVED_FROM | flags.MOVED_TO
          | flags.DELETE_SELF | flags.MOVE_SELF)
SETTLE_S = 0.05  # events this close together are one change (create, write, close of one `cp`)
RETRY_S = 1.0  # the kubelet's retryPeriod for a watch it could not add


class DirWatch:
    """An inotify watch on ``path`` for the running event loop. If the directory is missing, or removed while
    watched, ``wait`` falls back to its timeout and watching resumes when the directory is back."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._inotify: INotify | None = None
        self._changed = asyncio.Event()
        self._watching = False
        self._tried = False

    def start(self) -> None:
        """Puts the watch in place, or notes that the directory is missing: called before the first listing of the
        directory, so that ``wait`` returns for whatever changes after that listing, the directory appearing
        included. (Without it, a directory that appeared between the listing and the first ``wait`` was watched
        from then on, its files already there unseen until the next periodic listing.)"""
        self._tried = True
        self._ensure()

    def _ensure(self) -> None:
        """Adds the watch when it is not in place (the directory may have appeared since)."""
        if self._watching:
            return
        if self._inotify is None:
            try:
                self._inotify = INotify(nonblocking=True)
            except OSError as err:  # out of inotify instances: the periodic listing still works
                log.warning("cannot watch %s for changes (%s); reading it every period only", self.path, err)
                return
            asyncio.get_running_loop().add_reader(self._inotify.fileno(), self._read)
        with contextlib.suppress(OSError):  # missing or unreadable: try again at the next wait
            self._inotify.add_watch(str(self.path), EVENTS)
            self._watching = True

    def _read(self) -> None:
        assert self._inotify is not None
        try:
            events = self._inotify.read(timeout=0)
        except BlockingIOError:
            return
        for event in events:
            if event.mask & (flags.IGNORED | flags.DELETE_SELF | flags.MOVE_SELF):
                self._watching = False  # the directory went: watch it again once it is back
        if events:
            self._changed.set()

    async def wait(self, timeout: float) -> bool:
        """Waits until an entry of the directory changes, at most ``timeout`` seconds; True if one did, or if the
        directory, missing before, is now there (read it). While it is missing, the watch is tried again every
        ``RETRY_S`` seconds, as the kubelet retries its watch."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            was_watching, first = self._watching, not self._tried
            self._tried = True
            self._ensure()
            if self._watching and not was_watching and not first:
                return True
            remaining = deadline - loop.time()
            if remaining <= 0:
                return False
            try:
                await asyncio.wait_for(self._changed.wait(), remaining if self._watching else min(remaining, RETRY_S))
                break
            except TimeoutError:
                continue
        await asyncio.sleep(SETTLE_S)
        self._changed.clear()
        return True

    def close(self) -> None:
        if self._inotify is not None:
            with contextlib.suppress(Exception):
                asyncio.get_running_loop().remove_reader(self._inotify.fileno())
            self._inotify.close()
            self._inotify = None
