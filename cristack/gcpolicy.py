"""How our long-running processes set Python's cyclic garbage collector.

A component allocates a few hundred short-lived objects per CRI call (the request, its spans, their
attributes and events, contexts) and keeps thousands of long-lived ones (a record per pod and container,
protobuf descriptors, the modules). With CPython's default thresholds (700, 10, 10) the collector runs
after every couple of calls and, every hundred young collections, walks every long-lived object again;
almost none of it is cyclic garbage. In a relist in which a thousand pods changed that was about a tenth
of a second of fake-crio's CPU (measured with ``gc.callbacks``; docs/benchmarks.md, section 9).
"""

from __future__ import annotations

import gc

# Young collections after 10,000 net allocations instead of 700; older generations as often as before
# relative to it. Cyclic garbage (tracebacks, cancelled tasks) still goes, a little later.
THRESHOLDS = (10_000, 10, 10)


def tune_for_service() -> None:
    """Called once a component has loaded its modules and configuration, before it serves: what exists
    now lives as long as the process (``gc.freeze`` keeps full collections from walking it again), and
    young collections run less often."""
    gc.freeze()
    gc.set_threshold(*THRESHOLDS)
