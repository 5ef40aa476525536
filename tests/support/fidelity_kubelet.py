"""Runs fake-kubelet the way ``recipes/kubelet/run.sh`` ran the real kubelet, and returns the kubelet's spans.

The recordings in ``tests/data/real/kubelet/`` come from the real kubelet v1.36.3 driving fake-conmon +
fake-crio with two static pods (``oneshot.yaml``, ``sleeper.yaml``), the kubelet's HTTP API called with curl
mid-run and before teardown, then ``sleeper.yaml`` removed and the run kept going past a container GC tick.
We do the same with fake-kubelet, as real processes on real sockets, with the recipe's manifests and its
KubeletConfiguration (our paths and ports), but with the kubelet's periods scaled down by its mock-only flags
(the recipe ran 75-135 s; this runs in about 15 s). The two recordings differ in one setup step, which we
repeat: run 1 was made against fake-crio at 625725f, whose ImageFsInfo named directories that did not exist
(the kubelet's eviction manager and image GC failed, /stats/summary answered 500); run 2 created them by
hand, so the kubelet's stats paths ran. fake-crio now creates and walks them as CRI-O does, so run 2 is its
ordinary behaviour and run 1 is replayed with the mock-only fault ``image_fs_unmounted``, which brings the
old answer back: the recording is of the real kubelet's reaction to that runtime, and fake-kubelet must
still reproduce it (allowlisting run 1's shapes instead would stop checking that path at all).
"""

from __future__ import annotations

import shutil
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import yaml

from cristack.harness.procs import start
from cristack.harness.sink.receiver import Sink
from cristack.harness.sink.store import SpanStore
from cristack.otel.tracediff import SpanRecord, records_from_otlp
from cristack.wire.endpoints import parse_endpoint
from tests.conftest import free_port, start_conmon, start_crio
from tests.support.replay import REAL, Recording, replay_cli

RECIPE = REAL / "recipes" / "kubelet"
NODE = "rk-node"  # the recipe's --hostname-override
USER_AGENT = "curl/7.88.1"  # the recipe called the API with Debian bookworm's curl

# The kubelet's hard-coded periods, scaled down (mock-only flags; the real values are their defaults).
PERIODS = {"--relist-period": "1s", "--housekeeping-period": "1s", "--runtime-status-period": "1s",
           "--eviction-period": "2s", "--image-cache-period": "3s", "--gc-period": "4s"}


@dataclass(frozen=True)
class KubeletRecording(Recording):
    """One recorded run and the one setup step that set it apart."""

    image_fs_present: bool  # False: run 1, against the ImageFsInfo of fake-crio 625725f (see the docstring)


KUBELET_RECORDINGS = (
    KubeletRecording("kubelet/spans-kubelet-run1.jsonl", image_fs_present=False),
    KubeletRecording("kubelet/spans-kubelet-run2-fsworkaround.jsonl", image_fs_present=True),
)


def kubelet_config(base: Path, crio_socket: Path, pod_logs: Path, otlp_endpoint: str, port: int,
                   read_only_port: int) -> dict:
    """The recipe's KubeletConfiguration with our paths, ports and sink; keys fake-kubelet does not model
    (cgroups, iptables, authn/z) are kept, and it names them in a warning."""
    doc = yaml.safe_load((RECIPE / "kubelet-config.yaml.in").read_text())
    doc.update({
        "staticPodPath": str(base / "manifests"),
        "containerRuntimeEndpoint": f"unix://{crio_socket}",
        "imageServiceEndpoint": f"unix://{crio_socket}",
        "tracing": {"endpoint": otlp_endpoint, "samplingRatePerMillion": 1_000_000},
        "podLogsDir": str(pod_logs),  # where fake-crio confines log directories
        "port": port,
        "readOnlyPort": read_only_port,
        "fileCheckFrequency": "500ms",  # real default 20s: how soon a removed manifest is noticed
        "containerLogMonitorInterval": "2s",  # real default 10s
    })
    return doc


def _get(url: str) -> int:
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
    try:
        with urllib.request.urlopen(request, timeout=10) as resp:
            resp.read()
            return resp.status
    except urllib.error.HTTPError as err:
        return err.code


def snap(port: int, read_only_port: int) -> dict[str, int]:
    """The recipe's ``snap``: /pods on the read-only port, containerLogs for both pods, /stats/summary."""
    codes = {"/pods": _get(f"http://127.0.0.1:{read_only_port}/pods")}
    for pod in ("sleeper", "oneshot"):
        path = f"/containerLogs/default/{pod}-{NODE}/{pod}"
        codes[path] = _get(f"http://127.0.0.1:{port}{path}")
    codes["/stats/summary"] = _get(f"http://127.0.0.1:{port}/stats/summary")
    return codes


