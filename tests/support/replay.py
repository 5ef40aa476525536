"""What the fidelity drivers share: where the recordings live, reading one, the test's assertion that a replay
matches its recording, and the developer command line that replays recordings, diffs them and prints the
result."""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cristack.otel.tracediff import Allowlist, SpanRecord, diff, load_jsonl, save_jsonl

REAL = Path(__file__).resolve().parents[1] / "data" / "real"
ALLOWLIST = REAL / "deliberate-differences.toml"


@dataclass(frozen=True)
class Recording:
    """One recorded file, named by its path under tests/data/real (as the allowlist names it too)."""

    file: str

    @property
    def path(self) -> Path:
        return REAL / self.file

    @property
    def name(self) -> str:
        return self.file


def load(rec: Recording) -> list[SpanRecord]:
    """The recorded spans of ``rec``."""
    return load_jsonl(rec.path)


def replay_cli(prog: str, recordings: Sequence[Any], replay: Callable[[Path, Any], list[SpanRecord]], mode: str,
               argv: list[str] | None = None) -> int:
    """``python -m PROG [RECORDING-SUBSTRING] [-v] [--save DIR] [--no-allowlist]``: replay, diff and print."""
    ap = argparse.ArgumentParser(prog=f"python -m {prog}")
    ap.add_argument("match", nargs="?", default="", help="only recordings whose file name contains this")
    ap.add_argument("-v", "--verbose", action="store_true", help="also show allowed differences")
    ap.add_argument("--save", type=Path, help="directory to save our spans in (recording format)")
    ap.add_argument("--no-allowlist", action="store_true", help="show every difference")
    args = ap.parse_args(argv)
    allow = Allowlist.load(ALLOWLIST) if ALLOWLIST.exists() and not args.no_allowlist else None
    status = 0
    for rec in recordings:
        if args.match not in rec.file:
            continue
        with tempfile.TemporaryDirectory(prefix="cristack-fidelity-") as tmp:
            started = time.monotonic()
            ours = replay(Path(tmp), rec)
            took = time.monotonic() - started
        if args.save:
            args.save.mkdir(parents=True, exist_ok=True)
            save_jsonl(ours, args.save / Path(rec.file).name)
        result = diff(load(rec), ours, mode=mode, allow=allow, recording=rec.name)
        print(result.report(args.verbose))
        print(json.dumps({"recording": rec.name, "seconds": round(took, 1), "our_spans": len(ours)}))
        status |= not result.ok
    return status


def assert_matches(rec: Recording, ours: list[SpanRecord], mode: str = "counted") -> None:
    """Our spans of a replay match ``rec`` shape for shape, but for the differences the allowlist keeps."""
    result = diff(load(rec), ours, mode=mode, allow=Allowlist.load(ALLOWLIST), recording=rec.name)
    print(f"{rec.name}: real shapes {result.real_shapes}, reproduced {result.reproduced}, extra {result.extra}")
    print(result.summary())
    assert result.ok, "differences from the real recording outside deliberate-differences.toml:\n" + result.report()


def crictl_replay_cli(prog: str, recordings: Sequence[Any], replay: Callable[[Path, Any, str], list[SpanRecord]],
                      argv: list[str] | None = None) -> int:
    """``replay_cli`` for drivers that replay a recording through the real crictl (``replay(base, rec,
    crictl)``); exits 2 without one."""
    from cristack.harness.procs import find_tool

    crictl = find_tool("crictl")
    if crictl is None:
        print("crictl not found: run `make tools`")
        return 2
    return replay_cli(prog, recordings, lambda base, rec: replay(base, rec, crictl), "counted", argv)
