"""What CRI-O's handlers share (server/utils.go and a few of internal/): the stop timeout from the caller's
deadline, the resource store's stage log lines, the error for a plain Go error, descriptions."""

from __future__ import annotations

import logging
import time

import grpc
from google.protobuf import json_format

from cristack.otel.requestctx import REQUEST_DEADLINE
from cristack.wire.errors import InvalidArgument, RpcError
from fake_crio.state import CREATED, EXITED, RUNNING

log = logging.getLogger(__name__)

DEFAULT_STOP_TIMEOUT_S = 10
# CRI-O's packages, for step names (see fake_crio.tracing.span_name).
OCI_RUNTIME = "internal/oci.(*Runtime)."
OCI_IMPL = "internal/oci.(*runtimeOCI)."
LIB_SERVER = "internal/lib.(*ContainerServer)."
SANDBOX = "internal/lib/sandbox.(*Sandbox)."
STORAGE = "internal/storage.(*runtimeService)."
STREAM_CHUNK_SIZE = 3000  # server/server.go streamChunkSize: items per Stream* response


class Unknown(RpcError):
    """What CRI-O answers for a plain Go error (gRPC turns it into UNKNOWN)."""

    code = grpc.StatusCode.UNKNOWN


def description(labels: dict[str, str]) -> str:
    """CRI-O's container description: namespace/pod/container from the kubelet's labels
    (``//`` for a container crictl created without them)."""
    return "/".join(labels.get(f"io.kubernetes.{k}", "") for k in ("pod.namespace", "pod.name", "container.name"))


def oci_state(state: int) -> str:
    return {CREATED: "created", RUNNING: "running", EXITED: "stopped"}.get(state, "unknown")


def stop_timeout() -> int:
    """CRI-O's stopTimeoutFromContext (server/utils.go): the whole seconds left before the caller's deadline,
    or 10 without one; logged at debug level."""
    deadline = REQUEST_DEADLINE.get()
    timeout = DEFAULT_STOP_TIMEOUT_S if deadline is None else int(max(deadline - time.monotonic(), 0))
    log.debug("Using stop timeout: %d", timeout)
    return timeout


class Stages:
    """CRI-O's resource store logs each stage of a sandbox or container creation at debug level
    (internal/resourcestore): ``Setting stage for resource R from A to B``."""

    def __init__(self, resource: str, first: str, *, announce: bool = True) -> None:
        self.resource, self.stage = resource, first
        if announce:
            log.debug("Initializing stage for resource %s to %s", resource, first)

    def to(self, stage: str) -> None:
        log.debug("Setting stage for resource %s from %s to %s", self.resource, self.stage, stage)
        self.stage = stage


def image_ref(spec) -> str:  # noqa: ANN001 - a pb.ImageSpec
    """The image an image call names; INVALID_ARGUMENT when it names none (CRI-O's words)."""
    if not spec.image:
        raise InvalidArgument("ImageSpec.Image should not be empty")
    return spec.image


def as_dict(msg) -> dict:  # noqa: ANN001 - any message
    return json_format.MessageToDict(msg, preserving_proto_field_name=True)
