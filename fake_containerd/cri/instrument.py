"""The CRI plugin's instrumented service (internal/cri/instrument/instrumented_service.go of containerd v2.4.2):
every call logged as upstream logs it, which the log hook turns into events on the call's SERVER span:

- mutating calls at info (``RunPodSandbox for <metadata>``, ``... returns sandbox id "<id>"``), ExecSync's at
  debug; the read-only ones (status, list, version) at trace level, so never at info or debug;
- a failure: ``<call> for "<id>" failed`` at error with the ``error`` field (the gRPC status as Go prints it),
  and for the calls whose wrapper holds the span, an ``exception`` event (span.RecordError(err),
  ``*status.Error``). The span's status stays unset (only otelgrpc sets it, for server faults).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

from cristack.wire.errors import RpcError
from fake_containerd.cri.errors import rpc_error_text
from fake_containerd.tracing import record_error

log = logging.getLogger("fake_containerd.cri")


@contextlib.contextmanager
def logged(failed: str, *, record: bool = True) -> Iterator[None]:
    """Logs ``failed`` at error with the error when the block raises one the caller will see, and records it
    on the span as an ``exception`` event when ``record`` (the wrappers that call span.RecordError)."""
    try:
        yield
    except RpcError as err:
        text = rpc_error_text(err)
        log.error("%s", failed, extra={"fields": {"error": text}})
        if record:
            record_error(RuntimeError(text))
        raise


def started(message: str, *args: object, debug: bool = False) -> None:
    (log.debug if debug else log.info)(message, *args)


def finished(message: str, *args: object, debug: bool = False) -> None:
    (log.debug if debug else log.info)(message, *args)
