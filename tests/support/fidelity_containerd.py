"""Replays a containerd recording's crictl session against fake-containerd and returns our spans.

The recordings in ``tests/data/real/containerd/`` were made by ``recipes/containerd/run-scenario.sh``: the real
crictl, tracing at 1,000,000 per million, drove the real containerd v2.4.2 (tracing on through the OTEL_*
environment) through one pod's life. We run the same crictl binary with the same flags and command sequence
against fake-containerd, configured from the recipe's own config.toml template (its log level, its sandbox
image, its registry hosts.toml), with our embedded sink as the OTLP endpoint. Our images come from the
catalogue: a mock-only ``[cristack.registry_mirrors]`` table makes ``127.0.0.1:5000`` and ``127.0.0.1:5001``
(the recipe's two local registries) serve the catalogue's busybox and pause under the same names.

The recipe's fixed sleeps are not replayed. The 2 s after starting the containers only made sure ``hello``
(``echo hi``) had exited before ``ps -a``/``logs``: we wait for fake-containerd's own log line about that exit
instead (asking containerd would add traces). The 7 s before ``stopp`` waited for nothing containerd does
(CRI-O's recordings needed it for conmon-rs's batch timer). What the sleeps change is only how many of the
once-a-second ``Task/Stats`` roots a run makes (deliberate-differences.toml).
"""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from cristack.harness.sink.receiver import Sink
from cristack.otel.tracediff import SpanRecord, records_from_otlp
from fake_containerd.runtime.shim import SHIM_TRACING_ENV
from tests.conftest import ContainerdHandle, start_containerd
from tests.support.fidelity import Crictl, lifecycle
from tests.support.replay import REAL, Recording, crictl_replay_cli

RECIPE = REAL / "recipes" / "containerd" / "config"
BUSYBOX = "127.0.0.1:5000/busybox:latest"
PAUSE = "127.0.0.1:5001/pause:3.10"
MISSING = "127.0.0.1:5000/nonexistent:latest"
MIRRORS = ('\n[cristack.registry_mirrors]\n"127.0.0.1:5000" = "docker.io/library"\n'
           '"127.0.0.1:5001" = "registry.k8s.io"\n')
EXIT_WAIT_S = 30.0


@dataclass(frozen=True)
class ContainerdRecording(Recording):
    """One recorded run and the configuration that made it."""

    sequence: str  # "lifecycle" or "errors"
    log_level: str = "info"
    shim_tracing: bool = False  # the release shim exports nothing
    prepull: bool = False  # PREPULL_PAUSE=1: the sandbox image pulled (traced) before the sequence


CONTAINERD_RECORDINGS = (
    ContainerdRecording("containerd/spans-lifecycle.jsonl", "lifecycle"),
    ContainerdRecording("containerd/spans-errors.jsonl", "errors"),
    ContainerdRecording("containerd/spans-lifecycle-debug.jsonl", "lifecycle", "debug"),
    ContainerdRecording("containerd/spans-lifecycle-shimtracing.jsonl", "lifecycle", shim_tracing=True),
    ContainerdRecording("containerd/spans-lifecycle-prepulled.jsonl", "lifecycle", prepull=True),
)


def render_config(base: Path, level: str) -> Path:
    """The recipe's config.toml for this run: private root, state and sockets under ``base``, its certs.d,
    the mock registries."""
    cfg_dir = base / "cfg"
    cfg_dir.mkdir(parents=True, exist_ok=True)
    shutil.copytree(RECIPE / "certs.d", cfg_dir / "certs.d", dirs_exist_ok=True)
    text = (RECIPE / "config.toml.tmpl").read_text()
    for mark, value in (("@ST@", str(base / "st")), ("@CFG@", str(cfg_dir)), ("@LVL@", level),
                        ("@CNIBIN@", str(base / "cni-bin")), ("@RUNC@", "/usr/local/sbin/runc")):
        text = text.replace(mark, value)
    path = cfg_dir / "config.toml"
    path.write_text(text + MIRRORS)
    return path


def _configs(workdir: Path, base: Path) -> None:
    """The recipe's pod and container configs (its own images), the pod's log directory under ``base``."""
    pod = json.loads((RECIPE / "pod.json").read_text())
    pod["log_directory"] = str(base / "pod-logs" / "realpod")
    (workdir / "pod.json").write_text(json.dumps(pod))
    for name in ("ctr-hello.json", "ctr-sleeper.json"):
        shutil.copyfile(RECIPE / name, workdir / name)
    noimage = json.loads((RECIPE / "ctr-hello.json").read_text())
    noimage["image"]["image"] = MISSING
    (workdir / "ctr-noimage.json").write_text(json.dumps(noimage))


def wait_exited(handle: ContainerdHandle, cid: str, timeout: float = EXIT_WAIT_S) -> None:
    """Until fake-containerd logs that ``cid`` exited (its exit monitor's line)."""
    deadline = time.monotonic() + timeout
    needle = f"received container exit event container_id:{cid}"
    while needle not in handle.log_text():
        if time.monotonic() > deadline:
            raise AssertionError(f"container {cid} did not exit within {timeout} s:\n{handle.log_text()[-3000:]}")
        time.sleep(0.02)


def errors(c: Crictl) -> None:
    """run-scenario.sh's errors sequence: each failing command fails."""
    c("version")
    c("pull", MISSING, fails=True)
    c("inspect", "deadbeefbadid", fails=True)
    c("inspectp", "deadbeefbadid", fails=True)
    c("rm", "deadbeefbadid", fails=True)
    c("stopp", "deadbeefbadid")
    pod = c("runp", "pod.json")
    c("create", "--no-pull", pod, "ctr-noimage.json", "pod.json", fails=True)
    c("exec", "-s", "deadbeefbadid", "echo", "yo", fails=True)
    c("stopp", pod)
    c("rmp", pod)


def record_session(base: Path, rec: ContainerdRecording, crictl: str) -> list[SpanRecord]:
    """Runs the recording's crictl session against fake-containerd configured like the recording; our spans."""
    base.mkdir(parents=True, exist_ok=True)
    sink = Sink()
    addresses = sink.start()
    handle = None
    try:
        config = render_config(base, rec.log_level)
        handle = start_containerd(base, config, otlp_endpoint=addresses.otlp_endpoint,
                                  env={} if rec.shim_tracing else {SHIM_TRACING_ENV: "0"})
        workdir = base / "work"
        workdir.mkdir(exist_ok=True)
        _configs(workdir, base)
        c = Crictl(crictl, handle.socket, addresses.otlp_endpoint, workdir)
        if rec.sequence == "lifecycle":
            lifecycle(c, BUSYBOX, lambda cid: wait_exited(handle, cid), PAUSE if rec.prepull else "")
        else:
            errors(c)
        # crictl exports before it exits; stopping fake-containerd flushes its spans (and its shims', which
        # have exited with their pods and flushed theirs), so once it is down the session is in the sink.
        handle.close()
        handle = None
        return records_from_otlp(sink.store.export_request())
    finally:
        if handle is not None:
            handle.close()
        sink.stop()


def main(argv: list[str] | None = None) -> int:
    """``python -m tests.support.fidelity_containerd [RECORDING-SUBSTRING] [-v] [--save DIR]``."""
    os.environ.setdefault("CRISTACK_FIDELITY", "1")
    return crictl_replay_cli("tests.support.fidelity_containerd", CONTAINERD_RECORDINGS, record_session, argv)


if __name__ == "__main__":
    raise SystemExit(main())
