"""The real crictl against a freshly started fake-crio, the way a CRI-O user drives CRI-O."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import CrioHandle, require_tool, start_crio
from tests.support.pace import allowance, timed

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "crictl"


class Crictl:
    def __init__(self, binary: str, crio: CrioHandle) -> None:
        self.binary = binary
        self.config = crio.dir / "crictl.yaml"
        self.config.write_text(f"runtime-endpoint: {crio.endpoint}\nimage-endpoint: {crio.endpoint}\n"
                               "timeout: 20\ndebug: false\n")

    def run(self, *args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run([self.binary, "--config", str(self.config), *args], capture_output=True, text=True,
                              timeout=60)
        if ok:
            assert proc.returncode == 0, f"crictl {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}"
        return proc

    def out(self, *args: str) -> str:
        return self.run(*args).stdout

    def json(self, *args: str) -> dict:
        return json.loads(self.out(*args))


@pytest.fixture
def crictl_env(tmp_path: Path):
    binary = require_tool("crictl")
    crio = start_crio(tmp_path)
    yield Crictl(binary, crio), crio
    crio.close()


def wait_state(c: Crictl, cid: str, state: str, timeout: float = 10) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        info = c.json("inspect", cid)
        if info["status"]["state"] == state:
            return info
        time.sleep(0.1)
    raise AssertionError(f"{cid} never reached {state}: {info['status']}")


def test_version_info_and_images(crictl_env) -> None:
    c, _ = crictl_env
    out = c.out("version")
    assert "RuntimeName:  cri-o" in out and "RuntimeApiVersion:  v1" in out
    info = c.json("info")
    assert {cond["type"] for cond in info["status"]["conditions"]} == {"RuntimeReady", "NetworkReady"}
    assert "Image is up to date for" in c.out("pull", "busybox")
    assert c.run("pull", "docker.io/library/nosuch:1.0", ok=False).returncode != 0
    images = c.out("images")
    assert "docker.io/library/busybox" in images and "latest" in images
    image = c.json("inspecti", "busybox")["status"]
    assert image["repoTags"] == ["docker.io/library/busybox:latest"]
    fs = c.json("imagefsinfo")["status"]
    # As CRI-O answers: a walk of the storage's overlay-images directory (a real one), for images and containers.
    image_fs = fs["imageFilesystems"][0]
    assert Path(image_fs["fsId"]["mountpoint"]).is_dir() and int(image_fs["usedBytes"]["value"]) > 0
    assert fs["containerFilesystems"][0]["fsId"] == image_fs["fsId"]


def test_pod_and_container_session_with_restart(crictl_env) -> None:
    """runp → create → start → ps → inspect → stats → stop → rm → stopp → rmp → rmi,
    with fake-crio restarted in the middle."""
    c, crio = crictl_env
    pod = c.out("runp", str(EXAMPLES / "pod.json")).strip()
    assert len(pod) == 64
    assert c.out("pods", "--name", "hello-sandbox", "-q").split() == [pod]
    assert c.out("pods", "--state", "ready", "-q").split() == [pod]
    assert c.out("pods", "--label", "app=hello", "-q").split() == [pod]
    assert c.out("pods", "--label", "app=other", "-q").split() == []
    inspectp = c.json("inspectp", pod)
    assert inspectp["status"]["state"] == "SANDBOX_READY"
    assert inspectp["status"]["metadata"]["name"] == "hello-sandbox"

    c.out("pull", "busybox")
    ctr = c.out("create", pod, str(EXAMPLES / "container.json"), str(EXAMPLES / "pod.json")).strip()
    assert "Created" in c.out("ps", "-a")
    c.out("start", ctr)
    wait_state(c, ctr, "CONTAINER_RUNNING")
    ps = c.out("ps")
    assert ctr[:13] in ps and "Running" in ps and "hello" in ps

    crio.restart()  # nothing a user can see is lost
    assert c.out("pods", "-q").split() == [pod]
    assert ctr[:13] in c.out("ps", "-a")

    dup = c.run("runp", str(EXAMPLES / "pod.json"), ok=False)
    assert dup.returncode != 0 and "already exists" in dup.stderr

    ctr2 = c.out("create", pod, str(EXAMPLES / "container-sleep.json"), str(EXAMPLES / "pod.json")).strip()
    c.out("start", ctr2)
    wait_state(c, ctr2, "CONTAINER_RUNNING")
    stats = c.json("stats", "-o", "json", ctr2)
    assert stats["stats"][0]["attributes"]["id"] == ctr2
    c.out("stop", "--timeout", "5", ctr2)
    info = wait_state(c, ctr2, "CONTAINER_EXITED")
    assert info["status"]["exitCode"] == 143 and info["status"]["reason"] == "Error"
    c.out("rm", ctr2)
    assert ctr2[:13] not in c.out("ps", "-a")
    c.out("stopp", pod)
    assert c.out("pods", "--state", "notready", "-q").split() == [pod]
    c.out("rmp", pod)
    assert c.out("pods", "-q").split() == []
    assert c.out("ps", "-a", "-q").split() == []
    c.out("rmi", "busybox")
    assert "busybox" not in c.out("images")


@pytest.fixture
def crictl_any(any_crio):
    return Crictl(require_tool("crictl"), any_crio), any_crio


def test_logs_exec_stop_and_inspect_under_both_runtime_types(crictl_any, tmp_path: Path) -> None:
    """`echo hi` shows in `crictl logs` with exit code 0 in `crictl inspect`; exec and stop -t work."""
    c, crio = crictl_any
    c.out("pull", "busybox")
    pod = c.out("runp", str(EXAMPLES / "pod.json")).strip()
    hello = tmp_path / "hello.json"
    hello.write_text(json.dumps({"metadata": {"name": "echo"}, "image": {"image": "busybox"},
                                 "command": ["echo", "hi"], "log_path": "echo/0.log"}))
    ctr = c.out("create", pod, str(hello), str(EXAMPLES / "pod.json")).strip()
    c.out("start", ctr)
    info = wait_state(c, ctr, "CONTAINER_EXITED")
    assert info["status"]["exitCode"] == 0 and info["status"]["reason"] == "Completed"
    assert c.out("logs", ctr) == "hi\n"

    with timed() as start:  # the machine's pace for the stop's budget (tests/support/pace.py)
        sleeper = c.out("create", pod, str(EXAMPLES / "container-sleep.json"), str(EXAMPLES / "pod.json")).strip()
        c.out("start", sleeper)
        wait_state(c, sleeper, "CONTAINER_RUNNING")
    # crictl adds blank lines of its own around the output, as it does with CRI-O.
    assert c.out("exec", "-s", sleeper, "echo", "from", "exec").strip() == "from exec"
    failed = c.run("exec", "-s", sleeper, "sh", "-c", "exit 3", ok=False)
    assert failed.returncode != 0 and "exited with 3" in failed.stderr
    with timed() as stop:
        c.out("stop", "-t", "2", sleeper)
    # On SIGTERM (143 below; the SIGKILL at the 2 s timeout would say 137), so well before the timeout.
    assert stop.seconds <= allowance(2.0, start.seconds), stop.seconds
    info = c.json("inspect", sleeper)
    assert info["status"]["state"] == "CONTAINER_EXITED"
    assert info["status"]["exitCode"] == 143 and info["status"]["reason"] == "Error"
    c.out("rmp", "-f", pod)
