"""Values printed as containerd's Go code prints them into its log lines (which become span events, and whose
text the fidelity tests compare after masking ids, paths and numbers): a protobuf message with ``%+v``
(protobuf-go's compact text format), a runtime handler struct with ``%+v``, a string slice with ``%v``."""

from __future__ import annotations

import json
from typing import Any

from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

# runc's options with the defaults the CRI plugin starts from (internal/cri/config DefaultRuntimeConfig); a
# runtime's own options are laid over them.
RUNC_DEFAULT_OPTIONS: dict[str, Any] = {"NoNewKeyring": False, "ShimCgroup": "", "IoUid": 0, "IoGid": 0,
                                        "BinaryName": "", "Root": "", "SystemdCgroup": False, "CriuImagePath": "",
                                        "CriuWorkPath": ""}


def _scalar(field: FieldDescriptor, value: Any) -> str:
    if field.type == FieldDescriptor.TYPE_ENUM:
        return field.enum_type.values_by_number[value].name if value in field.enum_type.values_by_number \
            else str(value)
    if field.type == FieldDescriptor.TYPE_BOOL:
        return "true" if value else "false"
    if field.type in (FieldDescriptor.TYPE_STRING, FieldDescriptor.TYPE_BYTES):
        text = value.decode(errors="replace") if isinstance(value, bytes) else value
        return json.dumps(text, ensure_ascii=False)
    return str(value)


def proto_text(msg: Message) -> str:
    """protobuf-go's String() of a message: ``name:value`` pairs in field order, messages in braces."""
    parts = []
    for field, value in msg.ListFields():
        if field.message_type is not None and field.message_type.GetOptions().map_entry:
            for key in sorted(value):
                entry = value[key]
                shown = f"{{{proto_text(entry)}}}" if isinstance(entry, Message) else json.dumps(entry)
                parts.append(f"{field.name}:{{key:{json.dumps(key)} value:{shown}}}")
            continue
        items = value if field.is_repeated else [value]
        for item in items:
            if field.type == FieldDescriptor.TYPE_MESSAGE:
                parts.append(f"{field.name}:{{{proto_text(item)}}}")
            else:
                parts.append(f"{field.name}:{_scalar(field, item)}")
    return " ".join(parts)


def _go_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def runtime_text(runtime_type: str, options: dict[str, Any], sandboxer: str, snapshotter: str = "") -> str:
    """``%+v`` of criconfig.Runtime, as ``Use OCI runtime ...`` prints it (map keys sorted, as Go prints maps)."""
    merged = {**RUNC_DEFAULT_OPTIONS, **options}
    opts = " ".join(f"{k}:{_go_value(merged[k])}" for k in sorted(merged))
    return (f"{{Type:{runtime_type} Path: PodAnnotations:[] ContainerAnnotations:[] Options:map[{opts}] "
            "PrivilegedWithoutHostDevices:false PrivilegedWithoutHostDevicesAllDevicesAllowed:false "
            "CgroupWritable:false BaseRuntimeSpec: NetworkPluginConfDir: NetworkPluginMaxConfNum:0 "
            f"Snapshotter:{snapshotter} Sandboxer:{sandboxer} DisablePauseImagePull:false IOType:}}")


def go_slice(items: list[str]) -> str:
    """``%v`` of a []string: ``[echo yo]``."""
    return "[" + " ".join(items) + "]"
