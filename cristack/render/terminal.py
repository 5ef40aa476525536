"""The terminal view of a trace: one row per span (indented by depth) with service, duration
and a waterfall bar on the trace's time axis, and key events beneath their spans.

rich decides about colour: none when stdout is not a terminal or NO_COLOR is set."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table
from rich.text import Text

from cristack.render.model import TraceView, fmt_duration, key_events

SERVICE_STYLE = {"kubelet": "cyan", "crio": "magenta", "conmonrs": "green"}
BAR_WIDTH = 30
# CRI-O's function spans carry the Go package path; the tree shortens it (the data keeps it).
SHORTEN = (("github.com/cri-o/cri-o/server.", "server."), ("github.com/cri-o/cri-o/internal/", "internal/"),
           ("github.com/containers/image/v5/", "containers/image/"))


def display_name(name: str) -> str:
    for prefix, short in SHORTEN:
        if name.startswith(prefix):
            return short + name[len(prefix):]
    return name


def make_console(stderr: bool = False) -> Console:
    """A console that uses the terminal's width, and a wide page when writing to a pipe."""
    probe = Console(stderr=stderr)
    return probe if probe.is_terminal else Console(width=150, stderr=stderr)


def bar(view: TraceView, node_span, width: int = BAR_WIDTH) -> str:  # noqa: ANN001
    a, b = view.offsets(node_span)
    left = min(width - 1, int(a * width))
    right = max(left + 1, min(width, round(b * width)))
    return " " * left + "█" * (right - left) + " " * (width - right)


def trace_table(view: TraceView, *, max_events: int = 4, title: str = "") -> Table:
    table = Table(title=title or None, show_edge=False, box=None, pad_edge=False, expand=False,
                  title_justify="left")
    table.add_column("service", no_wrap=True)
    table.add_column("span", no_wrap=True, overflow="ellipsis", max_width=72)
    table.add_column("duration", justify="right", no_wrap=True)
    table.add_column("waterfall", no_wrap=True)
    for node in view.walk():
        s = node.span
        style = SERVICE_STYLE.get(s.service, "white")
        name = Text("  " * node.depth + display_name(s.name), style="bold red" if s.status == "ERROR" else "")
        if s.status == "ERROR":
            name.append(f"  ✗ {s.status_message}" if s.status_message else "  ✗", style="red")
        table.add_row(Text(s.service, style=style), name, fmt_duration(s.duration_ns),
                      Text(bar(view, s), style=style))
        events = key_events(s)
        for line in events[:max_events]:
            table.add_row("", Text("  " * node.depth + "  · " + line, style="dim"), "", "")
        if len(events) > max_events:
            table.add_row("", Text("  " * node.depth + f"  · … {len(events) - max_events} more", style="dim"), "", "")
    return table


def print_trace(console: Console, view: TraceView, title: str) -> None:
    console.print(trace_table(view, title=title))
    console.print()
