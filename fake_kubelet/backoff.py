"""Restart and pull back-off, the kubelet's flowcontrol.Backoff: the delay starts at the base,
doubles on every failure up to the ceiling, and is forgotten after twice the ceiling without
a failure."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class Backoff:
    base: float
    ceiling: float
    clock: Callable[[], float] = time.monotonic
    _entries: dict[str, tuple[float, float]] = field(default_factory=dict)  # key -> (delay, last update)

    def next(self, key: str) -> float:
        """Records a failure for ``key`` and returns the delay before the next try."""
        now = self.clock()
        delay, last = self._entries.get(key, (0.0, now))
        if delay == 0.0 or now - last > 2 * self.ceiling:
            delay = self.base
        else:
            delay = min(delay * 2, self.ceiling)
        self._entries[key] = (delay, now)
        return delay

    def in_backoff(self, key: str) -> float:
        """Seconds left in ``key``'s back-off window (0 when a try is allowed now)."""
        entry = self._entries.get(key)
        if entry is None:
            return 0.0
        delay, last = entry
        return max(0.0, last + delay - self.clock())

    def delay(self, key: str) -> float:
        """The current back-off delay of ``key`` (0 when it has none)."""
        entry = self._entries.get(key)
        return entry[0] if entry else 0.0

    def reset(self, key: str) -> None:
        self._entries.pop(key, None)


def should_restart(policy: str, exit_code: int) -> bool:
    """Whether a container that exited with ``exit_code`` is restarted under ``policy``."""
    if policy == "Always":
        return True
    if policy == "OnFailure":
        return exit_code != 0
    return False
