"""``fake-containerd-shim-runc-v2``: the command line of containerd's runc shim (pkg/shim/shim.go
parseFlags, containerd v2.4.2): Go-style single-dash flags, then an action.

    fake-containerd-shim-runc-v2 -namespace k8s.io -address /run/containerd/containerd.sock \\
        -publish-binary /usr/bin/containerd -id ID start   < BootstrapParams
    fake-containerd-shim-runc-v2 -namespace k8s.io -id ID -bundle DIR delete
    fake-containerd-shim-runc-v2 -v

start prints a serialized BootstrapResult, delete a serialized DeleteResponse; without an action the
process is the shim itself (started by start, never by hand).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import platform
import sys
from pathlib import Path

from cristack import __version__ as CRISTACK_VERSION
from cristack.wire.errors import RpcError
from fake_containerd.shim import manager

NAME = "fake-containerd-shim-runc-v2"
CONTAINERD_VERSION = "v2.4.2"


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=NAME, description="containerd's runc shim (task API v3 over ttrpc), "
                                "running cristack's applet containers.")
    p.add_argument("-debug", action="store_true", help="enable debug output in logs")
    p.add_argument("-v", "-version", dest="version", action="store_true", help="show the shim version and exit")
    p.add_argument("-namespace", default="", help="namespace that owns the shim")
    p.add_argument("-id", default="", help="id of the task")
    p.add_argument("-socket", default="", help="socket path to serve")
    p.add_argument("-debug-socket", default="", help="debug socket path to serve (unused)")
    p.add_argument("-bundle", default="", help="path to the bundle if not workdir")
    p.add_argument("-address", default="", help="grpc address back to main containerd")
    p.add_argument("-publish-binary", default="", help="path to publish binary (unused: events go over ttrpc)")
    p.add_argument("action", nargs="?", choices=["start", "delete"], help="start a shim, or clean up after one")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.version:
        print(f"{NAME}:\n  Version:  {CONTAINERD_VERSION}\n  Revision: cristack {CRISTACK_VERSION}\n"
              f"  Python version: {platform.python_version()}\n")
        return 0
    if not args.namespace:
        print(f"{NAME}: shim namespace cannot be empty", file=sys.stderr)
        return 1
    logging.basicConfig(level=logging.DEBUG if args.debug else logging.INFO, stream=sys.stderr,
                        format="time=%(asctime)s level=%(levelname)s msg=%(message)r runtime=io.containerd.runc.v2")
    flags = manager.Flags(args.namespace, args.id, args.address, args.publish_binary, args.debug, args.bundle)
    try:
        if args.action == "start":
            result = manager.start(flags, sys.stdin.buffer, Path.cwd())
            sys.stdout.buffer.write(result.SerializeToString())
            return 0
        if args.action == "delete":
            sys.stdout.buffer.write(manager.delete(flags, Path.cwd()).SerializeToString())
            return 0
        # The serving process only: start and delete (once per pod each) need none of its imports.
        from fake_containerd.shim import daemon

        return asyncio.run(daemon.run(args.namespace, args.id, args.socket))
    except (manager.StartError, RpcError, OSError, ValueError) as err:
        # containerd shows the shim's stderr in its own error: one line, no traceback.
        print(f"io.containerd.runc.v2: {err}", file=sys.stderr, end="")
        return 1


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
