"""No module of ours grows past 600 lines (issue 28): past that a module holds more than one concern, and a
newcomer following `make demo` to a span has to read around what they came for. Generated protobuf code and
the applets (programs containers run, one registry per family) are not ours to split."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ("cristack", "fake_crio", "fake_conmon", "fake_kubelet", "fake_kata", "fake_containerd", "bench")
MAX_LINES = 600


def test_no_module_of_ours_is_over_600_lines() -> None:
    over = {}
    for package in PACKAGES:
        for path in (REPO / package).rglob("*.py"):
            rel = path.relative_to(REPO)
            if "pb" in rel.parts or "applets" in rel.parts:
                continue
            lines = len(path.read_text(encoding="utf-8").splitlines())
            if lines > MAX_LINES:
                over[str(rel)] = lines
    assert not over, f"split these by concern (at most {MAX_LINES} lines each): {over}"
