"""Every trace the fleet issues has a live twin: for each kind of the shipped catalogue, each fleet trace of that
kind shows no structural difference (``cristack diff``: ``snapshots.diff``) from a trace that the three real
components make for the same work, run now: the same pod (name, namespace, spec) through the same episode on a
live node, or an idle live node's periodic roots (``cristack.harness.fleet.fidelity``). When a component's spans
change, this fails until the catalogue is captured again (``python -m cristack.harness.fleet.capture``)."""

from __future__ import annotations

import pytest

from cristack.harness.fleet.catalogue import load
from cristack.harness.fleet.fidelity import Comparison

KINDS = sorted(load("crio").kinds)


@pytest.fixture(scope="module")
def comparison() -> Comparison:
    c = Comparison()
    c.run_live()
    return c


@pytest.mark.parametrize("kind", KINDS)
def test_each_fleet_trace_of_a_kind_has_a_live_twin(comparison, kind):
    r = comparison.result(kind)
    assert r.fleet_traces, f"the fleet issued no trace of {kind}"
    assert r.live_traces, f"the live nodes made no trace for {kind}"
    assert r.clean, (f"{kind}: {r.fleet_traces - r.with_twin} of {r.fleet_traces} fleet traces have no live twin "
                     f"among {r.live_traces}; the closest:\n" + "\n".join(r.closest))
