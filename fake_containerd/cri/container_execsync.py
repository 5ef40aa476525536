"""ExecSync (internal/cri/server/container_execsync.go execInternal of containerd v2.4.2): the container's task
loaded (State), the exec made (``client.task.Exec``), its wait (``process.Wait``) and start
(``process.Start``), the exit code; the process deleted afterwards from a background context
(``process.Delete``, a root: Kill, Wait, the States, Delete). The exec's output goes to two files the shim
writes (containerd would hand it fifos) and comes back bounded."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from pathlib import Path

from opentelemetry import trace

from cristack.wire.errors import DeadlineExceeded, NotFound, RpcError
from cristack.wire.pb.runtime.v1 import api_pb2 as pb
from fake_containerd.cri.errors import Unknown
from fake_containerd.cri.service import CriService
from fake_containerd.cri.spec import exec_process
from fake_containerd.cri.store import generate_id

log = logging.getLogger(__name__)

KILL_WAIT_S = 5.0
MAX_EXEC_OUTPUT = 16 * 1024 * 1024  # the kubelet's message cap: more could not be answered anyway


async def exec_sync(c: CriService, request: pb.ExecSyncRequest) -> pb.ExecSyncResponse:
    span = trace.get_current_span()
    try:
        record = c.stores.container(request.container_id)
    except NotFound:
        raise NotFound(f'failed to exec in container: failed to find container "{request.container_id}" in store: '
                       "not found") from None
    span.set_attribute("container.id", record.id)
    if record.state != pb.CONTAINER_RUNNING:
        names = {pb.CONTAINER_CREATED: "CONTAINER_CREATED", pb.CONTAINER_EXITED: "CONTAINER_EXITED"}
        raise Unknown(f"failed to exec in container: container is in {names.get(record.state, 'CONTAINER_UNKNOWN')} "
                      "state")
    if not request.cmd:
        raise Unknown("failed to exec in container: failed to start exec: exec command cannot be empty")
    cap = c.config.max_exec_seconds
    timeout = min(request.timeout, cap) if request.timeout > 0 else cap
    try:
        task = await record.container.task()
    except NotFound as err:
        raise NotFound(f"failed to exec in container: failed to load task: {err}") from None
    exec_id = generate_id()
    log.debug('Generated exec id "%s" for container "%s"', exec_id, record.id)
    io_dir = c.config.k8s_state / "containers" / record.id / "io"
    io_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    out, err_path = io_dir / f"{exec_id}-stdout", io_dir / f"{exec_id}-stderr"
    process = await task.exec(exec_id, exec_process(record.container.meta.spec, list(request.cmd)),
                              f"file://{out}", f"file://{err_path}")
    try:
        exit_wait = process.wait()
        await process.start()
        try:
            status = await asyncio.wait_for(asyncio.shield(exit_wait), timeout)
        except asyncio.TimeoutError:
            # execInternal: SIGKILL, then the exit (bounded, as drain_exec_sync_io_timeout bounds the io).
            with contextlib.suppress(NotFound):
                await process.kill(signal.SIGKILL)
            with contextlib.suppress(asyncio.TimeoutError, RpcError):
                await asyncio.wait_for(exit_wait, KILL_WAIT_S)
            raise DeadlineExceeded(f"failed to exec in container: timeout {int(timeout)}s exceeded: context deadline "
                                   "exceeded") from None
        log.debug('Exec process "%s" exits with exit code %d and error <nil>', exec_id, status.code)
        stdout, stderr = _read(out), _read(err_path)
    finally:
        c.spawn(_delete(c, process, out, err_path))
    return pb.ExecSyncResponse(stdout=stdout, stderr=stderr, exit_code=status.code)


async def _delete(c: CriService, process, *files: Path) -> None:  # noqa: ANN001 - a client Process
    """The deferred process.Delete(WithProcessKill), with a background context."""
    with c.tracing.background():
        try:
            await process.delete(kill=True)
        except RpcError as err:
            log.error('Failed to delete exec process "%s" for container "%s": %s', process.id, process.task.id, err)
    for f in files:
        f.unlink(missing_ok=True)


def _read(path: Path) -> bytes:
    try:
        with path.open("rb") as f:
            return f.read(MAX_EXEC_OUTPUT)
    except FileNotFoundError:
        return b""

