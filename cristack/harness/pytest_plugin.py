"""pytest fixtures for testing a tracing pipeline with cristack (entry point ``pytest11``).

- ``jaeger``: a real Jaeger v2 for the session (the binary from ``make tools``, or
  ``CRISTACK_JAEGER_BIN``), or an external one from ``CRISTACK_JAEGER_QUERY_URL`` and
  ``CRISTACK_OTLP_ENDPOINT`` (for example one started by ``docker compose up``).
- ``jaeger_factory``: fresh Jaeger instances for tests that stop or restart them.
- ``cristack_runtime``: the CRI runtime the stacks below run: ``crio`` (fake-crio, fake-conmon; the default) or
  ``containerd`` (fake-containerd and a shim per pod), chosen by ``--cristack-runtime`` or ``CRISTACK_RUNTIME``;
  a test parametrized over ``cristack_runtime`` (``@pytest.mark.parametrize("cristack_runtime", RUNTIMES)``) runs
  once on each.
- ``cri_stack``: a factory that starts a node (fake-kubelet and the runtime) against an endpoint, with options;
  everything it started is stopped afterwards.
- ``expected_edges``: the table of parent → child edges a pod-start trace must have.
- ``trace_backend``: where assertions read traces (``cristack.harness.backends``), chosen by
  ``--trace-backend sink|jaeger|file`` or ``CRISTACK_TRACE_BACKEND`` (default ``sink``); for ``file``,
  ``--trace-file``/``CRISTACK_TRACE_FILE`` names the Collector's file export and
  ``--trace-otlp-endpoint``/``CRISTACK_OTLP_ENDPOINT`` the Collector that writes it (without one, an
  embedded sink stands in for the Collector and writes the file as its ``file`` exporter does).
- ``run_pod``: ``run_pod(manifest, runtime_type="pod", runtime=None)`` runs one pod through a fresh stack that
  sends to ``trace_backend`` and returns the pod's uid (module-scoped, so a module can share one run); the runtime
  is ``--cristack-runtime``'s unless given.
- ``assert_matches_snapshot``: ``assert_matches_snapshot(trace, path)`` compares a trace with a golden
  snapshot (``cristack.harness.snapshots``); ``--snapshot-update`` (or ``CRISTACK_SNAPSHOT_UPDATE=1``) rewrites it.

A missing Jaeger binary skips with the reason, or fails when ``CI=true``. Waiting for a trace:
``trace_backend.wait_for_trace(pod_start(runtime_type, runtime=...), match=pod_uid(uid))`` from
``cristack.harness.assertions``, which fails with what was still missing.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from cristack.harness.nodeplan import RUNTIMES, check_runtime

BACKENDS = ("sink", "jaeger", "file")


def _runtime_option(text: str) -> str:
    import argparse

    try:
        return check_runtime(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("cristack", "cristack trace assertions")
    group.addoption("--cristack-runtime", type=_runtime_option, default=None, metavar="NAME",
                    help="the CRI runtime cri_stack and run_pod start: crio (default) or containerd "
                         "(default: $CRISTACK_RUNTIME or crio)")
    group.addoption("--trace-backend", choices=BACKENDS, default=None,
                    help="where trace assertions read traces (default: $CRISTACK_TRACE_BACKEND or sink)")
    group.addoption("--trace-file", default=None, metavar="PATH",
                    help="with --trace-backend file: the Collector file exporter's JSON lines")
    group.addoption("--trace-otlp-endpoint", default=None, metavar="HOST:PORT",
                    help="with --trace-backend file: the Collector that writes the file")
    try:
        group.addoption("--snapshot-update", action="store_true", default=False,
                        help="rewrite golden trace snapshots instead of comparing with them")
    except ValueError:  # another snapshot plugin (syrupy) owns the name
        group.addoption("--cristack-snapshot-update", action="store_true", default=False, dest="snapshot_update",
                        help="rewrite golden trace snapshots instead of comparing with them")


def _option(config: pytest.Config, name: str, env: str) -> str | None:
    return config.getoption(name) or os.environ.get(env) or None


def _missing(what: str) -> None:
    msg = f"{what}; run `make tools` (needs Go) or set CRISTACK_JAEGER_BIN / CRISTACK_JAEGER_QUERY_URL"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"CI=true: {msg}")
    pytest.skip(msg)


@pytest.fixture(scope="session")
def jaeger(tmp_path_factory: pytest.TempPathFactory) -> Iterator:
    """A Jaeger for the whole session (started here, or external)."""
    from cristack.harness.jaeger import external_jaeger, jaeger_binary, start_jaeger

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
    from cristack.harness.jaeger import jaeger_binary, start_jaeger

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


@pytest.fixture(scope="session")
def cristack_runtime(request: pytest.FixtureRequest) -> str:
    """The runtime ``cri_stack`` and ``run_pod`` start: ``--cristack-runtime``, ``$CRISTACK_RUNTIME``, or crio.
    Parametrize a test over it to run it on both: ``@pytest.mark.parametrize("cristack_runtime", RUNTIMES)``."""
    return _chosen_runtime(request.config)


def _chosen_runtime(config: pytest.Config) -> str:
    chosen = _option(config, "--cristack-runtime", "CRISTACK_RUNTIME") or "crio"
    if chosen not in RUNTIMES:
        raise pytest.UsageError(f"CRISTACK_RUNTIME={chosen!r}: use one of {', '.join(RUNTIMES)}")
    return chosen


@pytest.fixture
def cri_stack(tmp_path: Path, cristack_runtime: str) -> Iterator[Callable]:
    """``cri_stack(otlp_endpoint=..., runtime_type="pod", **StackOptions)`` → a started
    ``cristack.harness.stack.Stack`` on ``cristack_runtime`` unless ``runtime=`` says otherwise (its CRI socket:
    ``.cri_socket``; logs: ``.logs()``). Add manifests with ``stack.add_manifest(path)`` and start the kubelet
    with ``stack.start_kubelet(runonce=...)``."""
    from cristack.harness.stack import Stack, StackOptions

    stacks = []

    def make(start_runtime: bool = True, **options):
        opts = StackOptions(runtime=cristack_runtime, relist_period="0.2s", backoff_base="1s")
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
    """``expected_edges(runtime_type)`` → the list of edges a pod-start trace must contain (``"containerd"`` for
    fake-containerd's)."""
    from cristack.harness.expectations import expected

    return expected


@pytest.fixture(scope="session")
def trace_backend(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator:
    """The backend assertions read (``cristack.harness.backends.Backend``), with ``.otlp_endpoint`` to send to."""
    from cristack.harness.backends import FileBackend, FileExportWriter, JaegerBackend, SinkBackend
    from cristack.harness.sink.receiver import Sink
    from cristack.harness.sink.store import SpanStore

    kind = _option(request.config, "--trace-backend", "CRISTACK_TRACE_BACKEND") or "sink"
    if kind not in BACKENDS:
        raise pytest.UsageError(f"CRISTACK_TRACE_BACKEND={kind!r}: use one of {', '.join(BACKENDS)}")
    if kind == "jaeger":
        j = request.getfixturevalue("jaeger")
        yield JaegerBackend(j.query_url, otlp_endpoint=j.otlp_endpoint)
        return
    if kind == "file":
        path = _option(request.config, "--trace-file", "CRISTACK_TRACE_FILE")
        endpoint = _option(request.config, "--trace-otlp-endpoint", "CRISTACK_OTLP_ENDPOINT")
        if endpoint is not None:
            if path is None:
                raise pytest.UsageError("--trace-backend file with a Collector endpoint needs --trace-file PATH")
            yield FileBackend(Path(path), otlp_endpoint=endpoint)
            return
        # No Collector: an embedded sink stands in for one, writing what it receives as the
        # Collector's file exporter would; assertions read only the file.
        file = Path(path) if path else tmp_path_factory.mktemp("file-export") / "traces.jsonl"
        writer = FileExportWriter(file)

        class _FileStore(SpanStore):
            def take(self, request) -> int:  # noqa: ANN001 - a checked intake.Request, as the receivers hand it over
                writer.write(request.message())
                return request.count

        sink = Sink(_FileStore())
        yield FileBackend(file, otlp_endpoint=sink.start().otlp_endpoint)
        sink.stop()
        return
    sink = Sink()
    addrs = sink.start()
    yield SinkBackend(sink.store, otlp_endpoint=addrs.otlp_endpoint)
    sink.stop()


@pytest.fixture(scope="module")
def run_pod(trace_backend, tmp_path_factory: pytest.TempPathFactory,
            request: pytest.FixtureRequest) -> Iterator[Callable]:
    """``run_pod(manifest=None, runtime_type="pod", timeout=60, runtime=None, **StackOptions) -> uid``: one pod
    (default the shipped hello pod) through a fresh stack sending to ``trace_backend``, on ``runtime`` (default
    ``--cristack-runtime``'s); the kubelet runs once and the stack is stopped (so every span is flushed) before it
    returns."""
    from cristack.harness.stack import Stack, StackOptions, example

    default = _chosen_runtime(request.config)

    def run(manifest: Path | None = None, runtime_type: str = "pod", timeout: float = 60.0, runtime: str | None = None,
            **options) -> str:
        if trace_backend.otlp_endpoint is None:
            raise pytest.UsageError(f"{trace_backend}: no OTLP endpoint to send the stack's spans to")
        opts = StackOptions(runtime=runtime or default, runtime_type=runtime_type,
                            otlp_endpoint=trace_backend.otlp_endpoint, relist_period="0.2s", pull_latency_ms=1)
        for key, value in options.items():
            if not hasattr(opts, key):
                raise TypeError(f"run_pod: unknown option {key!r}")
            setattr(opts, key, value)
        stack = Stack(tmp_path_factory.mktemp("pod"), opts)
        uid = stack.add_unique_manifest(Path(manifest) if manifest else example("pods", "hello.yaml"))
        try:
            stack.start_runtime()
            rc = stack.start_kubelet(runonce=True).popen.wait(timeout)
        finally:
            stack.stop()
        if rc != 0:
            pytest.fail(f"run_pod: fake-kubelet --runonce exited {rc}:\n{stack.logs().get('kubelet', '')[-2000:]}")
        return uid

    return run


@pytest.fixture
def assert_matches_snapshot(request: pytest.FixtureRequest) -> Callable:
    """``assert_matches_snapshot(trace, path)``: the normalised trace equals the snapshot at ``path``
    (a missing snapshot fails, naming the option that writes it); with ``--snapshot-update`` it is written."""
    from cristack.harness.snapshots import assert_matches_snapshot as check

    update = bool(request.config.getoption("snapshot_update", default=False)) or \
        os.environ.get("CRISTACK_SNAPSHOT_UPDATE", "") not in ("", "0")

    def run(trace, path) -> None:  # noqa: ANN001 - a Trace or spans, a path
        check(trace, Path(path), update=update)

    return run
