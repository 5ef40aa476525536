"""The rows of docs/benchmarks.md: one module of their own, so that every part of the bench (run.py, load_bench.py)
shares the same classes whether run.py runs as ``__main__`` or not."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from bench.stats import machine


@dataclass
class Row:
    what: str
    value: str
    target: str = ""
    verdict: str = ""  # "met" / "missed" / ""
    note: str = ""


@dataclass
class Report:
    sections: dict[str, list[Row]] = field(default_factory=dict)

    def add(self, section: str, row: Row) -> None:
        self.sections.setdefault(section, []).append(row)
        print(f"  {row.what}: {row.value}" + (f"  [target {row.target}: {row.verdict}]" if row.target else ""),
              flush=True)


def verdict(ok: bool) -> str:
    return "met" if ok else "missed"


def _table(rows: list[Row]) -> list[str]:
    """A section's rows as a Markdown table."""
    lines = ["| measure | result | target | |", "|---|---|---|---|"]
    for r in rows:
        mark = {"met": "✓ met", "missed": "✗ missed"}.get(r.verdict, "")
        lines.append(f"| {r.what} | {r.value}{' — ' + r.note if r.note else ''} | {r.target} | {mark} |")
    return lines


def write(report: Report, path: Path, command: str, seconds: float, quick: bool, stolen: float = 0.0,
          notes: Path | None = None) -> None:
    """The whole of docs/benchmarks.md from one run: how it was measured, each section's table, then ``notes``."""
    lines = ["# Benchmarks", "",
             f"Measured by `{command}` on {machine()}, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
             f"in one run of {seconds / 60:.1f} minutes{' (quick mode: fewer iterations)' if quick else ''}; "
             f"the hypervisor gave {stolen:.0%} of this virtual machine's CPU time to others meanwhile "
             "(steal time in /proc/stat), which slows every figure below alike. "
             "Figures are medians (p50) with p99 where given; A/B comparisons come from interleaved blocks of "
             "the same run. Tracing on means all three components at 1000000 per million exporting to a "
             "real Jaeger v2 on the same two cores. Pod starts are issued by `bench/driver.py`, which runs "
             "fake-kubelet's own CRI client and span code for the kubelet's start sequence, so the time is "
             "exactly RunPodSandbox sent → StartContainer returned.", ""]
    for section, rows in report.sections.items():
        lines += [f"## {section}", "", *_table(rows), ""]
    if notes is not None and notes.exists():
        lines += [notes.read_text().strip(), ""]
    path.write_text("\n".join(lines))


def merge(report: Report, path: Path, command: str) -> None:
    """``--only``: replaces (or adds, after the last numbered one) just the sections measured, each saying how and
    when, and keeps the rest of ``path`` as the full run wrote it."""
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    head, *blocks = text.split("\n## ")
    sections = [("## " + b).rstrip("\n") for b in blocks]
    stamp = f"Measured separately by `{command}` on {machine()}, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}."
    for title, rows in report.sections.items():
        new = "\n".join([f"## {title}", "", stamp, "", *_table(rows)])
        at = next((i for i, sec in enumerate(sections) if sec.startswith(f"## {title}\n")), None)
        if at is not None:
            sections[at] = new
        else:
            numbered = [i for i, sec in enumerate(sections) if sec[3:4].isdigit()]
            sections.insert(numbered[-1] + 1 if numbered else len(sections), new)
    path.write_text(head.rstrip("\n") + "\n\n" + "\n\n".join(sections) + "\n")
