"""CRI-O's per-request context: every log line of a request carries a fresh uuid and the method's name, and
stop timeouts come from the caller's deadline. Context variables, so each call (each asyncio task) has its own,
whatever else runs in the process."""

from __future__ import annotations

import contextvars
import uuid

# CRI-O tags every log line of a request with a per-request uuid and the method name.
REQUEST_ID: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="")
REQUEST_NAME: contextvars.ContextVar[str] = contextvars.ContextVar("request_name", default="")
# When the current request's caller gives up (time.monotonic()), or None without a deadline: CRI-O derives
# stop timeouts from it (server/utils.go stopTimeoutFromContext).
REQUEST_DEADLINE: contextvars.ContextVar[float | None] = contextvars.ContextVar("request_deadline", default=None)


def new_request_id() -> str:
    return str(uuid.uuid4())
