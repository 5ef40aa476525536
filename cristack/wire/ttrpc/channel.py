"""ttrpc's frames (channel.go in github.com/containerd/ttrpc v1.2.9).

Every message is a 10-byte big-endian header (data length uint32, stream id uint32, message type
byte, flags byte) and then that many bytes. A length over 4 MiB is refused: the reader drops the
body unread into memory (bounded chunks) and reports the ResourceExhausted status ttrpc answers on
that stream, so the connection stays usable, as upstream's ``channel.recv`` does.
"""

from __future__ import annotations

import asyncio
import struct
from dataclasses import dataclass
from enum import IntEnum

import grpc

from cristack.wire.ttrpc.status import TtrpcError

HEADER = struct.Struct(">IIBB")
HEADER_LENGTH = HEADER.size  # 10
MESSAGE_LENGTH_MAX = 4 << 20
DISCARD_CHUNK = 64 * 1024


class MessageType(IntEnum):
    REQUEST = 0x1
    RESPONSE = 0x2
    DATA = 0x3


FLAG_REMOTE_CLOSED = 0x1
FLAG_REMOTE_OPEN = 0x2
FLAG_NO_DATA = 0x4


@dataclass(frozen=True)
class Frame:
    stream_id: int
    type: int
    flags: int
    payload: bytes


def oversized(length: int) -> TtrpcError:
    """The status ttrpc gives for a message over the limit, sent or received (errors.go)."""
    return TtrpcError(grpc.StatusCode.RESOURCE_EXHAUSTED,
                      f"message length {length} exceed maximum message size of {MESSAGE_LENGTH_MAX}")


class OversizedFrame(Exception):
    """A peer announced a message over the limit; its body was skipped. ``status`` is what to answer."""

    def __init__(self, stream_id: int, length: int) -> None:
        super().__init__(f"stream {stream_id}: message length {length} over the limit")
        self.stream_id = stream_id
        self.status = oversized(length)


def encode(stream_id: int, mtype: int, flags: int, payload: bytes) -> bytes:
    """One frame; raises the oversized-message status before anything is written (as ``channel.send``)."""
    if len(payload) > MESSAGE_LENGTH_MAX:
        raise oversized(len(payload))
    return HEADER.pack(len(payload), stream_id, mtype, flags) + payload


async def read_frame(reader: asyncio.StreamReader) -> Frame:
    """The next frame. Raises ``asyncio.IncompleteReadError`` at end of stream and ``OversizedFrame``
    (after skipping the body) for a message over the limit."""
    length, stream_id, mtype, flags = HEADER.unpack(await reader.readexactly(HEADER_LENGTH))
    if length > MESSAGE_LENGTH_MAX:
        left = length
        while left:
            chunk = await reader.read(min(left, DISCARD_CHUNK))
            if not chunk:
                raise asyncio.IncompleteReadError(b"", left)
            left -= len(chunk)
        raise OversizedFrame(stream_id, length)
    payload = await reader.readexactly(length) if length else b""
    return Frame(stream_id, mtype, flags, payload)
