"""Fidelity: fake-kubelet runs the recipe the real kubelet v1.36.3 was recorded with (two static pods, the
HTTP API called mid-run and before teardown, one pod removed, a container GC tick after it), against
fake-crio + fake-conmon, and its spans must match the real kubelet's shape for shape (distinct mode: the
number of periodic roots differs with the run's length), except for the differences kept on purpose in
tests/data/real/deliberate-differences.toml."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.fidelity_kubelet import KUBELET_RECORDINGS, KubeletRecording, run_kubelet
from tests.support.replay import assert_matches


@pytest.mark.parametrize("rec", KUBELET_RECORDINGS, ids=lambda r: Path(r.file).stem)
def test_kubelet_run_matches_the_recording(rec: KubeletRecording, tmp_path: Path) -> None:
    ours = run_kubelet(tmp_path, rec)
    assert_matches(rec, ours, mode="distinct")
