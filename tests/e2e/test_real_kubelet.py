"""The real kubelet v1.36.3 (built by `make tools-kubelet`) runs a static pod end to end on fake-conmon + fake-crio,
and on fake-containerd (its shims).

It runs standalone, as tests/data/real/recipes/kubelet/run.sh ran it for the recordings: no API server,
static pods only, cgroupfs, no QoS cgroups, swap and cgroup v1 tolerated, anonymous read access, loopback
ports, and kept off the host: a private mount namespace (unshare) in which its sysctl writes
(vm.overcommit_memory, kernel.panic, kernel.panic_on_oops) and /var/log land on files of the test, and
``makeIPTablesUtilChains: false``. Tracing is on in all of them, into one sink (fake-containerd's through
containerd's OTEL_* environment).

Checked as a user would: the pod's container runs (crictl), its log is written where the kubelet expects it
and the kubelet serves it, /stats/summary answers, removing the manifest tears the pod down, and the
kubelet's log has no error from a CRI call (``remote_runtime.go``/``remote_image.go``) nor from its stats
and eviction paths. A second run per runtime turns on the kubelet's EventedPLEG and CRIListStreaming gates
(alpha), against fake-crio's ``enable_pod_events`` and containerd's always-on GetContainerEvents.

Opt-in: the kubelet takes tens of minutes to build, so without the binary the test skips, unless
CRISTACK_REAL_KUBELET=1 requires it (plain CI=true does not). Needs root (for unshare and the bind mounts).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from cristack.harness.procs import find_tool
from cristack.harness.sink.receiver import Sink
from tests.conftest import free_port, start_conmon, start_containerd, start_crio

ROOT = Path(__file__).resolve().parents[2]
RECIPE = ROOT / "tests" / "data" / "real" / "recipes" / "kubelet"
KUBELET_VERSION = "v1.36.3"
CACHED = Path(os.environ.get("CRISTACK_TOOLS_CACHE", Path.home() / ".cache" / "cristack")) / \
    f"kubelet-{KUBELET_VERSION}" / "bin" / "kubelet"
REQUIRED = os.environ.get("CRISTACK_REAL_KUBELET", "") == "1"
NODE = "rk-node"
GREETING = "hello from the real kubelet"
# The kernel tunables the kubelet sets at start (container_manager_linux.go setupKernelTunables), with the
# values it wants, bind-mounted over /proc/sys inside its private mount namespace.
SYSCTLS = {"vm/overcommit_memory": "1", "kernel/panic": "10", "kernel/panic_on_oops": "1"}
# A CRI call that failed shows in the kubelet's log as an E line from its CRI client (k8s.io/cri-client).
CRI_ERROR = re.compile(r"^E\d{4} [\d:.]+\s+\d+ (remote_runtime|remote_image)\.go:\d+\].*$", re.M)
# ... except NotFound for a container the kubelet removed a moment before: its pod container deletor and
# its container GC race for a dead container (recorded in run 2), and the loser's ContainerStatus is told
# so; the kubelet expects that answer (pod_container_deletor.go logs it and moves on).
# And Canceled: the kubelet cancelled the call itself before it was sent (seen on a Version call of a pod
# sync that the manifest's removal cancelled, with the evented PLEG; fake-crio never received it).
EXPECTED_CRI_ERROR = re.compile(r'ContainerStatus from runtime service failed" err="rpc error: code = NotFound|'
                                r'err="rpc error: code = Canceled desc = context canceled"')
# What the broken ImageFsInfo made the kubelet log (kubelet-cri-errors.txt, run 1). (Not "Image garbage
# collection failed once" as such: at start-up it may also say "invalid capacity 0 on image filesystem",
# before cadvisor's first look at the disks, whatever the runtime.)
STATS_ERROR = re.compile(r"^E.*(Failed to get the info of the filesystem|Eviction manager: failed to synchronize|"
                         r"failed to get HasDedicatedImageFs|HTTP InternalServerError serving).*$", re.M)


def _kubelet() -> str:
    """The kubelet binary: $CRISTACK_KUBELET, .tools/bin, or the make tools-kubelet cache."""
    for candidate in (os.environ.get("CRISTACK_KUBELET"), find_tool("kubelet"), str(CACHED)):
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            version = subprocess.run([candidate, "--version"], capture_output=True, text=True, timeout=30).stdout
            if KUBELET_VERSION in version:
                return candidate
    msg = f"the real kubelet {KUBELET_VERSION} is not built; run `make tools-kubelet` (tens of minutes)"
    if REQUIRED:
        pytest.fail(f"CRISTACK_REAL_KUBELET=1: {msg}")
    pytest.skip(msg)


def _need_root() -> None:
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        msg = "needs root and unshare(1): the kubelet runs in a private mount namespace"
        if REQUIRED:
            pytest.fail(f"CRISTACK_REAL_KUBELET=1: {msg}")
        pytest.skip(msg)


@dataclass
class Node:
    base: Path
    runtime: str  # the service name of the runtime's spans: crio or containerd
    crio_socket: Path
    pod_logs: Path
    varlog: Path
    manifests: Path
    port: int
    read_only_port: int
    kubelet_log: Path
    calls_file: Path | None  # fake-crio's record of the calls it served; fake-containerd's are read from spans
    sink: Sink

    def calls(self) -> list[str]:
        """The CRI methods the runtime served (a call still streaming is not among fake-containerd's)."""
        if self.calls_file is not None:
            return self.calls_file.read_text().split()
        return [s.name.rsplit("/", 1)[1] for s in self.sink.store.spans()
                if s.service == self.runtime and s.name.startswith("runtime.v1.")]

    def crictl(self, *args: str) -> dict:
        crictl = find_tool("crictl")
        assert crictl, "crictl not found; run `make tools`"
        out = subprocess.run([crictl, "--runtime-endpoint", f"unix://{self.crio_socket}", "--image-endpoint",
                              f"unix://{self.crio_socket}", *args, "-o", "json"],
                             capture_output=True, text=True, timeout=30, check=True).stdout
        return json.loads(out)

    def api(self, path: str) -> tuple[int, str]:
        """The kubelet's authenticated port (TLS, self-signed; anonymous access is on)."""
        ctx = ssl.create_default_context()
        ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
        try:
            with urllib.request.urlopen(f"https://127.0.0.1:{self.port}{path}", timeout=10, context=ctx) as r:
                return r.status, r.read().decode(errors="replace")
        except urllib.error.HTTPError as err:
            return err.code, err.read().decode(errors="replace")

    def log(self) -> str:
        return self.kubelet_log.read_text(errors="replace")


def wait_for(what: str, check: Callable[[], object], timeout: float, node: Node) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            value = check()
        except (subprocess.CalledProcessError, OSError, ValueError):
            value = None
        if value:
            return value
        time.sleep(0.5)
    tail = "\n".join(node.log().splitlines()[-40:])
    raise AssertionError(f"{what}: not within {timeout:g} s; the kubelet's log ends:\n{tail}")


def _manifest() -> dict:
    doc = yaml.safe_load((RECIPE / "sleeper.yaml").read_text())
    doc["spec"]["containers"][0]["command"] = ["sh", "-c", f"echo {GREETING}; sleep 3600"]
    doc["spec"]["containers"][0]["imagePullPolicy"] = "IfNotPresent"
    return doc


CONTAINERD_CONF = """version = 4
root = '{base}/ctd-root'
state = '{base}/st'  # tests/conftest.py's start_containerd finds the socket there
[cristack]
pull_latency_ms = 1
pod_logs_root = '{pod_logs}'
"""


@pytest.fixture(params=["crio-generic-pleg", "crio-evented-pleg", "containerd-generic-pleg",
                        "containerd-evented-pleg"])
def node(request, tmp_path: Path) -> Iterator[Node]:
    _need_root()
    kubelet = _kubelet()
    runtime, _, pleg = request.param.partition("-")
    evented = pleg == "evented-pleg"
    base = tmp_path  # kept by pytest for a look after a failure (the kubelet's log is kubelet.log)
    sink = Sink()
    addresses = sink.start()
    conmon = server = proc = None
    try:
        if runtime == "containerd":
            # containerd's CRI writes pod logs where the kubelet says (podLogsDir); the mock-only root only
            # confines them there. Its RuntimeConfig says cgroupfs (runc's SystemdCgroup defaults to false).
            pod_logs = base / "pods"
            pod_logs.mkdir()
            conf = base / "containerd.toml"
            conf.write_text(CONTAINERD_CONF.format(base=base, pod_logs=pod_logs))
            server = start_containerd(base, conf, otlp_endpoint=addresses.otlp_endpoint)
            socket, calls_file = server.socket, None
        else:
            conmon = start_conmon(base, "--enable-tracing", "--tracing-endpoint", addresses.otlp_endpoint)
            conf = base / "crio.conf"
            text = (ROOT / "examples" / "crio" / "crio.conf").read_text()  # cgroup_manager = "cgroupfs"
            if evented:
                text = text.replace("# enable_pod_events = true", "enable_pod_events = true")
            conf.write_text(text)
            server = start_crio(base, "--monitor-endpoint", f"unix://{conmon.socket}", "--enable-tracing",
                                "--tracing-endpoint", addresses.otlp_endpoint, config=conf)
            socket, pod_logs, calls_file = server.socket, server.logs_root, server.calls_file
        manifests, varlog, sysctl = base / "manifests", base / "varlog", base / "sysctl"
        for d in (manifests, varlog, sysctl, base / "volume-plugins"):
            d.mkdir()
        for key, value in SYSCTLS.items():
            (sysctl / key.replace("/", "_")).write_text(value + "\n")
        port, read_only_port, healthz = free_port(), free_port(), free_port()
        config = yaml.safe_load((RECIPE / "kubelet-config.yaml.in").read_text())
        config.update({
            "staticPodPath": str(manifests), "containerRuntimeEndpoint": f"unix://{socket}",
            "imageServiceEndpoint": f"unix://{socket}", "podLogsDir": str(pod_logs),
            "volumePluginDir": str(base / "volume-plugins"), "port": port, "readOnlyPort": read_only_port,
            "healthzPort": healthz, "fileCheckFrequency": "1s",
            "tracing": {"endpoint": addresses.otlp_endpoint, "samplingRatePerMillion": 1_000_000},
        })
        if evented:
            # Both alpha in 1.36: the evented PLEG, and the list calls as server streams.
            config["featureGates"] = {"EventedPLEG": True, "CRIListStreaming": True}
        (base / "kubelet-config.yaml").write_text(yaml.safe_dump(config))
        mounts = " && ".join([f"mount --bind {sysctl / k.replace('/', '_')} /proc/sys/{k}" for k in SYSCTLS]
                             + [f"mount --bind {varlog} /var/log"])
        script = (f"{mounts} && exec {kubelet} --config={base / 'kubelet-config.yaml'} "
                  f"--root-dir={base / 'kubelet'} --hostname-override={NODE} --v=2")
        kubelet_log = base / "kubelet.log"
        with kubelet_log.open("w") as out:
            proc = subprocess.Popen(["unshare", "-m", "--propagation", "private", "sh", "-c", script],
                                    stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        n = Node(base, "crio" if runtime == "crio" else "containerd", socket, pod_logs, varlog, manifests, port,
                 read_only_port, kubelet_log, calls_file, sink)
        wait_for("the kubelet's healthz", lambda: urllib.request.urlopen(
            f"http://127.0.0.1:{healthz}/healthz", timeout=2).status == 200, 60, n)
        yield n
    finally:
        if proc is not None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)
        if server is not None:
            server.close()
        if conmon is not None:
            conmon.proc.stop()
        sink.stop()


def _running(node: Node) -> dict | None:
    for c in node.crictl("ps", "--name", "sleeper")["containers"]:
        if c["state"] == "CONTAINER_RUNNING":
            return c
    return None


def test_real_kubelet_runs_a_static_pod(node: Node) -> None:
    log = node.log()
    assert 'cgroupDriver="cgroupfs"' in log, "the kubelet takes its cgroup driver from RuntimeConfig"
    (node.manifests / "sleeper.yaml").write_text(yaml.safe_dump(_manifest()))

    container = wait_for("the static pod's container running (crictl ps)", lambda: _running(node), 120, node)
    pod_id = container["podSandboxId"]
    pods = node.crictl("pods", "--name", "sleeper")["items"]
    assert [(p["id"], p["state"], p["metadata"]["namespace"]) for p in pods] == [(pod_id, "SANDBOX_READY", "default")]

    # The log is where the kubelet expects it: <podLogsDir>/<ns>_<pod>_<uid>/<container>/0.log, CRI format,
    # and the kubelet reads it back through its own API.
    uid = pods[0]["metadata"]["uid"]
    log_file = node.pod_logs / f"default_sleeper-{NODE}_{uid}" / "sleeper" / "0.log"
    wait_for(f"{log_file} with the greeting", lambda: GREETING in log_file.read_text(), 30, node)
    assert re.match(r"^\S+ stdout F " + GREETING + "$", log_file.read_text().splitlines()[0])
    status, body = node.api(f"/containerLogs/default/sleeper-{NODE}/sleeper")
    assert (status, body.strip()) == (200, GREETING)
    # The kubelet's /var/log/containers link (in its private /var/log) points at the same file.
    links = list((node.varlog / "containers").glob("sleeper-*_default_sleeper-*.log"))
    assert links and os.readlink(links[0]) == str(log_file)

    # ImageFsInfo names real directories: the stats summary answers and names the image filesystem.
    status, body = wait_for("/stats/summary", lambda: (lambda r: r if r[0] == 200 else None)(
        node.api("/stats/summary")), 60, node)
    summary = json.loads(body)
    assert summary["node"]["runtime"]["imageFs"]["inodesUsed"] > 0

    # Removing the manifest tears the pod down.
    (node.manifests / "sleeper.yaml").unlink()
    wait_for("the pod torn down (crictl)", lambda: not _running(node) and all(
        p["state"] != "SANDBOX_READY" for p in node.crictl("pods", "--name", "sleeper")["items"]), 90, node)

    # The kubelet's own spans reach the sink (its batch processor sends every 5 s) and the runtime's SERVER
    # spans join its traces.
    def joined(store) -> bool:  # noqa: ANN001
        spans = store.spans()
        traces = {s.trace_id for s in spans if s.service == "kubelet" and s.name == "syncPod"}
        return any(s.service == node.runtime and s.name == "runtime.v1.RuntimeService/RunPodSandbox"
                   and s.trace_id in traces for s in spans)

    assert node.sink.store.wait(joined, 30), f"no kubelet syncPod trace with {node.runtime}'s RunPodSandbox in it"

    log = node.log()
    failed = [m.group(0) for m in CRI_ERROR.finditer(log) if not EXPECTED_CRI_ERROR.search(m.group(0))]
    assert not failed, "CRI calls that failed:\n" + "\n".join(failed)
    stats_errors = [m.group(0) for m in STATS_ERROR.finditer(log)]
    assert not stats_errors, "stats errors:\n" + "\n".join(stats_errors)
    # One container created: the kubelet did not re-create it on every sync.
    calls = node.calls()
    assert calls.count("CreateContainer") == 1, calls.count("CreateContainer")
    if "EventedPLEG" in (node.base / "kubelet-config.yaml").read_text():
        # (fake-containerd's GetContainerEvents span ends with the stream; the fallback lines below show it)
        assert "StreamContainers" in calls and (node.calls_file is None or "GetContainerEvents" in calls)
        assert "Fall back to Generic PLEG" not in log and "Evented PLEG: Failed" not in log
        assert "not implemented, falling back" not in log
