"""Budgets for the durations that are the point of a test (a component stops soon after a signal, a call gives up
at its deadline), on a machine whose load the test does not control.

A promise such as "a component exits within 2 s of SIGTERM" is what an idle machine shows. On a loaded one every
process waits for a CPU, and that scheduling delay stretches the stop as it stretches everything else. So a test
grants the promise plus what the same load did, in the same run, to a reference: work of the same kind that costs
at least as much CPU, measured a moment before (how long the processes took to start, which is more work than
stopping them), or, where the test started nothing, how long a Python interpreter takes right now to start and
import our components (``interpreter_start``). If the machine is k times slower, the stop takes k times its idle
cost, which is within the promise plus k times the reference; a stop that waits for something it should not (a
grace period, a timeout, a hung call) still overruns on an idle machine, where CI sees it.

Lower bounds need none of this: a delay only makes things later, so "not before the timeout" is asserted as it is.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass


@dataclass
class Stopwatch:
    """Seconds since it was made (``lap()``), or between ``with`` and its end (``seconds``)."""

    started: float = 0.0
    seconds: float = 0.0

    def __post_init__(self) -> None:
        self.started = time.monotonic()

    def lap(self) -> float:
        return time.monotonic() - self.started


@contextmanager
def timed() -> Iterator[Stopwatch]:
    """``with timed() as t: ...``, then ``t.seconds`` is how long the block took."""
    watch = Stopwatch()
    try:
        yield watch
    finally:
        watch.seconds = watch.lap()


def allowance(promise: float, reference: float) -> float:
    """The promised seconds plus the reference measured in the same run (see the module's docstring)."""
    return promise + reference


def interpreter_start() -> float:
    """Seconds a Python interpreter takes right now to start and import the components (a reference for a test
    that started none of its own)."""
    with timed() as t:
        subprocess.run([sys.executable, "-c", "import fake_crio.main, fake_conmon.main, fake_kubelet.main"],
                       check=True, capture_output=True, timeout=120)
    return t.seconds
