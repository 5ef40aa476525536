"""Replays a ground-truth recording's crictl session against fake-crio (+ fake-conmon) and returns our spans.

The recordings in ``tests/data/real/crio/`` were made by ``recipes/crio/run-scenario.sh``: the real crictl,
tracing at 1,000,000 per million, drove the real CRI-O through one pod's life. We run the same crictl binary
with the same flags and the same command sequence against fake-crio, configured like the recording (runtime
type, log level, the handler's ``monitor_env``), with our embedded sink as the OTLP endpoint. Only the image
differs (fake-crio's catalogue has no local registry), and the recipe's fixed sleeps (waits for conmon-rs's
5 s batch timer) are replaced by waiting for the spans themselves.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from cristack.harness.sink.receiver import Sink
from cristack.otel.tracediff import SpanRecord, records_from_otlp
from tests.conftest import start_conmon, start_crio
from tests.support.replay import REAL, Recording, crictl_replay_cli

IMAGE = "busybox:latest"


@dataclass(frozen=True)
class CrioRecording(Recording):
    """One recorded run and the configuration that made it."""

    runtime_type: str  # "pod" (conmon-rs) or "oci" (runc + conmon)
    log_level: str
    monitor_env: tuple[str, ...] = ()


CRIO_RECORDINGS = (
    CrioRecording("crio/spans-lifecycle-info.jsonl", "pod", "info", ("LOG_DRIVER=stdout",)),
    CrioRecording("crio/spans-lifecycle-debug.jsonl", "pod", "debug", ("LOG_DRIVER=stdout",)),
    CrioRecording("crio/spans-lifecycle-oci.jsonl", "oci", "info"),
    CrioRecording("crio/spans-lifecycle-info-nologdriver.jsonl", "pod", "info"),
)

CRIO_CONF = """
[crio.runtime]
log_level = "{level}"
default_runtime = "runc"
[crio.runtime.runtimes.runc]
runtime_type = "{runtime_type}"
{monitor}
"""


def _crio_conf(rec: CrioRecording, conmon_socket: Path | None) -> str:
    monitor = ""
    if rec.runtime_type == "pod":
        monitor = f'monitor_endpoint = "unix://{conmon_socket}"\n'
        if rec.monitor_env:
            monitor += f"monitor_env = {json.dumps(list(rec.monitor_env))}\n"
    return CRIO_CONF.format(level=rec.log_level, runtime_type=rec.runtime_type, monitor=monitor)


class Crictl:
    """The real crictl with the recipe's flags: tracing on at 1,000,000 per million, to ``endpoint``."""

    def __init__(self, binary: str, socket: Path, otlp_endpoint: str, workdir: Path, exit_dir: Path | None = None
                 ) -> None:
        self.argv = [binary, "--enable-tracing", "--tracing-endpoint", otlp_endpoint,
                     "--tracing-sampling-rate-per-million", "1000000", "--runtime-endpoint", f"unix://{socket}",
                     "--image-endpoint", f"unix://{socket}", "--timeout", "60s"]
        self.workdir = workdir
        self.exit_dir = exit_dir  # where fake-crio's monitor writes exit files (_wait_exited)

    def __call__(self, *args: str, fails: bool = False) -> str:
        """Runs one command; ``fails``: the recipe expects it to fail (its errors sequence)."""
        proc = subprocess.run([*self.argv, *args], capture_output=True, text=True, timeout=90, cwd=self.workdir)
        if (proc.returncode != 0) != fails:
            raise AssertionError(f"crictl {' '.join(args)} exited {proc.returncode} (expected "
                                 f"{'a failure' if fails else 'success'}):\n{proc.stdout}{proc.stderr}")
        return proc.stdout.strip()


