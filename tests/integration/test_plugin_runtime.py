"""The pytest plugin on either runtime, as a user's suite uses it (pytest in a subprocess through the installed
plugin): ``--cristack-runtime containerd`` moves ``run_pod`` and ``cri_stack`` to fake-containerd, a test
parametrized over ``cristack_runtime`` runs on each, and a wrong name is a usage error with the closest one."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.integration.test_stack_containerd import SLEEPER

SUITE = '''
import pytest

from cristack.harness.assertions import pod_start, pod_uid, spans_from


@pytest.fixture(scope="module")
def started(run_pod, trace_backend, request):
    uid = run_pod()  # on --cristack-runtime's runtime
    runtime = request.config.getoption("--cristack-runtime") or "crio"
    return runtime, trace_backend.wait_for_trace(pod_start(runtime=runtime), match=pod_uid(uid), timeout=60)


def test_run_pod_runs_on_the_chosen_runtime(started, cristack_runtime):
    runtime, trace = started
    assert cristack_runtime == runtime
    assert runtime in trace.services


@pytest.mark.parametrize("cristack_runtime", ["crio", "containerd"])
def test_cri_stack_runs_on_each(cri_stack, cristack_runtime, trace_backend):
    stack = cri_stack(otlp_endpoint=trace_backend.otlp_endpoint)
    assert stack.opts.runtime == cristack_runtime
    (stack.manifests / "sleeper.yaml").write_text(SLEEPER)
    stack.start_kubelet()
    trace_backend.wait_for_trace(spans_from("kubelet", cristack_runtime), match='span[name="syncPod"]', timeout=60)
'''


def pytest_run(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "test_suite.py").write_text(f"SLEEPER = {SLEEPER!r}\n" + SUITE)
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:randomly",
                           str(tmp_path / "test_suite.py"), *args], cwd=tmp_path, capture_output=True, text=True,
                          timeout=300)


def test_the_runtime_option_moves_the_suite_and_parametrizing_runs_on_each(tmp_path: Path) -> None:
    proc = pytest_run(tmp_path, "--cristack-runtime", "containerd")
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert "3 passed" in proc.stdout, proc.stdout[-2000:]


def test_a_wrong_runtime_is_a_usage_error(tmp_path: Path) -> None:
    proc = pytest_run(tmp_path, "--cristack-runtime", "containred")
    assert proc.returncode == 4, proc.stdout + proc.stderr
    assert "no runtime 'containred'; did you mean containerd?" in proc.stderr, proc.stderr
