"""Control characters from pods, spans and events are shown, never obeyed: the one escaping function, and each
place that prints such text through it (the trace tree, the HTML report, pod event lines); $COLUMNS in a pipe."""

from __future__ import annotations

import io
import json

import pytest
from rich.console import Console

from cristack.harness import podevents
from cristack.harness.render import html
from cristack.harness.render.escape import visible
from cristack.harness.render.model import build
from cristack.harness.render.terminal import PIPE_WIDTH, make_console, output_width, print_trace
from cristack.harness.sink.store import Event, Span
from fake_kubelet.events import pod_ref

HOSTILE = "a\x1b[2Jb\x1b]0;title\x07c\u202ed\x9be\n"


@pytest.mark.parametrize(("raw", "shown"), [
    ("plain text, µs and ✓ stay", "plain text, µs and ✓ stay"),
    ("\x1b[2J", r"\x1b[2J"),
    ("\x1b]0;pwned\x07", r"\x1b]0;pwned\x07"),
    ("tab\tnew\nline\rcr", r"tab\tnew\nline\rcr"),
    ("\x00\x7f\x9b", r"\x00\x7f\x9b"),
    ("\u202eevil\u2066", r"\u202eevil\u2066"),
])
def test_visible(raw: str, shown: str) -> None:
    assert visible(raw) == shown


def span(**kw) -> Span:
    base = dict(trace_id="1" * 32, span_id="2" * 16, parent_span_id="", name="syncPod" + HOSTILE, kind="INTERNAL",
                start=0, end=1_000_000, service="kubelet", scope="s", attributes={"k8s.pod": HOSTILE},
                events=[Event("log", 10, {"log.severity": "INFO", "log.message": "Pulling image: " + HOSTILE})],
                status="ERROR", status_message="failed: " + HOSTILE)
    return Span(**{**base, **kw})


def test_tree_and_html_show_hostile_text_escaped() -> None:
    out = io.StringIO()
    print_trace(Console(file=out, width=200, color_system=None), build([span()]), "syncPod " + HOSTILE)
    text = out.getvalue()
    assert not any(c in text for c in "\x1b\x07\u202e\x9b"), text
    assert text.count(visible(HOSTILE)) >= 3, text  # title, name, event, error
    page = html.render([("title " + HOSTILE, build([span()]))])
    assert not any(c in page for c in "\x1b\x07\u202e\x9b")
    assert r"a\x1b[2Jb\x1b]0;title\x07c\u202ed\x9be\n" in page


def test_event_lines_show_hostile_text_escaped() -> None:
    doc = {"kind": "Event", "reason": "Failed", "message": 'Failed to pull image "busybox' + HOSTILE + '"',
           "type": "Warning", "eventTime": "2026-01-02T03:04:05Z", "metadata": {"annotations": {}},
           "involvedObject": pod_ref("default", "web", "u1", "c" + HOSTILE)}
    line = podevents.format_line(podevents.parse(json.dumps(doc)))
    assert line is not None and not any(c in line for c in "\x1b\x07\u202e\x9b\n"), line
    assert "web/c" + visible(HOSTILE) in line and "busybox" + visible(HOSTILE) in line


def test_columns_sets_the_width_of_a_pipe(monkeypatch: pytest.MonkeyPatch) -> None:
    """Under pytest stdout is not a terminal: the pipe case."""
    monkeypatch.setenv("COLUMNS", "80")
    assert make_console().width == 80 and output_width() == 80
    assert make_console(pipe_width=60).width == 80, "an explicit COLUMNS wins over the pipe default"
    for unset in ("", "0", "wide"):
        monkeypatch.setenv("COLUMNS", unset)
        assert make_console().width == PIPE_WIDTH and output_width(80) == 80
