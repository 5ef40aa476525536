"""What `cristack demo` writes to a pipe or a file: at $COLUMNS when it is set, and with every name, message and
attribute value from a pod shown with its control characters escaped, except the containers' own output, which
stays as they wrote it (as `kubectl logs` shows it); the HTML report likewise."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import yaml

from cristack.harness.procs import component_argv

OSC_TITLE = "\x1b]0;pwned\x07"  # would retitle the terminal
CLEAR = "\x1b[2J"  # would clear the screen


def demo(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(component_argv("cristack", "demo", *args), capture_output=True, text=True, timeout=120,
                          env={**os.environ, **env})


def test_piped_demo_honours_columns_and_escapes_what_pods_say(tmp_path: Path) -> None:
    loud = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "loud"}, "spec": {
        "restartPolicy": "Never", "containers": [{"name": "c", "image": "busybox",
                                                  "command": ["sh", "-c", r"printf 'own\033[1mwords\n'"]}]}}
    bad = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "bad"}, "spec": {
        "restartPolicy": "Never", "containers": [{"name": "c", "image": f"busybox{OSC_TITLE}{CLEAR}"}]}}
    for doc in (loud, bad):
        (tmp_path / f"{doc['metadata']['name']}.yaml").write_text(yaml.safe_dump(doc))
    html = tmp_path / "out.html"
    proc = demo("--pod", str(tmp_path / "loud.yaml"), "--pod", str(tmp_path / "bad.yaml"), "--html", str(html),
                env={"COLUMNS": "80"})
    assert proc.returncode == 1, proc.stdout + proc.stderr  # the bad image cannot be pulled
    out = proc.stdout
    own = "[loud/c] own\x1b[1mwords"
    assert own in out, "the container's own output is printed as it wrote it"
    rest = out.replace(own, "") + proc.stderr
    assert "\x1b" not in rest and "\x07" not in rest, [line for line in rest.splitlines() if "\x1b" in line][:5]
    assert r"busybox\x1b]0;pwned\x07\x1b[2J" in out, "the image name is shown, escaped"
    assert r"busybox\x1b]0;pwned\x07\x1b[2J" in proc.stderr, "and so is the failure's reason"
    tree = out.split("── traces ", 1)[1].split("\nalso traced", 1)[0]
    assert "syncPod" in tree
    assert max(len(line) for line in tree.splitlines()) <= 80, "COLUMNS=80 in a pipe: the tree fits 80 columns"
    page = html.read_text()
    assert "\x1b" not in page and "\x07" not in page
    assert r"busybox\x1b]0;pwned\x07\x1b[2J" in page


def test_scenario_list_honours_columns_in_a_pipe() -> None:
    lines = subprocess.run(component_argv("cristack", "demo", "--list"), capture_output=True, text=True,
                           timeout=30, env={**os.environ, "COLUMNS": "60"}).stdout.splitlines()
    assert lines and max(len(line) for line in lines) <= 60, max(lines, key=len)
    assert any(len(line) > 50 for line in lines), "the width is used, not a narrower one"
