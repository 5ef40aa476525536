"""Fidelity: the real crictl drives fake-containerd (and its shims) through each recorded containerd v2.4.2
session, and our spans must match the real containerd / shim / crictl spans shape for shape, except for the
differences kept on purpose in tests/data/real/deliberate-differences.toml."""

from __future__ import annotations

from pathlib import Path

import pytest

from cristack.otel.tracediff import Allowlist, diff
from tests.conftest import require_tool
from tests.support.fidelity_containerd import (
    ALLOWLIST,
    CONTAINERD_RECORDINGS,
    ContainerdRecording,
    load,
    record_session,
)

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize("rec", CONTAINERD_RECORDINGS, ids=lambda r: Path(r.file).stem)
def test_crictl_session_matches_the_recording(rec: ContainerdRecording, tmp_path: Path) -> None:
    crictl = require_tool("crictl")
    ours = record_session(tmp_path, rec, crictl)
    result = diff(load(rec), ours, allow=Allowlist.load(ALLOWLIST), recording=rec.name)
    print(result.summary())
    assert result.ok, "differences from the real recording outside deliberate-differences.toml:\n" + result.report()
