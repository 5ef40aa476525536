"""ttrpc, containerd's RPC over unix sockets, as github.com/containerd/ttrpc v1.2.9 speaks it.

- ``channel``: the 10-byte frame header (length, stream id, type, flags) and the 4 MiB limit;
- ``status``: errors as google.rpc.Status codes, and the errors ttrpc itself gives;
- ``metadata``: the per-call string pairs (``MD``), keys lower-cased as ttrpc's ``MD.Set`` does;
- ``client``: one connection, concurrent unary calls on odd stream ids, a client interceptor;
- ``server``: a method table per service, per-call metadata and deadline, a server interceptor.

Only unary calls: every method containerd's task v3 and events services define is unary, and ttrpc's
streams (v1.2's data frames and remote-open/closed flags) are used by no call a shim or containerd makes
to each other. A peer that sends a data frame gets the status ttrpc answers for a stream it does not know.
"""

from cristack.wire.ttrpc.client import Client, ClientInterceptor, Invoker
from cristack.wire.ttrpc.metadata import MD
from cristack.wire.ttrpc.server import CallContext, Method, Server, ServerInterceptor
from cristack.wire.ttrpc.status import Closed, TtrpcError

__all__ = ["MD", "CallContext", "Client", "ClientInterceptor", "Closed", "Invoker", "Method", "Server",
           "ServerInterceptor", "TtrpcError"]
