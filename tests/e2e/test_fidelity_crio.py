"""Fidelity: the real crictl drives fake-crio (+ fake-conmon) through each recorded CRI-O session, and our
spans must match the real CRI-O / conmon-rs / crictl spans shape for shape, except for the differences kept
on purpose in tests/data/real/deliberate-differences.toml."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import require_tool
from tests.support.fidelity import CRIO_RECORDINGS, CrioRecording, record_lifecycle
from tests.support.replay import assert_matches


@pytest.mark.parametrize("rec", CRIO_RECORDINGS, ids=lambda r: Path(r.file).stem)
def test_crictl_session_matches_the_recording(rec: CrioRecording, tmp_path: Path) -> None:
    crictl = require_tool("crictl")
    ours = record_lifecycle(tmp_path, rec, crictl)
    assert_matches(rec, ours)
