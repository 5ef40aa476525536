"""`cristack demo`, `cristack up` and `cristack sink` as a user runs them."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from cristack.harness import expectations
from cristack.harness.assertions import POD_START_SYNC, spans_from
from cristack.harness.backends import JaegerBackend
from cristack.harness.procs import component_argv
from cristack.harness.sink.store import flatten
from cristack.harness.tracequery import JaegerQuery
from cristack.otel import otlpjson
from tests.conftest import IN_CI, free_port


def run(*args: str, timeout: float = 90, env: dict | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(component_argv("cristack", *args), capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})


def test_demo_prints_output_tree_and_writes_json_and_html(tmp_path: Path) -> None:
    out_json, out_html = tmp_path / "out.json", tmp_path / "out.html"
    # How long it takes is a figure, not a test: `make bench` measures the demo's wall time (docs/benchmarks.md).
    proc = run("demo", "--json", str(out_json), "--html", str(out_html))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "[hello/hello] hi" in proc.stdout
    assert "[hello/hello-tty] hi from a terminal\n" in proc.stdout, "a tty's carriage return is not printed"
    assert "fork_posix" not in proc.stdout + proc.stderr, "no gRPC fork warnings from starting the components"
    tree = proc.stdout.split("traces", 1)[1]
    for service, name in (("kubelet", "syncPod"), ("crio", "runtime.v1.RuntimeService/RunPodSandbox"),
                          ("conmonrs", "create_container"), ("conmonrs", "wait_for_exit_code"),
                          ("conmonrs", "stdout"), ("conmonrs", "read_loop")):
        assert any(line.startswith(service) and name in line for line in tree.splitlines()), (service, name)
    assert "Exited 0" in tree and "Running pod sandbox: default/hello/POD" in tree
    assert "PLEG relist" in proc.stdout, "relists are summarised in one line"
    assert "\x1b[" not in proc.stdout, "no colour codes when stdout is not a terminal"

    request = otlpjson.loads(out_json.read_text())
    doc = json.loads(out_json.read_text())
    assert list(doc) == ["resourceSpans"]
    first = doc["resourceSpans"][0]["scopeSpans"][0]["spans"][0]
    assert re.fullmatch(r"[0-9a-f]{32}", first["traceId"]) and re.fullmatch(r"[0-9a-f]{16}", first["spanId"]), \
        "OTLP/JSON ids are hex"
    assert isinstance(first["kind"], int), "OTLP/JSON enums are integers"
    spans = flatten(request)
    sync = next(s for s in spans if s.name == "syncPod" and s.attributes.get("k8s.pod.update_type") == "create")
    trace = [s for s in spans if s.trace_id == sync.trace_id]
    assert all(ok for _, ok in expectations.check(trace, "pod")), expectations.diff(trace, "pod")

    page = out_html.read_text()
    assert page.startswith("<!doctype html>")
    assert "http://" not in page and "https://" not in page and "<script" not in page, "self-contained"
    assert "wait_for_exit_code" in page and "syncPod default/hello" in page


def test_demo_failed_pod_exits_nonzero_with_the_reason(tmp_path: Path) -> None:
    pod = tmp_path / "fail.yaml"
    pod.write_text("apiVersion: v1\nkind: Pod\nmetadata: {name: fail}\nspec:\n  restartPolicy: Never\n"
                   "  containers: [{name: c, image: busybox, command: [sh, -c, 'echo bye; exit 3']}]\n")
    proc = run("demo", "--pod", str(pod), "--runtime-type", "oci", "--quiet")
    assert proc.returncode == 1
    assert "[fail/c] bye" in proc.stdout
    assert "a pod failed" in proc.stderr, proc.stderr
    assert "default/fail: Failed, Error: container c exited with code 3 (last sync: trace " in proc.stderr
    assert run("demo", "--pod", str(tmp_path / "missing.yaml")).returncode == 2


def test_demo_oci_tree_has_no_conmonrs(tmp_path: Path) -> None:
    proc = run("demo", "--runtime-type", "oci")
    assert proc.returncode == 0, proc.stderr
    assert "conmonrs" not in proc.stdout.split("traces", 1)[1]


def chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if path is None:
        msg = "Chromium not installed (Debian package chromium; .ci/run installs it)"
        if IN_CI:
            pytest.fail(f"CI=true: {msg}")
        pytest.skip(msg)
    return path


def test_html_renders_in_headless_chromium(tmp_path: Path) -> None:
    browser = chromium()
    page = tmp_path / "out.html"
    assert run("demo", "--quiet", "--html", str(page)).returncode == 0
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={tmp_path / 'profile'}"]
    shot = tmp_path / "shot.png"
    subprocess.run([browser, *flags, f"--screenshot={shot}", "--window-size=1400,1000", page.as_uri()],
                   capture_output=True, timeout=60)
    assert shot.exists() and shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 10_000
    dom = subprocess.run([browser, *flags, "--dump-dom", page.as_uri()], capture_output=True, text=True,
                         timeout=60).stdout
    for name in ("syncPod", "runtime.v1.RuntimeService/RunPodSandbox", "create_container", "read_loop"):
        assert name in dom
    shutil.copyfile(shot, Path(os.environ.get("CRISTACK_ARTIFACTS", tmp_path)) / "demo-waterfall.png")


def test_up_runs_until_interrupted_and_traces_dropped_manifests(tmp_path: Path) -> None:
    manifests = tmp_path / "manifests"
    http_port = free_port()
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    proc = subprocess.Popen(component_argv("cristack", "up", "--manifests", str(manifests), "--http-port",
                                           str(http_port), "--jaeger-ui", "http://ui:16686"),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
                            env={**os.environ, "TRACEPARENT": f"00-{trace_id}-00f067aa0ba902b7-01"})
    try:
        query = JaegerQuery(f"http://127.0.0.1:{http_port}")
        deadline = time.monotonic() + 20
        while not query.ready() and time.monotonic() < deadline:
            time.sleep(0.1)
        (manifests / "hello.yaml").write_text(
            Path(__file__).resolve().parents[2].joinpath("examples/pods/hello.yaml").read_text())
        trace = JaegerBackend.kubelet_syncs(query.base_url).wait_for_trace(
            spans_from("kubelet", "crio", "conmonrs"), match=POD_START_SYNC, timeout=30)
        assert trace[0].trace_id == trace_id, "the pod's start is a child of TRACEPARENT"
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        out, _ = proc.communicate(timeout=15)
    assert proc.returncode == 0, out
    assert "drop pod manifests into" in out and "stopped" in out
    assert f"default/hello start: {trace_id}  http://ui:16686/trace/{trace_id}" in out


def test_sink_command_receives_and_answers_queries(tmp_path: Path) -> None:
    grpc_port, http_port = free_port(), free_port()
    jsonl = tmp_path / "spans.jsonl"
    proc = subprocess.Popen(component_argv("cristack", "sink", "--grpc", f"127.0.0.1:{grpc_port}", "--http",
                                           f"127.0.0.1:{http_port}", "--jsonl", str(jsonl), "--max-spans", "1"),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        query = JaegerQuery(f"http://127.0.0.1:{http_port}")
        deadline = time.monotonic() + 20
        while not query.ready() and time.monotonic() < deadline:
            time.sleep(0.1)
        from cristack.otel.sampler import TracingSettings
        from cristack.otel.telemetry import Telemetry

        tel = Telemetry("probe", TracingSettings(True, f"127.0.0.1:{grpc_port}", 1_000_000))
        for name in ("old-span", "hello-span"):  # two traces; --max-spans 1 keeps the newer
            with tel.tracer("t").start_as_current_span(name):
                pass
        tel.shutdown(3)
        deadline = time.monotonic() + 10
        while "hello-span" not in jsonl.read_text() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert query.services() == ["probe"]
        assert [s.name for t in query.traces("probe") for s in t] == ["hello-span"]
        assert "hello-span" in jsonl.read_text()
        with urllib.request.urlopen(f"http://127.0.0.1:{http_port}/", timeout=5) as page:
            assert page.headers["Content-Type"].startswith("text/html") and b"cristack traces" in page.read()
        assert "old-span" in jsonl.read_text(), "the --jsonl file keeps everything"
        with urllib.request.urlopen(f"http://127.0.0.1:{http_port}/api/sink/stats", timeout=5) as resp:
            stats = json.load(resp)
        assert (stats["spans"], stats["dropped_spans"], stats["max_spans"]) == (1, 1, 1)
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=10)
    assert proc.returncode == 0, out
    assert f"live view on http://127.0.0.1:{http_port}/" in out


def test_demo_sends_to_an_external_endpoint(tmp_path: Path, sink) -> None:
    proc = run("demo", "--otlp-endpoint", sink.addresses.otlp_endpoint, "--quiet")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    start = next(line for line in lines if line.strip().startswith("default/hello start: ")).split()[-1]
    assert len(start) == 32 and any(line.strip().startswith("other syncs") for line in lines), proc.stdout

    def is_start(st) -> bool:  # noqa: ANN001
        return any(s.name == "syncPod" and s.attributes.get("k8s.pod.update_type") == "create"
                   for s in st.trace(start))

    assert sink.store.wait(is_start, 10), "the first id listed is the pod's start trace"


def test_demo_rejects_bad_arguments() -> None:
    proc = run("demo", "--otlp-endpoint", "not an endpoint")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr


def test_demo_keep_then_sigterm_stops_everything_it_started():
    proc = subprocess.Popen(component_argv("cristack", "demo", "--keep", "--quiet"), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    base = None
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and base is None:
        line = proc.stdout.readline()
        if "keeps running in" in line:
            base = line.split("keeps running in", 1)[1].split()[0]
    assert base, "the demo said where its stack runs"
    assert subprocess.run(["pgrep", "-f", base], capture_output=True).stdout.split(), "components are running"
    proc.send_signal(signal.SIGTERM)
    proc.wait(15)
    deadline = time.monotonic() + 5
    while subprocess.run(["pgrep", "-f", base], capture_output=True).stdout and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not subprocess.run(["pgrep", "-f", base], capture_output=True).stdout, "nothing left running"


def test_a_pod_the_kubelet_rejects_fails_the_demo_with_the_reason(tmp_path: Path) -> None:
    pod = tmp_path / "typo.yaml"
    pod.write_text("apiVersion: v1\nkind: Pod\nmetadata: {name: typo}\nspec:\n  containers:\n"
                   "  - {name: main, image: busybox, comand: [echo, hi]}\n")
    proc = run("demo", "--pod", str(pod))
    assert proc.returncode == 1
    assert "comand: unknown field in Container; did you mean command?" in proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr


def test_a_dead_otlp_endpoint_is_reported_and_fails_the_demo() -> None:
    dead = f"127.0.0.1:{free_port()}"
    proc = run("demo", "--quiet", "--otlp-endpoint", dead)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert f"cristack demo: nothing was accepted at {dead}" in proc.stderr
    assert "traces sent to" not in proc.stdout
    allowed = run("demo", "--quiet", "--otlp-endpoint", dead, "--allow-export-failure")
    assert allowed.returncode == 0 and "nothing was accepted" in allowed.stderr


def test_a_folder_named_cristack_in_the_working_directory_shadows_nothing(tmp_path: Path) -> None:
    """Run from the parent of a clone named cristack (or any folder holding one): python -c / -m would import it
    instead of the installed package."""
    (tmp_path / "cristack").mkdir()
    (tmp_path / "cristack" / "__init__.py").write_text("raise ImportError('the wrong cristack')\n")
    proc = subprocess.run(component_argv("cristack", "demo", "--quiet"), capture_output=True, text=True, timeout=90,
                          cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "[hello/hello] hi" in proc.stdout and "wrong cristack" not in proc.stderr
