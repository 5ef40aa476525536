"""Regenerates the gRPC stubs in ``cristack/wire/pb`` from ``proto/`` (``make proto``).

grpcio-tools writes absolute imports such as ``from runtime.v1 import api_pb2``; we rewrite
them to ``cristack.wire.pb.runtime.v1`` so that the stubs live inside our package while the
.proto files keep their upstream-style paths (``runtime/v1/api.proto``).

ttrpc's envelope imports ``google/rpc/status.proto``, which googleapis-common-protos ships (with its
``google.rpc.status_pb2``, a runtime dependency already); services spoken only over ttrpc get no gRPC
stub, since nothing may serve them over gRPC by mistake.
"""

from __future__ import annotations

import re
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PROTO_DIR = REPO / "proto"
PROTOS = (
    "runtime/v1/api.proto",
    "conmon/v1/conmon.proto",
    "ttrpc/request.proto",
    "containerd/types/mount.proto",
    "containerd/types/event.proto",
    "containerd/types/task/task.proto",
    "containerd/runtime/task/v3/shim.proto",
    "containerd/runtime/bootstrap/v1/bootstrap.proto",
    "containerd/events/task.proto",
    "containerd/services/ttrpc/events/v1/events.proto",
    "containerd/services/events/v1/events.proto",
    "containerd/services/version/v1/version.proto",
)
# Spoken over ttrpc only (cristack.wire.ttrpc), or holding no service at all: no *_pb2_grpc.py.
NO_GRPC_STUB = frozenset(p for p in PROTOS if not p.startswith(("runtime/", "conmon/", "containerd/services/events/",
                                                                "containerd/services/version/")))
_IMPORT = re.compile(r"^from ((?:runtime|conmon|ttrpc|containerd)(?:\.\w+)*) import ", re.MULTILINE)


def _google_rpc_root() -> Path:
    """The directory holding googleapis-common-protos' ``google/rpc/status.proto``."""
    import google.rpc.status_pb2 as status_pb2

    return Path(status_pb2.__file__).resolve().parents[2]


def _well_known_root() -> Path:
    """grpcio-tools' copy of google/protobuf/*.proto (protoc.main does not add it by itself)."""
    import grpc_tools

    return Path(grpc_tools.__file__).resolve().parent / "_proto"


def generate(out_dir: Path) -> list[Path]:
    """Generates stubs for every proto into ``out_dir``; returns the files written."""
    from grpc_tools import protoc  # only a dev dependency

    written: list[Path] = []
    with tempfile.TemporaryDirectory() as tmp:
        args = ["protoc", f"-I{PROTO_DIR}", f"-I{_google_rpc_root()}", f"-I{_well_known_root()}",
                f"--python_out={tmp}", f"--pyi_out={tmp}", f"--grpc_python_out={tmp}", *PROTOS]
        if protoc.main(args) != 0:
            raise RuntimeError("protoc failed")
        stubless = {Path(p).with_name(Path(p).stem + "_pb2_grpc.py") for p in NO_GRPC_STUB}
        for src in sorted(Path(tmp).rglob("*.py*")):
            rel = src.relative_to(tmp)
            if rel in stubless:
                continue
            dest = out_dir / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            text = _IMPORT.sub(lambda m: f"from cristack.wire.pb.{m.group(1)} import ", src.read_text())
            dest.write_text(text)
            written.append(dest)
    for pkg in {p.parent for p in written} | {out_dir}:
        for d in [pkg, *pkg.relative_to(out_dir).parents]:
            init = (out_dir / d if not d.is_absolute() else d) / "__init__.py"
            if not init.exists():
                init.write_text("")
                written.append(init)
    return written


def main() -> int:
    out = REPO / "cristack" / "wire" / "pb"
    for f in generate(out):
        print(f.relative_to(REPO))
    return 0


if __name__ == "__main__":
    sys.exit(main())
