"""The sink's live view in headless Chromium: the trace list (filters, newest first, error marks,
refreshing itself) and the waterfall page of a pod's start trace, fed by the real stack."""

from __future__ import annotations

import html
import logging
import os
import re
import shutil
import subprocess
import threading
import time
from pathlib import Path

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from cristack.harness.demo import start_traces, wait_complete
from cristack.harness.sink.store import kv
from cristack.harness.stack import example
from tests.integration.test_demo import chromium

ROW = re.compile(r'<tr[^>]*data-trace-id="([0-9a-f]{32})"[^>]*>(.*?)</tr>', re.S)


def flags(tmp_path: Path) -> list[str]:
    return ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=4000"]


def dom(browser: str, tmp_path: Path, url: str) -> str:
    """The page's DOM after its script ran for a few (virtual) seconds."""
    return subprocess.run([browser, *flags(tmp_path), "--dump-dom", url], capture_output=True, text=True,
                          timeout=90).stdout


def rows(page: str) -> list[tuple[str, str]]:
    """(trace id, the row's text) per row of the trace list."""
    return [(tid, html.unescape(re.sub(r"<[^>]+>", " ", cells))) for tid, cells in ROW.findall(page)]


def error_trace() -> ExportTraceServiceRequest:
    """A trace from another service, one span failed: arrives while the page is open."""
    req = ExportTraceServiceRequest()
    rs = req.resource_spans.add()
    rs.resource.attributes.append(kv("service.name", "late-probe"))
    span = rs.scope_spans.add().spans.add()
    span.trace_id, span.span_id, span.name = b"\x7f" * 16, b"\x01" * 8, "late-operation"
    span.start_time_unix_nano = time.time_ns()
    span.end_time_unix_nano = span.start_time_unix_nano + 2_000_000
    span.status.code = 2
    return req


def test_live_view_lists_traces_and_shows_a_pods_waterfall(tmp_path: Path, sink, make_stack) -> None:
    browser = chromium()
    stack = make_stack(otlp_endpoint=sink.addresses.otlp_endpoint)
    stack.add_manifest(example("pods", "hello.yaml"))
    assert stack.start(runonce=True).popen.wait(60) == 0, stack.logs()
    wait_complete(sink.store, 1, "pod", timeout=15)
    start = start_traces(sink.store)[0][0].trace_id
    base = sink.addresses.query_url

    # A new trace arrives once the page has had its first answer: only a page that polls shows it.
    arrived = threading.Event()

    class AfterFirstPoll(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if "/ui/traces" in record.getMessage() and not arrived.is_set():
                arrived.set()
                sink.store.add(error_trace())

    logger = logging.getLogger("cristack.harness.sink.httpserver")  # where each request is logged
    hook, level = AfterFirstPoll(), logger.level
    logger.addHandler(hook)
    logger.setLevel(logging.DEBUG)
    try:
        listed = rows(dom(browser, tmp_path, base + "/"))
    finally:
        logger.removeHandler(hook)
        logger.setLevel(level)
    assert arrived.is_set(), "the page asked the sink for its traces"
    ids = [tid for tid, _ in listed]
    texts = dict(listed)
    assert "7f" * 16 in texts, f"the trace that came after the first poll is listed (live): {listed}"
    assert "late-probe" in texts["7f" * 16] and "✖ 1 error" in texts["7f" * 16]
    assert start in texts and "syncPod" in texts[start] and "default/hello" in texts[start]
    assert "kubelet" in texts[start] and "✖" not in texts[start]
    terminating = next(tid for tid, text in listed if "syncTerminatingPod" in text)
    assert ids.index("7f" * 16) < ids.index(terminating) < ids.index(start), "newest first"
    assert not any("ListPodSandbox" in text for text in texts.values()), "PLEG relists hidden unless asked"
    assert any("ListPodSandbox" in text for _, text in rows(dom(browser, tmp_path, base + "/?standalone=1")))

    only = rows(dom(browser, tmp_path, base + "/?operation=runpodsandbox&pod=hello"))
    assert [tid for tid, _ in only] == [start], "RunPodSandbox is only in the pod's start trace"
    by_service = rows(dom(browser, tmp_path, base + "/?service=late-probe"))
    assert [tid for tid, _ in by_service] == ["7f" * 16]

    page = dom(browser, tmp_path, f"{base}/trace/{start}")
    for name in ("syncPod", "runtime.v1.RuntimeService/RunPodSandbox", "runtime.v1.RuntimeService/PodSandboxStatus",
                 "runtime.v1.RuntimeService/CreateContainer", "runtime.v1.RuntimeService/StartContainer",
                 "create_container", "wait_for_exit_code", "Running pod sandbox: default/hello/POD", "← all traces"):
        assert name in html.unescape(page), name

    out = Path(os.environ.get("CRISTACK_ARTIFACTS", tmp_path))
    for name, url in (("live-view-list.png", base + "/"), ("live-view-trace.png", f"{base}/trace/{start}")):
        shot = tmp_path / name
        subprocess.run([browser, *flags(tmp_path), f"--screenshot={shot}", "--window-size=1400,900", url],
                       capture_output=True, timeout=90)
        assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 10_000
        if out != tmp_path:
            shutil.copyfile(shot, out / name)
        print(f"screenshot: {out / name}")
