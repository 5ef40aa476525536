"""POST /v1/traces: OTLP/HTTP as the Collector's receiver serves it (``receiver/otlpreceiver/otlphttp.go``,
``encoder.go``).

- Two types only, ``application/x-protobuf`` and ``application/json``; anything else is 415 before the body is
  read, as ``readContentType`` answers. That also keeps web pages out: a page of any origin may POST
  ``text/plain`` or a form without asking, but the two OTLP types need a CORS preflight, which the sink never
  grants.
- The body is at most ``max_http_body`` bytes, declared (Content-Length, strictly a byte count) or chunked, and
  again once inflated; it must arrive within ``body_timeout``; it waits for room in the sink's byte budget
  as it arrives, and for the work lock before it is inflated and decoded (intake.py).
- Refusals are a ``google.rpc.Status`` in the request's encoding, with a message that never quotes more than a
  few dozen characters of the request. Spans the store refuses (their trace is at its bound) are counted in the
  answer's ``partial_success``, as the OTLP specification asks of a server that keeps part of a request.
"""

from __future__ import annotations

import mmap
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from google.protobuf import json_format
from google.rpc.status_pb2 import Status

from cristack.harness.sink.intake import JSON, PROTOBUF, Refused, decode, inflate, response
from cristack.harness.sink.limits import Busy, Hold
from cristack.wording import cut

if TYPE_CHECKING:
    from cristack.harness.sink.httpserver import Handler

UNSUPPORTED = f"415 unsupported media type, supported: [{JSON}, {PROTOBUF}]"
MAX_CHUNK_LINE = 1024
READ_STEP = 64 * 1024  # bytes of body read (and of the byte budget taken) at a time
MAX_TRAILERS = 64


def media_type(header: str | None) -> str:
    return (header or "").split(";")[0].strip().lower()


def export(h: Handler) -> None:
    path = urlsplit(h.path).path
    kind = media_type(h.headers.get("Content-Type"))
    if path != "/v1/traces":
        return status(h, 404, f"no OTLP receiver at {cut(path, 60)!r} (traces go to /v1/traces)", kind)
    if kind not in (PROTOBUF, JSON):
        return h.respond_text(415, UNSUPPORTED)
    gate = h.server.gate
    limits = gate.limits
    encoding = (h.headers.get("Content-Encoding") or "").strip().lower()
    try:
        length = declared_length(h)
        with gate.budget.holding(limits.busy_wait) as hold, received(h, length, limits.max_http_body, hold) as body:
            with gate.working():
                request = decode(inflate(body, encoding, limits.max_http_body), kind)
                kept = h.server.store.take(request)
    except Refused as err:
        return status(h, err.http, str(err), kind)
    except Busy as err:
        return status(h, 503, f"the sink is busy ({err}); retry", kind, {"Retry-After": "1"})
    answer(h, kind, request.count - kept)


def declared_length(h: Handler) -> int | None:
    """The body's length as Content-Length gives it, or None for a chunked body. A length that is not a plain
    byte count (``-1``, ``+5``, ``5_000``), two that differ, or both headers at once are refused (RFC 9112,
    section 6.3), never read as zero or as the whole stream."""
    chunked = h.headers.get_all("Transfer-Encoding") or []
    lengths = {v.strip() for v in h.headers.get_all("Content-Length") or []}
    if chunked:
        codings = [c.strip().lower() for c in ",".join(chunked).split(",")]
        if codings != ["chunked"]:
            raise Refused(501, f"Transfer-Encoding {cut(', '.join(codings), 40)!r} is not supported (chunked is)")
        if lengths:
            raise Refused(400, "both Transfer-Encoding and Content-Length")
        return None
    if not lengths:
        return 0
    if len(lengths) > 1:
        raise Refused(400, "Content-Length headers that differ")
    value = lengths.pop()
    if not (value.isascii() and value.isdigit()) or len(value) > 18:
        raise Refused(400, f"Content-Length {cut(value, 40)!r} is not a byte count")
    length = int(value)
    if length > h.server.gate.limits.max_http_body:
        raise Refused(413, f"a body of {length:,} bytes: at most {h.server.gate.limits.max_http_body:,}")
    return length


@contextmanager
def received(h: Handler, length: int | None, limit: int, hold: Hold) -> Iterator[memoryview | bytearray]:
    """The body, read within ``body_timeout`` (408 when it does not come in time, 400 when it ends early), with
    the sink's byte budget taken as it arrives. A declared body goes into an anonymous mapping of its length,
    whose pages cost memory only once written, and is handed over without a copy."""
    h.body_deadline()
    try:
        if length is None:
            yield _read_chunked(h, limit, hold)
            return
        with mmap.mmap(-1, max(length, 1)) as area:
            view = memoryview(area)
            body = view[:length]
            try:
                got = 0
                while got < length:
                    step = min(READ_STEP, length - got)
                    hold.grow(step)
                    n = h.rfile.readinto(view[got:got + step])
                    if not n:
                        raise Refused(400, f"the body ended after {got:,} of its {length:,} bytes")
                    got += n
                h.unread_body = False
                yield body
            finally:
                body.release()  # so that the mapping can go, whoever still names the view
                view.release()
    except TimeoutError:
        raise Refused(408, f"the body did not arrive within {h.server.gate.limits.body_timeout:g} s") from None


def _read_chunked(h: Handler, limit: int, hold: Hold) -> bytearray:
    out = bytearray()
    while True:
        line = h.rfile.readline(MAX_CHUNK_LINE)
        size_text = line.split(b";", 1)[0].strip()
        if not line.endswith(b"\n") or not size_text or len(size_text) > 15 or size_text.strip(
                b"0123456789abcdefABCDEF"):
            raise Refused(400, "a chunked body with a chunk size line that is not one")
        size = int(size_text, 16)
        if not size:
            break
        if len(out) + size > limit:
            raise Refused(413, f"a chunked body over {limit:,} bytes")
        hold.grow(2 * size)  # the bytearray may be copied as it grows
        data = h.rfile.read(size)
        if len(data) < size or h.rfile.read(2) != b"\r\n":
            raise Refused(400, "a chunked body that ends inside a chunk")
        out += data
    for _ in range(MAX_TRAILERS):
        if h.rfile.readline(MAX_CHUNK_LINE).strip() == b"":
            h.unread_body = False
            return out
    raise Refused(400, f"more than {MAX_TRAILERS} trailer lines")


def answer(h: Handler, kind: str, refused: int) -> None:
    out = response(refused)
    if kind == JSON:
        return h.respond(200, json_format.MessageToJson(out, indent=None).encode(), JSON)
    return h.respond(200, out.SerializeToString(), PROTOBUF)


def status(h: Handler, code: int, message: str, kind: str, headers: dict[str, str] | None = None) -> None:
    """A failure as OTLP/HTTP answers one: a google.rpc.Status in the request's encoding."""
    body = Status(message=message)
    if kind == JSON:
        return h.respond(code, json_format.MessageToJson(body, indent=None).encode(), JSON, headers)
    return h.respond(code, body.SerializeToString(), PROTOBUF, headers)
