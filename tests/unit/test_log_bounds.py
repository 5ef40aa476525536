"""A log line and a log-line span event never grow with what a request held (issue 27: a 4 MB image name made
4 MB lines in crio.log and kubelet.log, and events as large on the spans)."""

from __future__ import annotations

import io
import logging

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from cristack.otel import logs
from cristack.otel.loghandler import MAX_MESSAGE, SpanEventHandler

HUGE = "i" * 4_000_000


@pytest.fixture
def root_logger():
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    yield root
    root.handlers[:], level = saved
    root.setLevel(level)


def test_a_log_line_is_cut_and_says_how_long_its_message_was(root_logger, monkeypatch) -> None:
    err = io.StringIO()
    monkeypatch.setattr("sys.stderr", err)
    logs.setup("fake-crio", logging.DEBUG)
    logging.getLogger("fake_crio").debug("Request: PullImageRequest: image:{image:%s}", HUGE)
    logging.getLogger("fake_crio").info("short line")
    long_line, short = err.getvalue().splitlines()
    assert len(long_line) < MAX_MESSAGE + 200
    assert f"({len('Request: PullImageRequest: image:{image:}') + len(HUGE):,} characters)" in long_line
    assert short.endswith("fake-crio: short line")


@pytest.mark.parametrize("style", ["crio", "conmon", "containerd", "plain"])
def test_a_span_event_of_a_log_line_is_cut_too(style: str) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    handler = SpanEventHandler(style)
    log = logging.getLogger(f"test.bounds.{style}")
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    try:
        with provider.get_tracer("t").start_as_current_span("call"):
            log.info("pulling image %s", HUGE)
    finally:
        log.removeHandler(handler)
    [span] = exporter.get_finished_spans()
    [event] = span.events
    texts = [event.name, *(str(v) for v in event.attributes.values())]
    assert max(map(len, texts)) < MAX_MESSAGE + 100
    assert any(f"({len('pulling image ') + len(HUGE):,} characters)" in t for t in texts)
