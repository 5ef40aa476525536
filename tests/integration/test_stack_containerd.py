"""A node whose runtime is fake-containerd (``StackOptions(runtime="containerd")``): its config, its trace, and
that nothing of it runs on after a stop, however its containerd ended. containerd's shims do not die with
containerd (the shim's start command leaves the serving process to PID 1, and the real containerd keeps its shims
across its own restarts); the harness asks fake-containerd for a lifeline (``[cristack] shim_lifeline``), so its
shims end with it even when it is SIGKILLed, and ``Stack.stop`` waits until they have."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cristack.harness import podevents
from cristack.harness.assertions import pod_start
from cristack.harness.nodeplan import check_runtime
from cristack.harness.procs import processes_under, stop_strays
from cristack.harness.sink.store import SpanStore
from cristack.harness.stack import Stack, StackOptions
from fake_containerd import config as ctd_config
from fake_containerd.daemon import shim_socket_dir
from fake_containerd.runtime.shim import SHIM_MODULE
from tests.conftest import stack_options

SLEEPER = "apiVersion: v1\nkind: Pod\nmetadata: {name: sleeper, uid: 0f7c2d1e-0000-4000-8000-000000000001}\n" \
          "spec:\n  containers: [{name: c, image: busybox, imagePullPolicy: IfNotPresent,\n" \
          "                command: [sleep, infinity]}]\n"


def wait_until(check, what: str, timeout: float = 60.0):  # noqa: ANN001, ANN201 - a condition and its value
    """``check()`` once it is truthy; a failure naming ``what`` at the deadline (a cap on a wait, not a timing)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := check():
            return value
        time.sleep(0.05)
    raise AssertionError(f"not within {timeout}s: {what}")


def started(stack: Stack, container: str) -> bool:
    try:
        lines = stack.events_file.read_text().splitlines()
    except FileNotFoundError:
        return False
    return any(ev is not None and ev.reason == "Started" and ev.container == container
               for ev in map(podevents.parse, lines))


def running_sleeper(make_stack, **options) -> Stack:  # noqa: ANN001 - the conftest factory
    stack = make_stack(runtime="containerd", pod_events=True, **options)
    (stack.manifests / "sleeper.yaml").write_text(SLEEPER)
    stack.start()
    wait_until(lambda: started(stack, "c"), "the sleeper's container started")
    assert len(processes_under(stack.base, SHIM_MODULE)) == 1, "one shim for the one pod"
    return stack


def test_the_node_config_is_containerds_own_format_with_this_runs_paths(tmp_path: Path) -> None:
    stack = Stack(tmp_path, stack_options(runtime="containerd", pod_cidr="10.244.3.0/24", log_level="debug"))
    cfg = ctd_config.load(["--config", str(stack.containerd_config())])
    assert cfg.address.path == stack.containerd_socket and stack.cri_endpoint == f"unix://{stack.containerd_socket}"
    assert cfg.ttrpc_address == Path(f"{stack.containerd_socket}.ttrpc")
    assert cfg.root.is_relative_to(tmp_path) and cfg.state.is_relative_to(tmp_path)
    assert cfg.log_level_name == "debug" and cfg.shim_lifeline and cfg.pod_logs_root == stack.pod_logs
    assert cfg.cni_conf_dir.is_relative_to(tmp_path), "the node's pod CIDR through its own CNI config"
    conflist = next(cfg.cni_conf_dir.glob("*.conflist")).read_text()
    assert "10.244.3.0/24" in conflist and "containerd-net" in conflist
    assert stack.kubelet_config().read_text().count(f"containerRuntimeEndpoint: {stack.cri_endpoint}") == 1
    env = stack.containerd_env()
    assert env["OTEL_EXPORTER_OTLP_ENDPOINT"] == "", "no tracing without an endpoint, whatever the shell says"


def test_a_runtime_name_is_checked_with_a_suggestion() -> None:
    assert check_runtime("containerd") == "containerd"
    with pytest.raises(ValueError, match="did you mean containerd"):
        check_runtime("containred")
    with pytest.raises(ValueError, match="did you mean crio"):
        Stack(Path("/nonexistent"), StackOptions(runtime="cri-o"))


