"""The terminal view of a trace: one row per span (indented by depth) with service, duration
and a waterfall bar on the trace's time axis, and key events beneath their spans.

rich decides about colour: none when stdout is not a terminal or NO_COLOR is set. Names, events and messages
come from the pods and the stack: their control characters are shown escaped (render/escape.py)."""

from __future__ import annotations

import os
import shutil
import sys

from rich.console import Console
from rich.text import Text

from cristack.harness.expectations import role
from cristack.harness.render.escape import visible
from cristack.harness.render.model import TraceView, fmt_duration, key_events

SERVICE_STYLE = {"kubelet": "cyan", "crio": "magenta", "conmonrs": "green", "kata": "yellow", "kata-agent": "yellow",
                 "containerd": "blue", "containerd-shim": "green"}
SHIM_ID_SHOWN = 8  # a shim's service names its pod's 64-hex sandbox id: the tree shows its head, as `crictl` does
BAR_WIDTH = 30
MIN_BAR = 10  # a narrower waterfall says nothing: it goes before any name or duration is cut
PIPE_WIDTH = 150  # writing to a file or pipe without COLUMNS: a wide page
# CRI-O's function spans carry the Go package path and receiver; the tree shortens them (``--wide``, the JSON and
# the HTML keep the full name): github.com/cri-o/cri-o/server.(*Server).runPodSandbox -> server.runPodSandbox.
SHORTEN = (("github.com/cri-o/cri-o/server.(*Server).", "server."), ("github.com/cri-o/cri-o/server.", "server."),
           ("github.com/cri-o/cri-o/internal/", ""), ("github.com/containers/image/v5/", "containers/image/"))


def display_name(name: str, wide: bool = False) -> str:
    """A span name as the tree shows it: CRI-O's Go paths shortened unless ``wide``."""
    if wide:
        return name
    for prefix, short in SHORTEN:
        if name.startswith(prefix):
            return short + name[len(prefix):]
    return name


def display_service(service: str, wide: bool = False) -> str:
    """A service as the tree shows it: a shim's ``containerd-shim-<64-hex sandbox id>`` cut to the id's head
    (``containerd-shim-dcdc3b31…``) unless ``wide``; the JSON and the HTML keep it whole."""
    if wide or role(service) != "containerd-shim" or len(service) <= len("containerd-shim-") + SHIM_ID_SHOWN + 1:
        return service
    return service[:len("containerd-shim-") + SHIM_ID_SHOWN] + "…"


def columns_set() -> int | None:
    """$COLUMNS when it is set to a width, else None."""
    value = os.environ.get("COLUMNS", "").strip()
    return int(value) if value.isdigit() and int(value) > 0 else None


def output_width(pipe_width: int = PIPE_WIDTH, stderr: bool = False) -> int:
    """The width to write at: $COLUMNS when set (as `ls`, `man` and the other tools people pipe honour it), else
    the terminal's, else ``pipe_width`` when writing to a pipe or a file."""
    stream = sys.stderr if stderr else sys.stdout
    return columns_set() or (shutil.get_terminal_size((pipe_width, 24)).columns if stream.isatty() else pipe_width)


def make_console(stderr: bool = False, pipe_width: int = PIPE_WIDTH) -> Console:
    """A console at $COLUMNS when set, else at the terminal's width, else (a pipe, a file) ``pipe_width`` wide."""
    probe = Console(stderr=stderr)
    if probe.is_terminal:
        return probe  # rich reads $COLUMNS itself
    return Console(width=columns_set() or pipe_width, stderr=stderr)


def bar(view: TraceView, node_span, width: int = BAR_WIDTH) -> str:  # noqa: ANN001
    a, b = view.offsets(node_span)
    left = min(width - 1, int(a * width))
    right = max(left + 1, min(width, round(b * width)))
    return " " * left + "█" * (right - left) + " " * (width - right)


def _fit(text: str, width: int) -> str:
    """``text`` in ``width`` columns: its head kept, an ellipsis where it was cut."""
    return text if len(text) <= width else text[:max(width - 1, 0)] + "…"


