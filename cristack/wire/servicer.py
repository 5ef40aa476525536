"""A gRPC servicer that only adapts a plain core: each RPC ``Name`` calls the core's ``name`` (snake case) with
the request and answers what it returns (or, for a server-streaming RPC, what it yields); errors become
statuses through ``serve_errors``; every RPC the core has no method for answers UNIMPLEMENTED naming the
component. The core never sees a gRPC context, so it runs (and is tested) without a server, and calls its own
handlers directly."""

from __future__ import annotations

import inspect
import re
from collections.abc import AsyncIterator
from typing import Any

from cristack.wire.errors import serve_errors

_WORD = re.compile(r"(?<!^)(?=[A-Z])")


def snake(name: str) -> str:
    """``RunPodSandbox`` -> ``run_pod_sandbox``."""
    return _WORD.sub("_", name).lower()


def _unary(method: str) -> Any:
    async def handler(self: Any, request: Any, context: Any) -> Any:
        return await getattr(self.core, method)(request)

    return handler


def _stream(method: str) -> Any:
    async def handler(self: Any, request: Any, context: Any) -> AsyncIterator[Any]:
        async for response in getattr(self.core, method)(request):
            yield response

    return handler


def servicer_for(base: type, core_type: type, component: str) -> type:
    """A subclass of the generated ``base`` (``…Servicer``) whose instances serve ``servicer(core)``."""
    namespace: dict[str, Any] = {}
    for name, _ in inspect.getmembers(base, inspect.isfunction):
        if name.startswith("_"):
            continue
        method = getattr(core_type, snake(name), None)
        if method is None:
            continue
        handler = _stream(snake(name)) if inspect.isasyncgenfunction(method) else _unary(snake(name))
        handler.__name__ = handler.__qualname__ = name
        namespace[name] = handler

    def __init__(self: Any, core: Any) -> None:
        self.core = core

    namespace["__init__"] = __init__
    namespace["__doc__"] = f"{base.__name__} over a {core_type.__name__}: requests in, answers and statuses out."
    return serve_errors(component, base)(type(base.__name__.removesuffix("Servicer"), (base,), namespace))
