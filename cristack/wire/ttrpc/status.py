"""Call outcomes as ttrpc carries them: a google.rpc.Status (a gRPC code and a message) in each Response.

``TtrpcError`` is a failed call, on either side. A handler raises it (or any exception with a
``grpc.StatusCode`` ``code``, such as ``cristack.wire.errors.RpcError``) to answer that status; a
client gets it for a non-OK status. Errors that are not statuses map as ttrpc's ``convertCode`` maps
Go errors: a plain exception is UNKNOWN with its text.

``Closed`` is ttrpc's ``ErrClosed`` ("ttrpc: closed"): the connection went away before the answer.
It is not a status on the wire, so otelttrpc sees it as UNKNOWN with that message, and so do we.
"""

from __future__ import annotations

import asyncio

import grpc
from google.rpc import status_pb2

_BY_VALUE = {code.value[0]: code for code in grpc.StatusCode}


def code_of(value: int) -> grpc.StatusCode:
    """The code for a wire value; one we do not know is UNKNOWN (as grpc-go's status does)."""
    return _BY_VALUE.get(value, grpc.StatusCode.UNKNOWN)


class TtrpcError(Exception):
    """A call that ended with a non-OK status."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    @property
    def code_value(self) -> int:
        return int(self.code.value[0])

    def to_status(self) -> status_pb2.Status:
        return status_pb2.Status(code=self.code_value, message=self.message)

    @classmethod
    def from_status(cls, status: status_pb2.Status) -> TtrpcError:
        return cls(code_of(status.code), status.message)

    def __str__(self) -> str:
        # grpc-go's status error text, which containerd's logs and errors show.
        return f"rpc error: code = {_go_name(self.code)} desc = {self.message}"


class Closed(TtrpcError):
    """The connection closed with the call unanswered (or before it was sent)."""

    def __init__(self) -> None:
        super().__init__(grpc.StatusCode.UNKNOWN, "ttrpc: closed")

    def __str__(self) -> str:
        return self.message


class DeadlineExceeded(TtrpcError):
    """The caller's own deadline passed (Go's context.DeadlineExceeded, not a status: UNKNOWN to otelttrpc)."""

    def __init__(self) -> None:
        super().__init__(grpc.StatusCode.UNKNOWN, "context deadline exceeded")

    def __str__(self) -> str:
        return self.message


def _go_name(code: grpc.StatusCode) -> str:
    if code == grpc.StatusCode.CANCELLED:
        return "Canceled"
    return "OK" if code == grpc.StatusCode.OK else "".join(p.capitalize() for p in code.name.split("_"))


def status_for(err: BaseException) -> TtrpcError:
    """What a server answers for an exception out of a handler (services.go ``unaryCall``)."""
    if isinstance(err, TtrpcError):
        return err
    code = getattr(err, "code", None)
    if isinstance(code, grpc.StatusCode):
        return TtrpcError(code, str(err))
    if isinstance(err, asyncio.TimeoutError | TimeoutError):
        return TtrpcError(grpc.StatusCode.DEADLINE_EXCEEDED, "context deadline exceeded")
    if isinstance(err, asyncio.CancelledError):
        return TtrpcError(grpc.StatusCode.CANCELLED, "context canceled")
    if isinstance(err, FileNotFoundError):
        return TtrpcError(grpc.StatusCode.NOT_FOUND, str(err))
    if isinstance(err, FileExistsError):
        return TtrpcError(grpc.StatusCode.ALREADY_EXISTS, str(err))
    if isinstance(err, PermissionError):
        return TtrpcError(grpc.StatusCode.PERMISSION_DENIED, str(err))
    return TtrpcError(grpc.StatusCode.UNKNOWN, str(err) or type(err).__name__)
