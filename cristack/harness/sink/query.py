"""GET: the Jaeger-compatible query API (``/api/services``, ``/api/traces``), the sink's stats, and the live view.

Parameters are checked as Jaeger v2.13 checks them (``cmd/query/app/query_parser.go``: ``limit`` a 32-bit
integer, 100 by default; its memory storage refuses a search deeper than ``max_traces``,
``internal/storage/v2/memory/tenant.go``), and every text parameter is bounded. Answers that can be large (one
trace of up to the store's per-trace bound, or many traces) are written a slice of spans at a time, each slice
waiting for room in the sink's byte budget, so that neither a large answer nor many slow readers hold more than
the budget. Spans go out in the order they arrived, as Jaeger's memory storage returns them.
"""

from __future__ import annotations

import json
import math
import re
import time
from dataclasses import asdict
from typing import TYPE_CHECKING
from urllib.parse import parse_qs, unquote, urlsplit

from cristack.config.durations import parse_duration
from cristack.harness.sink.jaeger import Processes, envelope, span_json
from cristack.harness.sink.store import Decoder
from cristack.harness.sink.ui import LIST_PAGE, missing_page, trace_page
from cristack.wording import cut

if TYPE_CHECKING:
    from cristack.harness.sink.httpserver import Handler

DEFAULT_LIMIT = 100  # Jaeger's defaultQueryLimit
MAX_PARAMS = 32
MAX_TEXT = 512  # characters in a service, operation or pod filter
SLICE_BYTES = 64 * 1024  # stored span bytes written per slice of an answer
PAGE = "text/html; charset=utf-8"
TRACE_ID = re.compile(r"[0-9a-fA-F]{1,32}")


class BadParameter(ValueError):
    pass


def answer(h: Handler) -> None:
    url = urlsplit(h.path)
    try:
        params = _params(url.query)
    except BadParameter as err:
        return _error(h, 400, str(err))
    route = ROUTES.get(url.path)
    if route is not None:
        return route(h, params)
    for pattern, serve in PATTERNS:
        m = pattern.fullmatch(url.path)
        if m:
            return serve(h, params, m.group(1))
    return h.respond(404, json.dumps({"error": "not found"}).encode(), "application/json")


def _params(query: str) -> dict[str, str]:
    try:
        parsed = parse_qs(query, max_num_fields=MAX_PARAMS)
    except ValueError:
        raise BadParameter(f"more than {MAX_PARAMS} query parameters") from None
    return {k: v[-1] for k, v in parsed.items()}


def _text(params: dict[str, str], name: str) -> str:
    value = params.get(name, "")
    if len(value) > MAX_TEXT:
        raise BadParameter(f"parameter '{name}': {len(value):,} characters, at most {MAX_TEXT}")
    return value


def _count(params: dict[str, str], name: str, default: int, most: int) -> int:
    """A whole number from 1 to ``most`` (Jaeger's memory storage refuses a search deeper than max_traces)."""
    value = params.get(name)
    if value is None:
        return min(default, most)
    if not (value.isascii() and value.isdigit() and len(value) <= 10) or not 1 <= int(value) <= most:
        raise BadParameter(f"parameter '{name}': {cut(value, 20)!r} is not a whole number from 1 to {most:,}")
    return int(value)


def _lookback(params: dict[str, str]) -> float | None:
    value = params.get("lookback")
    if not value:
        return None
    try:
        seconds = parse_duration(cut(value, 40))
    except ValueError:
        seconds = math.nan
    if not math.isfinite(seconds) or seconds < 0:
        raise BadParameter(f"parameter 'lookback': {cut(value, 40)!r} is not a duration (e.g. 90s, 1h)")
    return seconds


def _error(h: Handler, code: int, message: str) -> None:
    body = {"data": None, "total": 0, "limit": 0, "offset": 0, "errors": [{"code": code, "msg": message}]}
    h.respond(code, json.dumps(body).encode(), "application/json")


def _json(h: Handler, data: object) -> None:
    h.respond(200, json.dumps(data).encode(), "application/json")


# The Jaeger API ------------------------------------------------------------------------------------------------

def services(h: Handler, _params: dict[str, str]) -> None:
    _json(h, envelope(h.server.store.services()))


def operations(h: Handler, _params: dict[str, str], service: str) -> None:
    _json(h, envelope(h.server.store.operations(unquote(service))))


def traces(h: Handler, params: dict[str, str]) -> None:
    store = h.server.store
    try:
        service, operation = _text(params, "service"), _text(params, "operation")
        limit = _count(params, "limit", DEFAULT_LIMIT, store.max_traces)
        lookback = _lookback(params)
    except BadParameter as err:
        return _error(h, 400, str(err))
    if not service:
        return _error(h, 400, "parameter 'service' is required")
    since = None if lookback is None else time.time_ns() - lookback * 1e9
    _stream(h, store.find(service, operation, since, limit))