def _names(store: SpanStore) -> list[tuple[str, int, int, dict]]:
    return [(s.name, s.start, s.end, s.attributes) for s in store.spans() if s.service == "kubelet"]


def _wait(store: SpanStore, what: str, predicate, timeout: float = 20.0) -> None:  # noqa: ANN001
    if not store.wait(lambda st: predicate(_names(st)), timeout):
        raise AssertionError(f"fake-kubelet: no {what} within {timeout:g} s")


def _pod_span(name: str, pod: str):  # noqa: ANN202
    return lambda spans: [s for s in spans if s[0] == name and s[3].get("k8s.pod.name", "").startswith(pod)]


def run_kubelet(base: Path, rec: KubeletRecording) -> list[SpanRecord]:
    """One scaled-down run of the recipe against fake-conmon + fake-crio; the kubelet's spans."""
    base.mkdir(parents=True, exist_ok=True)
    (base / "manifests").mkdir()
    sink = Sink()
    addresses = sink.start()
    conmon = crio = kubelet = None
    try:
        conmon = start_conmon(base, "--enable-tracing", "--tracing-endpoint", addresses.otlp_endpoint)
        conf = base / "crio.conf"
        conf.write_text((Path(__file__).resolve().parents[2] / "examples" / "crio" / "crio.conf").read_text())
        fault = []
        if not rec.image_fs_present:
            (base / "faults.toml").write_text("image_fs_unmounted = true\n")
            fault = ["--faults", str(base / "faults.toml")]
        crio = start_crio(base, "--monitor-endpoint", f"unix://{conmon.socket}", "--enable-tracing",
                          "--tracing-endpoint", addresses.otlp_endpoint, "--tracing-sampling-rate-per-million",
                          "1000000", *fault, config=conf)
        port, read_only_port = free_port(), free_port()
        config = base / "kubelet-config.yaml"
        config.write_text(yaml.safe_dump(kubelet_config(base, crio.socket, crio.logs_root, addresses.otlp_endpoint,
                                                        port, read_only_port)))
        for manifest in ("oneshot.yaml", "sleeper.yaml"):
            shutil.copy(RECIPE / manifest, base / "manifests" / manifest)
        args = ["--config", str(config), "--hostname-override", NODE, "--v", "4"]
        for flag, value in PERIODS.items():
            args += [flag, value]
        kubelet = start("fake-kubelet", args, base / "kubelet.log",
                        endpoint=parse_endpoint(f"127.0.0.1:{read_only_port}"))
        store = sink.store
        # Both pods started, the oneshot pod ran to completion, the log manager saw the sleeper.
        _wait(store, "syncTerminatedPod of oneshot", _pod_span("syncTerminatedPod", "oneshot"))
        _wait(store, "sleeper started", lambda spans: any(
            s[0] == "runtime.v1.RuntimeService/StartContainer" for s in spans) and len(
            [s for s in spans if s[0] == "runtime.v1.RuntimeService/StartContainer"]) >= 2)
        snap(port, read_only_port)  # mid-run
        _wait(store, "an eviction tick after the mid-run calls", lambda spans: len(
            [s for s in spans if s[0] == "runtime.v1.ImageService/ImageFsInfo"]) >= 8)
        snap(port, read_only_port)  # before teardown
        (base / "manifests" / "sleeper.yaml").unlink()
        _wait(store, "syncTerminatedPod of sleeper", _pod_span("syncTerminatedPod", "sleeper"))
        done = max(s[2] for s in _pod_span("syncTerminatedPod", "sleeper")(_names(store)))
        _wait(store, "a container GC tick after the sleeper's teardown", lambda spans: any(
            s[0] == "Containers/GarbageCollect" and s[1] > done for s in spans))
        snap(port, read_only_port)  # end
        # A clean stop flushes what the kubelet has queued; then every span of the run is in the sink.
        kubelet.stop()
        kubelet = None
        spans = records_from_otlp(store.export_request())
        return [s for s in spans if s.service == "kubelet"]
    finally:
        for proc in (kubelet,):
            if proc is not None:
                proc.stop()
        if crio is not None:
            crio.close()
        if conmon is not None:
            conmon.proc.stop()
        sink.stop()


def main(argv: list[str] | None = None) -> int:
    """``python -m tests.support.fidelity_kubelet [RECORDING-SUBSTRING] [-v] [--save DIR]``: run, diff, print."""
    return replay_cli("tests.support.fidelity_kubelet", KUBELET_RECORDINGS, run_kubelet, "distinct", argv)


if __name__ == "__main__":
    raise SystemExit(main())
