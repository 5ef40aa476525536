"""Every trace the fleet issues has a live twin, on each runtime: for each kind of each shipped catalogue, each
fleet trace of that kind shows no structural difference (``cristack diff``: ``snapshots.diff``) from a trace that
the runtime's real components make for the same work, run now: the same pod (name, namespace, spec) through the
same episode on a live node of that runtime, or an idle live node's periodic roots
(``cristack.harness.fleet.fidelity``). When a component's spans change, this fails until the catalogue is captured
again (``python -m cristack.harness.fleet.capture --runtime NAME``)."""

from __future__ import annotations

import pytest

from cristack.harness.fleet.catalogue import RUNTIMES, load
from cristack.harness.fleet.fidelity import Comparison

KINDS = [(runtime, kind) for runtime in RUNTIMES for kind in sorted(load(runtime).kinds)]


@pytest.fixture(scope="module")
def comparisons():
    """One comparison per runtime, its live side run when a test of that runtime first needs it."""
    made: dict[str, Comparison] = {}

    def get(runtime: str) -> Comparison:
        if runtime not in made:
            made[runtime] = Comparison(load(runtime))
            made[runtime].run_live()
        return made[runtime]

    return get


@pytest.mark.parametrize(("runtime", "kind"), KINDS, ids=[f"{r}-{k}" for r, k in KINDS])
def test_each_fleet_trace_of_a_kind_has_a_live_twin(comparisons, runtime, kind):
    comparison = comparisons(runtime)
    r = comparison.result(kind)
    if r.live_traces and not r.clean:
        # Which periodic syncs land inside a pod's life is the machine's timing (CI once lacked a mid-life sync of
        # the slow-storage pod): a second live sample of the same work, kept beside the first, before judging. A
        # shape the live stack never makes is missing from both.
        comparison.run_live()
        r = comparison.result(kind)
    assert r.fleet_traces, f"the fleet issued no trace of {kind}"
    assert r.live_traces, f"the live nodes made no trace for {kind}"
    assert r.clean, (f"{runtime} {kind}: {r.fleet_traces - r.with_twin} of {r.fleet_traces} fleet traces have no live "
                     f"twin among {r.live_traces}; the closest:\n" + "\n".join(r.closest))
