"""What must equal upstream in a .proto file: names, numbers, types and labels, read from protoc's
descriptors (so comments, option lines and file paths do not count), and where upstream's files
are on this machine (the Go module cache, filled by `make tools`)."""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path

from google.protobuf import descriptor_pb2


def descriptor(proto_root: Path, rel: str, *includes: Path) -> descriptor_pb2.FileDescriptorProto:
    """``rel`` (under ``proto_root``) compiled by grpcio-tools' protoc; ``includes`` add import roots."""
    import grpc_tools
    from grpc_tools import protoc

    well_known = Path(grpc_tools.__file__).resolve().parent / "_proto"
    with tempfile.TemporaryDirectory() as tmp:  # never beside the sources: the module cache is read-only
        out = Path(tmp) / "set.pb"
        args = ["protoc", f"-I{proto_root}", *(f"-I{i}" for i in includes), f"-I{well_known}",
                f"--descriptor_set_out={out}", rel]
        assert protoc.main(args) == 0, f"protoc failed on {proto_root / rel}"
        fds = descriptor_pb2.FileDescriptorSet()
        fds.ParseFromString(out.read_bytes())
    return fds.file[0]


def facts(fd: descriptor_pb2.FileDescriptorProto) -> dict[str, object]:
    """Names, numbers, types and labels of everything in a file: what must equal upstream."""
    found: dict[str, object] = {"package": fd.package}

    def walk_msg(m: descriptor_pb2.DescriptorProto, prefix: str) -> None:
        name = f"{prefix}{m.name}"
        found[f"message {name}"] = [(f.name, f.number, f.type, f.label, f.type_name, f.proto3_optional)
                                    for f in m.field]
        for e in m.enum_type:
            found[f"enum {name}.{e.name}"] = [(v.name, v.number) for v in e.value]
        for n in m.nested_type:
            walk_msg(n, name + ".")

    for m in fd.message_type:
        walk_msg(m, "")
    for e in fd.enum_type:
        found[f"enum {e.name}"] = [(v.name, v.number) for v in e.value]
    for s in fd.service:
        found[f"service {s.name}"] = [(m.name, m.input_type, m.output_type, m.client_streaming, m.server_streaming)
                                      for m in s.method]
    return found


def go_module_dir(module: str, version: str) -> Path | None:
    """Where the Go module cache holds ``module@version``, or None (no Go, or not downloaded)."""
    try:
        modcache = subprocess.run(["go", "env", "GOMODCACHE"], capture_output=True, text=True,
                                  check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    escaped = "".join(f"!{c.lower()}" if c.isupper() else c for c in module)
    path = Path(modcache) / f"{escaped}@{version}"
    return path if path.is_dir() else None
