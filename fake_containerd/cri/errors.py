"""How the CRI plugin's errors reach a caller (errgrpc.ToGRPC of containerd v2.4.2): errdefs kinds keep their
gRPC code; a plain Go error becomes UNKNOWN. The message a caller sees is ``rpc error: code = X desc = ...``
in the plugin's own log line (internal/cri/instrument), the bare description on the wire."""

from __future__ import annotations

import grpc

from cristack.wire.errors import RpcError

# Go's codes.Code.String() spelling, as status.Error's message prints it.
GO_CODE = {grpc.StatusCode.NOT_FOUND: "NotFound", grpc.StatusCode.UNKNOWN: "Unknown",
           grpc.StatusCode.INVALID_ARGUMENT: "InvalidArgument", grpc.StatusCode.ALREADY_EXISTS: "AlreadyExists",
           grpc.StatusCode.FAILED_PRECONDITION: "FailedPrecondition", grpc.StatusCode.UNAVAILABLE: "Unavailable",
           grpc.StatusCode.INTERNAL: "Internal", grpc.StatusCode.RESOURCE_EXHAUSTED: "ResourceExhausted",
           grpc.StatusCode.DEADLINE_EXCEEDED: "DeadlineExceeded", grpc.StatusCode.UNIMPLEMENTED: "Unimplemented",
           grpc.StatusCode.CANCELLED: "Canceled", grpc.StatusCode.PERMISSION_DENIED: "PermissionDenied"}


class Unknown(RpcError):
    """A plain error: gRPC answers it UNKNOWN."""

    code = grpc.StatusCode.UNKNOWN


def rpc_error_text(err: RpcError) -> str:
    """status.Error's Error(): ``rpc error: code = NotFound desc = <message>``."""
    return f"rpc error: code = {GO_CODE.get(err.code, err.code.name)} desc = {err}"
