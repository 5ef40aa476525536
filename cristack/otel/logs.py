"""Log setup shared by the components: logrus-style level names, one line per record."""

from __future__ import annotations

import logging
import sys

from cristack.otel.loghandler import MAX_MESSAGE, TraceIdFilter
from cristack.wording import cut

LEVELS = {
    "trace": logging.DEBUG,
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warn": logging.WARNING,
    "warning": logging.WARNING,
    "error": logging.ERROR,
    "fatal": logging.CRITICAL,
    "panic": logging.CRITICAL,
}


def parse_level(text: str) -> int:
    """Maps a CRI-O/kubelet style level name to a logging level; ValueError if unknown."""
    try:
        return LEVELS[text.strip().lower()]
    except KeyError:
        raise ValueError(f"unknown log level {text!r} (one of {', '.join(LEVELS)})") from None


def verbosity_level(v: int) -> int:
    """klog's -v: 0-1 info, 2-3 more info (we keep INFO), 4 and above debug."""
    return logging.DEBUG if v >= 4 else logging.INFO


class BoundedFormatter(logging.Formatter):
    """A log line whose message is at most ``MAX_MESSAGE`` characters, cut saying how long it was: whatever a
    request or a file held, no line of a component's log grows with it."""

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802 - logging's name
        record.message = cut(record.message, MAX_MESSAGE)
        return super().formatMessage(record)


def setup(component: str, level: int) -> None:
    """Configures the root logger for a component's ``main``: ``time level component: message trace_id=..
    span_id=..`` lines on stderr. (Records as span events are the component's own handler, which its ``run``
    attaches for as long as it runs: ``Telemetry.log_events``.)"""
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(TraceIdFilter())
    handler.setFormatter(BoundedFormatter(
        f"%(asctime)s.%(msecs)03d %(levelname)-5s {component}: %(message)s%(trace)s", "%Y-%m-%dT%H:%M:%S"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # grpc's own loggers are chatty at DEBUG and say nothing a user of ours needs.
    logging.getLogger("grpc").setLevel(max(level, logging.INFO))
