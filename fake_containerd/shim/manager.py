"""The runc shim manager's start and delete (cmd/containerd-shim-runc-v2/manager/manager_linux.go and
pkg/shim/shim.go of containerd v2.4.2), run in the container's bundle directory.

start: containerd writes a serialized BootstrapParams on stdin (read bounded, 10 MiB, as upstream).
The shim's socket address is ``unix://<socket dir>/<sha256 of "<grpc address>/<namespace>/<group>">``,
where the group is the container's pod (the ``io.kubernetes.cri.sandbox-id`` annotation, or the runc
group label) or else its own id: so every container of a pod lands on its pod's shim. If a shim
already answers on that address, its address is the answer; otherwise the socket is bound here, the
serving process started with it (in its own process group, ``OTEL_SERVICE_NAME=containerd-shim-<id>``),
and the answer is a serialized BootstrapResult: version 3, protocol "ttrpc", the address.

The socket dir is BootstrapParams.socket_dir when containerd gives one, else
``$CRISTACK_SHIM_SOCKET_DIR``, else a private dir of ours (upstream: /run/containerd/s, root's).

delete: cleanup when containerd cannot reach the shim: a serialized task v3 DeleteResponse with the
init pid from the bundle's init.pid, exit status 137 (128 + SIGKILL) and now, as upstream's Stop answers.
"""

from __future__ import annotations

import hashlib
import os
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from google.protobuf.message import DecodeError

from cristack.lifeline import inherited_lifeline
from cristack.otel.stats import STATS_ENV, child_stats_path, stats_path_from_env
from cristack.pyexec import module_argv
from cristack.wire.endpoints import MAX_UNIX_PATH, default_runtime_dir, private_dir, serving
from cristack.wire.endpoints import parse_endpoint as _parse
from cristack.wire.pb.containerd.runtime.bootstrap.v1 import bootstrap_pb2
from cristack.wire.pb.containerd.runtime.task.v3 import shim_pb2
from fake_containerd.shim.bundle import grouping, read_bundle, read_init_pid

MAX_STDIN = 10 << 20
SHIM_API_VERSION = 3
SOCKET_DIR_ENV = "CRISTACK_SHIM_SOCKET_DIR"


class StartError(Exception):
    """Why start could not give containerd an address (printed on stderr, exit status 1)."""


@dataclass(frozen=True)
class Flags:
    namespace: str
    instance_id: str
    grpc_address: str
    publish_binary: str = ""
    debug: bool = False
    bundle: str = ""


def read_params(stdin: BinaryIO, flags: Flags) -> bootstrap_pb2.BootstrapParams:
    """BootstrapParams from stdin, or (an older containerd: nothing or runc options there) from the
    flags and environment, as v2.4's readBootstrapParamsFromDeprecatedFields does."""
    data = stdin.read(MAX_STDIN + 1)
    if len(data) > MAX_STDIN:
        raise StartError(f"bootstrap parameters over {MAX_STDIN} bytes")
    params = bootstrap_pb2.BootstrapParams()
    try:
        params.ParseFromString(data)
        parsed = bool(data)
    except DecodeError:
        parsed = False
    if not parsed or not params.instance_id:
        params = bootstrap_pb2.BootstrapParams(
            instance_id=flags.instance_id, namespace=flags.namespace,
            containerd_ttrpc_address=os.environ.get("TTRPC_ADDRESS", ""),
            containerd_grpc_address=os.environ.get("GRPC_ADDRESS", flags.grpc_address),
            containerd_binary=flags.publish_binary,
            log_level=bootstrap_pb2.LOG_LEVEL_DEBUG if flags.debug else bootstrap_pb2.LOG_LEVEL_INFO)
    return params


def socket_dir(params: bootstrap_pb2.BootstrapParams) -> Path:
    if params.HasField("socket_dir") and params.socket_dir:
        return Path(params.socket_dir)
    return Path(os.environ.get(SOCKET_DIR_ENV) or default_runtime_dir() / "s")


def socket_address(root: Path, grpc_address: str, namespace: str, group: str) -> str:
    """pkg/shim CreateSocketAddress: a sha256 name, so no id can steer the path."""
    digest = hashlib.sha256(os.path.join(grpc_address, namespace, group).encode()).hexdigest()
    return f"unix://{root}/{digest}"


def start(flags: Flags, stdin: BinaryIO, cwd: Path) -> bootstrap_pb2.BootstrapResult:
    params = read_params(stdin, flags)
    if params.namespace != flags.namespace or params.instance_id != flags.instance_id:
        raise StartError("bootstrap parameters do not match command-line arguments")
    spec = read_bundle(cwd)
    group = grouping(spec, params.instance_id)
    root = private_dir(socket_dir(params))
    address = socket_address(root, params.containerd_grpc_address, params.namespace, group)
    path = Path(address.removeprefix("unix://"))
    if len(os.fsencode(path)) > MAX_UNIX_PATH:
        raise StartError(f"socket path {path} is longer than {MAX_UNIX_PATH} bytes: choose a shorter socket dir")
    result = bootstrap_pb2.BootstrapResult(version=SHIM_API_VERSION, address=address, protocol="ttrpc")
    if path.exists() and serving(_parse(str(path))):
        return result  # the pod's shim is running: this container joins it
    if path.exists() or path.is_symlink():
        path.unlink()  # a dead shim's socket
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        old = os.umask(0o117)
        try:
            listener.bind(str(path))
        finally:
            os.umask(old)
        listener.listen(128)
        env = {**os.environ, "OTEL_SERVICE_NAME": f"containerd-shim-{params.instance_id}",
               "TTRPC_ADDRESS": params.containerd_ttrpc_address, "GRPC_ADDRESS": params.containerd_grpc_address,
               "NAMESPACE": params.namespace, "CRISTACK_SHIM_LISTEN_FD": str(listener.fileno())}
        if (stats := stats_path_from_env()) is not None:  # mock-only: the shim's counts beside containerd's
            env[STATS_ENV] = str(child_stats_path(stats, f"shim-{params.instance_id}"))
        # The bundle dir is the working directory: never on the serving process's sys.path.
        argv = module_argv("fake_containerd.shim.main", "-namespace", params.namespace,
                           "-id", params.instance_id, "-address", params.containerd_grpc_address)
        if params.log_level <= bootstrap_pb2.LOG_LEVEL_DEBUG:
            argv.append("-debug")
        # containerd's lifeline (a mock-only wish, fake_containerd/runtime/shim.py) goes on to the serving process.
        lifeline = inherited_lifeline()
        keep = (listener.fileno(),) if lifeline is None else (listener.fileno(), lifeline)
        subprocess.Popen(argv, cwd=cwd, env=env, pass_fds=keep, start_new_session=True,
                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=_shim_log(cwd))
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    finally:
        listener.close()
    return result


def _shim_log(cwd: Path) -> int | BinaryIO:
    """Where the serving process's own log goes: the bundle's shim.log (upstream: the log fifo containerd reads)."""
    try:
        return open(cwd / "shim.log", "ab")  # noqa: SIM115 - handed to the child, closed with this process
    except OSError:
        return subprocess.DEVNULL


def delete(flags: Flags, cwd: Path) -> shim_pb2.DeleteResponse:
    bundle = Path(flags.bundle) if flags.bundle else cwd.parent / flags.instance_id
    resp = shim_pb2.DeleteResponse(pid=read_init_pid(bundle), exit_status=128 + 9)
    resp.exited_at.FromNanoseconds(time.time_ns())
    return resp
