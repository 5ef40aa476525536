"""The fake Kata agent: one process per VM sandbox, serving the same container API as fake-conmon (conmon.v1) on
the sandbox's agent socket, running the sandbox's containers through the same monitor
(``cristack.containers.monitor_api``). It traces as Kata's agent does (``src/agent/src/main.rs``,
``tracer.rs``, ``rpc.rs``): a ``root-span`` with no parent covering its whole life (so that trace is complete
only once the sandbox stops), and one span per RPC (scope ``kata-agent``, named as ``trace_rpc_call!`` names
it, with ``mod`` and ``req``) whose parent is the runtime's ``ttrpc.<Method>`` span, from the request's
metadata. Its spans never go to a collector: they are written as frames to the trace forwarder. Its entry point
is ``fake_kata.main``.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from opentelemetry import propagate, trace

from cristack.containers.monitor_api import MonitorApi
from cristack.wire.pb.conmon.v1 import conmon_pb2_grpc as cgrpc
from cristack.wire.servicer import servicer_for

log = logging.getLogger("kata-agent")

AGENT_SCOPE = "kata-agent"
# The monitor API's calls, as the agent's ttrpc service names the same work (rpc.rs).
AGENT_RPCS = {"version": "get_guest_details", "create_namespaces": "create_sandbox",
              "create_container": "create_container", "start_container": "start_container",
              "stop_container": "signal_process", "exec_sync_container": "exec_process"}


def _debug(request: Any) -> str:
    """A request the way Rust's ``{:?}`` prints a struct: ``Name { field: value, ... }`` (metadata left out)."""
    fields = ", ".join(f"{f.name}: {_ordered(v)!r}" for f, v in request.ListFields() if f.name != "metadata")
    return f"{type(request).__name__} {{ {fields} }}"


def _ordered(value: Any) -> Any:
    """A protobuf map sorted by key: its own order changes from process to process (Kata's request has the
    environment as a list, in the spec's order), and a span attribute should not."""
    items = getattr(value, "items", None)
    return dict(sorted(items())) if callable(items) and not isinstance(value, (str, bytes)) else value


def _traced(method: str, span_name: str):  # noqa: ANN202
    inner = getattr(MonitorApi, method)

    async def call(self: Agent, request: Any) -> Any:
        parent = propagate.extract(dict(request.metadata))
        with self.agent_tracer.start_as_current_span(span_name, context=parent,
                                                     attributes={"mod": "rpc.rs", "req": _debug(request)},
                                                     record_exception=False, set_status_on_exception=False):
            return await inner(self, request)

    call.__name__ = method
    return call


class Agent(MonitorApi):
    """The monitor's container API with the agent's spans (and none of conmon-rs's)."""

    def __init__(self, runtime_dir: Path, provider: trace.TracerProvider) -> None:
        super().__init__(runtime_dir)
        self.agent_tracer = provider.get_tracer(AGENT_SCOPE)


for _method, _span in AGENT_RPCS.items():
    setattr(Agent, _method, _traced(_method, _span))

# The agent's API over gRPC (conmon.v1 here, where Kata speaks ttrpc).
AgentService = servicer_for(cgrpc.ConmonServicer, Agent, "kata-agent")