def _configs(workdir: Path, logs_root: Path) -> None:
    """The recipe's pod and container configs, with our image and a log directory fake-crio accepts."""
    cfg = REAL / "recipes" / "crio" / "config"
    pod = json.loads((cfg / "pod.json").read_text())
    pod["log_directory"] = str(logs_root / "realpod")
    (workdir / "pod.json").write_text(json.dumps(pod))
    for name in ("ctr-hello.json", "ctr-sleeper.json"):
        ctr = json.loads((cfg / name).read_text())
        ctr["image"]["image"] = IMAGE
        (workdir / name).write_text(json.dumps(ctr))


def lifecycle(c: Crictl, image: str = IMAGE, wait_exited: Callable[[str], None] | None = None,
              prepull: str = "") -> None:
    """``run-scenario.sh``'s lifecycle sequence, command for command (CRI-O's and containerd's recipes run the
    same); ``wait_exited`` stands for the recipe's 2 s sleep, ``prepull`` is its PREPULL_PAUSE image."""
    if prepull:
        c("pull", prepull)
    c("version")
    c("pull", image)
    pod = c("runp", "pod.json")
    hello = c("create", pod, "ctr-hello.json", "pod.json")
    c("start", hello)
    sleeper = c("create", pod, "ctr-sleeper.json", "pod.json")
    c("start", sleeper)
    (wait_exited or (lambda cid: _wait_exited(c, cid)))(hello)
    c("ps", "-a")
    c("inspect", hello)
    c("logs", hello)
    c("exec", "-s", sleeper, "echo", "yo")
    c("stop", sleeper)
    c("rm", hello, sleeper)
    c("stopp", pod)
    c("rmp", pod)


def _wait_exited(c: Crictl, cid: str, timeout: float = 10.0) -> None:
    # The recipe sleeps 2 s so that hello (echo) has exited before `ps -a` and `logs`. We wait for its exit
    # file instead (written by the monitor, as conmon-rs does): asking crio would add traces of our own.
    exit_file = c.exit_dir / cid
    deadline = time.monotonic() + timeout
    while not exit_file.exists():
        if time.monotonic() > deadline:
            raise AssertionError(f"container {cid} did not exit within {timeout} s (no {exit_file})")
        time.sleep(0.02)


def record_lifecycle(base: Path, rec: CrioRecording, crictl: str) -> list[SpanRecord]:
    """Runs the recording's crictl session against fake-crio configured like the recording; our spans."""
    base.mkdir(parents=True, exist_ok=True)
    sink = Sink()
    addresses = sink.start()
    conmon = crio = None
    try:
        if rec.runtime_type == "pod":
            conmon = start_conmon(base, "--enable-tracing", "--tracing-endpoint", addresses.otlp_endpoint)
        conf = base / "crio.conf"
        conf.write_text(_crio_conf(rec, conmon.socket if conmon else None))
        crio = start_crio(base, "--enable-tracing", "--tracing-endpoint", addresses.otlp_endpoint,
                          "--tracing-sampling-rate-per-million", "1000000", "--log-level", rec.log_level, config=conf)
        _configs(base, crio.logs_root)
        c = Crictl(crictl, crio.socket, addresses.otlp_endpoint, base, base / "runroot" / "exits")
        lifecycle(c)
        # crictl exports its spans before it exits; stopping crio and the monitor flushes theirs (a clean
        # shutdown exports what is queued), so once both are down every span of the session is in the sink.
        crio.close()
        crio = None
        if conmon is not None:
            conmon.proc.stop()
            conmon = None
        return records_from_otlp(sink.store.export_request())
    finally:
        if crio is not None:
            crio.close()
        if conmon is not None:
            conmon.proc.stop()
        sink.stop()


def main(argv: list[str] | None = None) -> int:
    """``python -m tests.support.fidelity [RECORDING-SUBSTRING] [-v] [--save DIR]``: replay, diff and print."""
    return crictl_replay_cli("tests.support.fidelity", CRIO_RECORDINGS, record_lifecycle, argv)


if __name__ == "__main__":
    raise SystemExit(main())
