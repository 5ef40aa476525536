"""The rows of docs/benchmarks.md: one module of their own, so that every part of the bench (run.py, load_bench.py)
shares the same classes whether run.py runs as ``__main__`` or not."""

from __future__ import annotations

from dataclasses import dataclass, field


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
