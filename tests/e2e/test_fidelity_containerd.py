"""Fidelity: the real crictl drives fake-containerd (and its shims) through each recorded containerd v2.4.2
session, and our spans must match the real containerd / shim / crictl spans shape for shape, except for the
differences kept on purpose in tests/data/real/deliberate-differences.toml."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import require_tool
from tests.support.fidelity_containerd import (
    CONTAINERD_RECORDINGS,
    ContainerdRecording,
    record_session,
)
from tests.support.replay import assert_matches

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize("rec", CONTAINERD_RECORDINGS, ids=lambda r: Path(r.file).stem)
def test_crictl_session_matches_the_recording(rec: ContainerdRecording, tmp_path: Path) -> None:
    crictl = require_tool("crictl")
    ours = record_session(tmp_path, rec, crictl)
    assert_matches(rec, ours)