def trace(h: Handler, _params: dict[str, str], trace_id: str) -> None:
    if not TRACE_ID.fullmatch(trace_id):
        return _error(h, 400, f"cannot parse traceID {cut(trace_id, 40)!r}: up to 32 hex digits")
    if not h.server.store.size(trace_id):
        return _error(h, 404, "trace not found")
    _stream(h, [trace_id])


def _stream(h: Handler, ids: list[str]) -> None:
    """Traces in Jaeger's envelope, written a slice at a time; a trace that went since it was found is left
    out (and out of ``total``)."""
    h.start_answer(200, "application/json")
    h.write(b'{"data":[')
    written = 0
    for trace_id in ids:
        if _write_trace(h, trace_id, first=not written):
            written += 1
    h.write(b'],"total":%d,"limit":0,"offset":0,"errors":null}' % written)


def _write_trace(h: Handler, trace_id: str, first: bool) -> bool:
    store, gate = h.server.store, h.server.gate
    at = (0, 0)
    processes, decoder = Processes(), Decoder()
    spans_written = 0
    while True:
        piece = store.slice(trace_id, at, SLICE_BYTES)
        if piece is None or not piece[0]:
            break
        kept, at = piece
        if not spans_written:
            h.write(b'%s{"traceID":"%s","spans":[' % (b"" if first else b",", trace_id.lower().rjust(32, "0").encode()))
        with gate.working():  # decoding a slice makes objects many times its size: one slice at a time
            text = ((b"," if spans_written else b"")
                    + ",".join(json.dumps(span_json(decoder(g, r), processes)) for g, r in kept).encode())
        with gate.budget.hold(len(text), gate.limits.busy_wait):  # held while a slow reader takes it
            h.write(text)
        spans_written += len(kept)
    if not spans_written:
        return False
    refused = store.refused(trace_id)
    warnings = [f"the sink refused {refused} more spans of this trace: it holds as many spans or bytes as the sink "
                "keeps of one trace"] if refused else None
    h.write(b'],"processes":%s,"warnings":%s}' % (json.dumps(processes.json).encode(), json.dumps(warnings).encode()))
    return True


def stats(h: Handler, _params: dict[str, str]) -> None:
    _json(h, asdict(h.server.store.stats()))


def healthz(h: Handler, _params: dict[str, str]) -> None:
    h.respond(200, b"ok", "text/plain")


def otlp_method(h: Handler, _params: dict[str, str]) -> None:
    """The Collector's answer to anything but POST on its OTLP paths (``handleUnmatchedMethod``)."""
    h.respond_text(405, "405 method not allowed, supported: [POST]")


# The live view (ui.py) -----------------------------------------------------------------------------------------

def list_page(h: Handler, _params: dict[str, str]) -> None:
    h.respond(200, LIST_PAGE.encode(), PAGE)


def list_rows(h: Handler, params: dict[str, str]) -> None:
    try:
        service, operation, pod = _text(params, "service"), _text(params, "operation"), _text(params, "pod")
        limit = _count(params, "limit", 200, h.server.store.max_traces)
    except BadParameter as err:
        return h.respond(400, json.dumps({"error": str(err)}).encode(), "application/json")
    with h.server.gate.working():  # summaries decode the traces that changed
        rows = json.dumps(h.server.summaries.query(service, operation, pod, params.get("standalone") == "1",
                                                   limit)).encode()
    _send_held(h, 200, rows, "application/json")


def trace_view(h: Handler, _params: dict[str, str], trace_id: str) -> None:
    store, gate = h.server.store, h.server.gate
    with gate.working():  # the page holds the trace's spans, their layout and its HTML at once
        spans = store.trace(trace_id, max_values=gate.limits.max_view_values)
        page = trace_page(spans).encode() if spans else b""
        del spans
    if not page:
        return h.respond(404, missing_page(trace_id).encode(), PAGE)
    _send_held(h, 200, page, PAGE)


def _send_held(h: Handler, code: int, body: bytes, kind: str) -> None:
    """An answer written with its size held in the byte budget, for as long as a slow reader takes it."""
    with h.server.gate.budget.hold(len(body), h.server.gate.limits.busy_wait):
        h.respond(code, body, kind)


ROUTES = {"/api/services": services, "/api/traces": traces, "/api/sink/stats": stats, "/healthz": healthz,
          "/v1/traces": otlp_method, "/": list_page, "/ui/traces": list_rows}
PATTERNS = [(re.compile(r"/api/services/([^/]+)/operations"), operations),
            (re.compile(r"/api/traces/([^/]+)"), trace),
            (re.compile(r"/trace/([0-9a-fA-F]{1,32})"), trace_view)]
