"""A golden snapshot of the hello pod's start trace: `pytest examples/pytest/test_snapshot.py` compares,
`pytest examples/pytest/test_snapshot.py --snapshot-update` rewrites snapshots/hello-pod.json."""

from pathlib import Path

import pytest

from cristack.harness.assertions import pod_start, pod_uid

SNAPSHOTS = Path(__file__).parent / "snapshots"


@pytest.fixture(scope="module")
def trace(run_pod, trace_backend):
    uid = run_pod(runtime="crio")  # the snapshot is of CRI-O's trace, whatever --cristack-runtime says
    return trace_backend.wait_for_trace(pod_start("pod"), match=pod_uid(uid), timeout=60)


def test_pod_start_matches_its_snapshot(trace, assert_matches_snapshot):
    assert_matches_snapshot(trace, SNAPSHOTS / "hello-pod.json")