def test_a_pod_start_trace_crosses_kubelet_containerd_and_the_shim(make_stack, sink) -> None:
    store: SpanStore = sink.store
    stack = make_stack(runtime="containerd", otlp_endpoint=sink.addresses.otlp_endpoint)
    (stack.manifests / "sleeper.yaml").write_text(SLEEPER)
    stack.start()
    shape = pod_start("containerd")
    store.wait(lambda st: any(not shape.missing(st.trace(t)) for t in st.trace_ids()), 60)
    trace = next(st for st in map(store.trace, store.trace_ids()) if not shape.missing(st))
    services = {s.service for s in trace}
    shim = [s for s in services if s.startswith("containerd-shim-")]
    assert {"kubelet", "containerd"} <= services and len(shim) == 1, services
    by_id = {s.span_id: s for s in trace}
    # The shim's SERVER spans are children of containerd's otelttrpc CLIENT spans of the same name.
    for span in (s for s in trace if s.service == shim[0]):
        parent = by_id[span.parent_span_id]
        assert (parent.service, parent.kind, parent.name) == ("containerd", "CLIENT", span.name), span.name


def test_the_shims_count_what_they_export_as_the_components_do(make_stack, sink) -> None:
    """Each shim keeps its export counts in a file beside containerd's (``cristack load`` adds them up); once the
    node has stopped (every exporter flushed), the shims' exported total is what reached the sink from them."""
    stack = running_sleeper(make_stack, otlp_endpoint=sink.addresses.otlp_endpoint, telemetry_stats=True)
    stack.stop()
    stats = stack.export_stats()
    assert {"kubelet", "containerd", "shims"} <= set(stats), stats
    received = sum(1 for s in sink.store.spans() if s.service.startswith("containerd-shim-"))
    assert received > 0 and stats["shims"].exported == received, (stats["shims"], received)
    assert stats["shims"].lost == 0 and stats["containerd"].exported > 0


def test_a_stop_leaves_no_shim_and_no_container(make_stack) -> None:
    stack = running_sleeper(make_stack)
    sockets = shim_socket_dir(ctd_config.load(["--config", str(stack.base / "containerd.toml")]).state)
    assert any(sockets.iterdir()), "the shim's socket is there while it runs"
    stack.stop()
    assert processes_under(stack.base) == [], "nothing of the node runs after its stop"
    assert not sockets.exists(), "nor its socket directory (outside the node's own, when that is too long)"


def test_containerds_sigterm_stops_its_shims_without_a_sigkill(make_stack) -> None:
    """A running container holds a Wait call open in its shim; told to stop, the shim drops it rather than wait for
    the container, so containerd never needs its SIGKILL (which would take its grace, 3 s: docker compose's
    stop_grace_period for the whole container)."""
    stack = running_sleeper(make_stack)
    assert stack.containerd is not None
    stack.containerd.stop()
    assert "fake-containerd stopping" in stack.containerd.log_text()
    assert "killing it" not in stack.containerd.log_text()
    assert processes_under(stack.base, SHIM_MODULE) == []
    stack.stop()


def test_the_shims_of_a_sigkilled_containerd_end_by_themselves(make_stack) -> None:
    """Without the lifeline the shim would run on under PID 1, its container with it, for ever."""
    stack = running_sleeper(make_stack)
    assert stack.containerd is not None
    stack.containerd.kill()
    wait_until(lambda: not processes_under(stack.base, SHIM_MODULE), "the shim ended after containerd's SIGKILL")
    assert "containerd is gone" in next(stack.base.rglob("shim.log")).read_text()
    stack.stop()
    assert processes_under(stack.base) == []


def test_a_stop_after_containerd_was_sigkilled_returns_once_the_shims_are_gone(make_stack) -> None:
    stack = running_sleeper(make_stack)
    assert stack.containerd is not None
    stack.containerd.kill()
    stack.stop()  # the shim may be on its way out (its lifeline) or gone already: either way, stop waits
    assert processes_under(stack.base) == [], "stop waited for the shim"


def test_strays_are_waited_for_then_killed(tmp_path: Path) -> None:
    """Stack.stop's last step, alone: a shim-like process that ignores SIGTERM (nothing told it to stop: no
    lifeline), working in the node's directory, and one elsewhere that must be left alone."""
    bundle, elsewhere = tmp_path / "state" / "bundle", tmp_path.parent / f"{tmp_path.name}-elsewhere"
    bundle.mkdir(parents=True)
    elsewhere.mkdir()
    code = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(600)"
    stray = subprocess.Popen([sys.executable, "-c", code, "fake-shim-marker"], cwd=bundle)
    bystander = subprocess.Popen([sys.executable, "-c", code, "fake-shim-marker"], cwd=elsewhere)
    try:
        wait_until(lambda: processes_under(tmp_path, "fake-shim-marker"), "the stray runs")
        assert stop_strays(tmp_path, "fake-shim-marker", grace=0.5) == [stray.pid]
        assert stray.wait(10) == -signal.SIGKILL, "SIGKILLed after the grace"
        assert processes_under(tmp_path) == [] and bystander.poll() is None
    finally:
        for proc in (stray, bystander):
            proc.kill()
            proc.wait()
