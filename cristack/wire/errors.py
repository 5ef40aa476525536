"""Errors a user can cause, and how each reaches them.

gRPC handlers raise the ``RpcError`` subclasses; ``serve_errors`` turns them into a status
with a message. Configuration mistakes raise ``ConfigError``, which the entry points print
as one line naming the file and key and turn into exit status 2.
"""

from __future__ import annotations

import asyncio
import errno
import functools
import inspect
import logging
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import grpc

from cristack.wording import cut

log = logging.getLogger(__name__)

EXIT_CONFIG = 2


class ConfigError(Exception):
    """A bad configuration file, key or flag."""

    def __init__(self, source: str, key: str, message: str) -> None:
        super().__init__(f"{source}: {key}: {message}" if key else f"{source}: {message}")
        self.source = source
        self.key = key


class RpcError(Exception):
    """An error answered to a gRPC caller with ``code`` and the exception's message."""

    code = grpc.StatusCode.INTERNAL


class NotFound(RpcError):
    code = grpc.StatusCode.NOT_FOUND


class AlreadyExists(RpcError):
    code = grpc.StatusCode.ALREADY_EXISTS


class InvalidArgument(RpcError):
    code = grpc.StatusCode.INVALID_ARGUMENT


class FailedPrecondition(RpcError):
    code = grpc.StatusCode.FAILED_PRECONDITION


class ResourceExhausted(RpcError):
    code = grpc.StatusCode.RESOURCE_EXHAUSTED


class Unavailable(RpcError):
    code = grpc.StatusCode.UNAVAILABLE


class DeadlineExceeded(RpcError):
    code = grpc.StatusCode.DEADLINE_EXCEEDED


class Internal(RpcError):
    code = grpc.StatusCode.INTERNAL


OS_ERROR_CODES = {
    errno.ENOSPC: grpc.StatusCode.RESOURCE_EXHAUSTED,
    errno.EDQUOT: grpc.StatusCode.RESOURCE_EXHAUSTED,
    errno.EMFILE: grpc.StatusCode.RESOURCE_EXHAUSTED,
    errno.ENFILE: grpc.StatusCode.RESOURCE_EXHAUSTED,
    errno.EROFS: grpc.StatusCode.FAILED_PRECONDITION,
    errno.EACCES: grpc.StatusCode.FAILED_PRECONDITION,
    errno.EPERM: grpc.StatusCode.FAILED_PRECONDITION,
    errno.ENAMETOOLONG: grpc.StatusCode.INVALID_ARGUMENT,
}

T = TypeVar("T")

# A status message travels in the grpc-message trailer, percent-encoded; a client refuses trailers over 16 KiB
# ("received metadata size exceeds hard limit") and may drop those over 8 KiB, so an error that echoed a 1 MB
# request field reached its caller as RESOURCE_EXHAUSTED "Stream removed" instead of its own code and reason.
MAX_STATUS_MESSAGE = 1024


def status_message(text: str) -> str:
    """``text`` fit for a status: cut (with its length) so that even percent-encoded it stays under 8 KiB."""
    limit = MAX_STATUS_MESSAGE
    out = cut(text, limit)
    while len(out.encode()) * 3 > 7000 and limit > 64:
        limit //= 2
        out = cut(text, limit)
    return out


def _wrap(name: str, fn: Callable[..., Any], component: str) -> Callable[..., Any]:
    if inspect.isasyncgenfunction(fn):
        return _wrap_stream(name, fn, component)

    @functools.wraps(fn)
    async def handler(self: Any, request: Any, context: grpc.aio.ServicerContext) -> Any:
        try:
            return await fn(self, request, context)
        except RpcError as err:
            await context.abort(err.code, status_message(str(err)))
        except OSError as err:
            # Disk full, read-only state dir, vanished files: the caller gets the reason and a
            # code that says whose problem it is.
            log.error("%s %s failed: %s", component, name, err)
            code = OS_ERROR_CODES.get(err.errno or 0, grpc.StatusCode.INTERNAL)
            await context.abort(code, status_message(f"{name}: {err.strerror or err}"))
        except grpc.aio.AbortError:
            raise
        except Exception as err:  # a bug of ours: log it fully, answer without a traceback
            log.exception("%s %s failed unexpectedly", component, name)
            await context.abort(grpc.StatusCode.INTERNAL,
                                status_message(f"{name}: internal error: {type(err).__name__}: {err}"))

    return handler


def _wrap_stream(name: str, fn: Callable[..., Any], component: str) -> Callable[..., Any]:
    """The same mapping for a server-streaming handler (an async generator)."""

    @functools.wraps(fn)
    async def handler(self: Any, request: Any, context: grpc.aio.ServicerContext) -> Any:
        try:
            async for response in fn(self, request, context):
                yield response
        except RpcError as err:
            await context.abort(err.code, status_message(str(err)))
        except OSError as err:
            log.error("%s %s failed: %s", component, name, err)
            await context.abort(OS_ERROR_CODES.get(err.errno or 0, grpc.StatusCode.INTERNAL),
                                status_message(f"{name}: {err.strerror or err}"))
        except (grpc.aio.AbortError, asyncio.CancelledError, GeneratorExit):
            raise
        except Exception as err:  # a bug of ours: log it fully, answer without a traceback
            log.exception("%s %s failed unexpectedly", component, name)
            await context.abort(grpc.StatusCode.INTERNAL,
                                status_message(f"{name}: internal error: {type(err).__name__}: {err}"))

    return handler


def _unimplemented(name: str, component: str) -> Callable[..., Any]:
    async def handler(self: Any, request: Any, context: grpc.aio.ServicerContext) -> Any:
        await context.abort(grpc.StatusCode.UNIMPLEMENTED, f"{component} does not implement {name}")

    handler.__name__ = name
    return handler


def serve_errors(component: str, *bases: type) -> Callable[[type[T]], type[T]]:
    """Class decorator for servicers: maps raised errors to statuses, fills in UNIMPLEMENTED.

    ``bases`` are the generated ``*Servicer`` classes whose methods the class serves; every
    method the class does not define answers UNIMPLEMENTED naming the component and method.
    """

    def decorate(cls: type[T]) -> type[T]:
        for base in bases:
            for name, _ in inspect.getmembers(base, inspect.isfunction):
                if name.startswith("_"):
                    continue
                # The class's own method or one it inherits from a library base (the monitor API); the
                # generated base's own stub only raises UNIMPLEMENTED without naming us.
                own = getattr(cls, name)
                if own is getattr(base, name):
                    setattr(cls, name, _unimplemented(name, component))
                else:
                    setattr(cls, name, _wrap(name, own, component))
        return cls

    return decorate


def exit_config_error(prog: str, err: ConfigError) -> None:
    """Prints a config error the way our CLIs do and exits with status 2."""
    print(f"{prog}: config error: {err}", file=sys.stderr)
    sys.exit(EXIT_CONFIG)
