"""pytest fixtures for testing a tracing pipeline with cristack (entry point ``pytest11``).

- ``jaeger``: a real Jaeger v2 for the session (the binary from ``make tools``, or
  ``CRISTACK_JAEGER_BIN``), or an external one from ``CRISTACK_JAEGER_QUERY_URL`` and
  ``CRISTACK_OTLP_ENDPOINT`` (for example one started by ``docker compose up``).
- ``jaeger_factory``: fresh Jaeger instances for tests that stop or restart them.
- ``cri_stack``: a factory that starts fake-conmon, fake-crio and fake-kubelet against an
  endpoint, with options; everything it started is stopped afterwards.
- ``expected_edges``: the table of parent → child edges a pod-start trace must have.

A missing Jaeger binary skips with the reason, or fails when ``CI=true``. Waiting for a trace:
``wait_for_trace(jaeger.query, match=..., runtime_type=...)`` from ``cristack.tracequery``,
which fails with the expected-vs-found edges.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest


def _missing(what: str) -> None:
    msg = f"{what}; run `make tools` (needs Go) or set CRISTACK_JAEGER_BIN / CRISTACK_JAEGER_QUERY_URL"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"CI=true: {msg}")
    pytest.skip(msg)


@pytest.fixture(scope="session")
def jaeger(tmp_path_factory: pytest.TempPathFactory) -> Iterator:
    """A Jaeger for the whole session (started here, or external)."""
    from cristack.jaeger import external_jaeger, jaeger_binary, start_jaeger

    external = external_jaeger()
    if external is not None:
        external.wait_ready()
        yield external
        return
    binary = jaeger_binary()
    if binary is None:
        _missing("the jaeger binary was not found")
    j = start_jaeger(binary, tmp_path_factory.mktemp("jaeger"))
    yield j
    j.stop()


@pytest.fixture
def jaeger_factory(tmp_path: Path) -> Iterator[Callable]:
    """Starts fresh Jaeger instances; ``start(launch=False)`` only reserves ports and config,
    and ``.restart()`` launches it later."""
    from cristack.jaeger import jaeger_binary, start_jaeger

    binary = jaeger_binary()
    if binary is None:
        _missing("the jaeger binary was not found")
    started = []

    def start(wait: bool = True, launch: bool = True):
        j = start_jaeger(binary, tmp_path / f"jaeger{len(started)}", wait=wait, launch=launch)
        started.append(j)
        return j

    yield start
    for j in started:
        j.stop()


@pytest.fixture
def cri_stack(tmp_path: Path) -> Iterator[Callable]:
    """``cri_stack(otlp_endpoint=..., runtime_type="pod", **StackOptions)`` → a started
    ``cristack.stack.Stack`` (sockets: ``.crio_socket``, ``.conmon_socket``; logs:
    ``.logs()``). Add manifests with ``stack.add_manifest(path)`` and start the kubelet with
    ``stack.start_kubelet(runonce=...)``."""
    from cristack.stack import Stack, StackOptions

    stacks = []

    def make(start_runtime: bool = True, **options):
        opts = StackOptions(relist_period="0.2s", backoff_base="1s")
        for key, value in options.items():
            if not hasattr(opts, key):
                raise TypeError(f"cri_stack: unknown option {key!r}")
            setattr(opts, key, value)
        stack = Stack(tmp_path / f"stack{len(stacks)}", opts)
        stacks.append(stack)
        if start_runtime:
            stack.start_runtime()
        return stack

    yield make
    for stack in stacks:
        stack.stop()


@pytest.fixture
def expected_edges():
    """``expected_edges(runtime_type)`` → the list of edges a pod-start trace must contain."""
    from cristack.expectations import expected

    return expected
