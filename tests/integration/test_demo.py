"""`cristack demo` as a user runs it."""

from __future__ import annotations

import subprocess

from cristack.procs import component_argv


def test_demo_prints_hi_and_exits_0():
    proc = subprocess.run(component_argv("cristack", "demo"), capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "[hello/hello] hi" in proc.stdout


def test_demo_reports_a_failed_pod(tmp_path):
    pod = tmp_path / "fail.yaml"
    pod.write_text("apiVersion: v1\nkind: Pod\nmetadata: {name: fail}\nspec:\n  restartPolicy: Never\n"
                   "  containers: [{name: c, image: busybox, command: [sh, -c, 'echo bye; exit 3']}]\n")
    proc = subprocess.run(component_argv("cristack", "demo", "--pod", str(pod), "--runtime-type", "oci"),
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1
    assert "[fail/c] bye" in proc.stdout
    assert "default/fail failed" in proc.stderr and "exit code 3" in proc.stderr