def _wrap(text: str, width: int, indent: str) -> list[str]:
    """``text`` over as many lines of ``width`` columns as it needs, continuation lines indented by ``indent``;
    nothing is cut (a word longer than a line is split)."""
    import textwrap

    return textwrap.wrap(text, width=max(width, len(indent) + 10), subsequent_indent=indent,
                         break_long_words=True, break_on_hyphens=False, drop_whitespace=True) or [text]


def trace_lines(view: TraceView, width: int, *, max_events: int = 4, wide: bool = False) -> list[Text]:
    """The tree in ``width`` columns. Durations are never cut; the waterfall goes first when space is short,
    then span names lose their tails (never their heads); ``wide`` keeps CRI-O's full function names."""
    rows = []
    for node in view.walk():
        s = node.span
        name = "  " * node.depth + visible(display_name(s.name, wide))
        if s.status == "ERROR":
            name += "  ✗"
        events = key_events(s)
        notes = ["  " * node.depth + "  · " + visible(line) for line in events[:max_events]]
        if len(events) > max_events:
            notes.append("  " * node.depth + f"  · … {len(events) - max_events} more")
        # An error's message is what the reader came for (a registry's "no such host" is at its end): it is
        # wrapped under the span in full, never cut.
        error = (["  " * node.depth + "  ✗ " + visible(s.status_message)] if s.status == "ERROR" and s.status_message
                 else [])
        rows.append((s, name, fmt_duration(s.duration_ns), error, notes))
    services = {s.service: visible(display_service(s.service, wide)) for s, *_ in rows}
    service_w = max([len("service"), *map(len, services.values())])
    dur_w = max([len("duration")] + [len(d) for _, _, d, _, _ in rows])
    names_w = max([len("span")] + [len(n) for _, n, _, _, _ in rows])
    fixed = service_w + 1 + 1 + dur_w  # service, gaps, duration
    room = width - fixed
    bar_w = min(BAR_WIDTH, room - min(names_w, 48) - 1)
    if bar_w < MIN_BAR:
        bar_w = 0
    span_w = min(max(room - (bar_w + 1 if bar_w else 0), 8), names_w)
    # Events sit on lines of their own: they may reach past a short name column (a one-span trace's are all
    # it says), within the width.
    note_w = max(span_w, min(64, width - service_w - 1))
    header = Text(f"{'service':<{service_w}} {'span':<{span_w}} {'duration':>{dur_w}}", style="bold")
    if bar_w:
        header.append(" " + "waterfall"[:bar_w], style="bold")
    out = [header]
    for s, name, dur, error, notes in rows:
        style = SERVICE_STYLE.get(role(s.service), "white")
        line = Text(f"{services[s.service]:<{service_w}}", style=style)
        line.append(" ")
        line.append(f"{_fit(name, span_w):<{span_w}}", style="bold red" if s.status == "ERROR" else "")
        line.append(f" {dur:>{dur_w}}")
        if bar_w:
            line.append(" " + bar(view, s, bar_w), style=style)
        out.append(line)
        for line in error:
            indent = " " * (len(line) - len(line.lstrip()) + 2)
            for part in _wrap(line, max(span_w, width - service_w - 1), indent):
                out.append(Text(" " * (service_w + 1) + part, style="red"))
        for note in notes:
            out.append(Text(" " * (service_w + 1) + _fit(note, note_w), style="dim"))
    return out


def print_trace(console: Console, view: TraceView, title: str, *, wide: bool = False) -> None:
    """The tree at the console's width (or, ``wide``, unabridged on a line as long as it needs)."""
    console.print(Text(visible(title), style="bold"), overflow="ellipsis", no_wrap=True)
    width = 10_000 if wide else console.width
    for line in trace_lines(view, width, wide=wide):
        console.print(line, no_wrap=True, overflow="ellipsis" if not wide else "ignore", crop=not wide)
    console.print()
