"""The Kata-style VM runtime: agent spans through the trace forwarder, and how each part
behaves when the other is missing. (The full trace is checked by the kata scenario test.)"""

from __future__ import annotations

import json
import socket
import subprocess
import time

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cristack.harness.procs import component_argv
from cristack.wire.frames import HEADER, MAX_FRAME, Decoder, FrameError, encode
from cristack.wire.pb.runtime.v1 import api_pb2 as pb
from tests.conftest import container_config, free_port, pod_config, start_crio
from tests.support.criops import wait_exited


def test_without_a_forwarder_the_workload_runs_and_the_agent_logs_one_error(tmp_path):
    config = tmp_path / "configuration.toml"
    config.write_text('[runtime]\nenable_tracing = true\n[agent.kata]\nenable_tracing = true\nenable_debug = true\n'
                      f'[cristack]\ntrace_forwarder = "unix://{tmp_path}/nobody.sock"\n')
    conf = tmp_path / "crio.conf"
    conf.write_text(f'[crio.runtime.runtimes.crun]\nruntime_type = "oci"\n'
                    f'[crio.runtime.runtimes.kata]\nruntime_type = "vm"\nruntime_config_path = "{config}"\n')
    crio = start_crio(tmp_path, "--enable-tracing", "--tracing-endpoint", f"127.0.0.1:{free_port()}",
                      "--tracing-sampling-rate-per-million", "1000000", config=conf)
    try:
        rt = crio.runtime()
        crio.images().PullImage(pb.PullImageRequest(image=pb.ImageSpec(image="busybox")))
        sid = rt.RunPodSandbox(pb.RunPodSandboxRequest(config=pod_config("vm", "vm-uid"),
                                                       runtime_handler="kata")).pod_sandbox_id
        for i in range(3):
            cid = rt.CreateContainer(pb.CreateContainerRequest(pod_sandbox_id=sid, config=container_config(
                f"c{i}", command=["echo", "in the vm"]))).container_id
            rt.StartContainer(pb.StartContainerRequest(container_id=cid))
            assert wait_exited(rt, cid).exit_code == 0
        # The agent logs every dropped batch at debug: once two have been tried, a repeated error would show.
        log_path = next((crio.dir / "runroot" / "vms").glob("*/agent.log"))
        deadline = time.monotonic() + 30
        while log_path.read_text().count("agent span(s) dropped") < 2:
            assert time.monotonic() < deadline, log_path.read_text()
            time.sleep(0.05)
        agent_log = log_path.read_text()
        errors = [line for line in agent_log.splitlines() if "no trace forwarder at" in line]
        assert len(errors) == 1, agent_log
        rt.StopPodSandbox(pb.StopPodSandboxRequest(pod_sandbox_id=sid))
    finally:
        crio.close()


def test_forwarder_refuses_to_start_without_a_collector(tmp_path):
    proc = subprocess.run(component_argv("cristack", "trace-forwarder", "--listen", f"unix://{tmp_path}/f.sock",
                                         "--otlp-endpoint", f"127.0.0.1:{free_port()}"),
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 1
    assert "cannot reach the collector" in proc.stdout + proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr


def test_forwarder_survives_garbage_and_forwards_good_frames(tmp_path, sink):
    """Kata's framing: one SpanData JSON document per frame; the forwarder re-exports as kata-agent."""
    from cristack.harness.procs import start
    from cristack.wire.endpoints import parse_endpoint

    sock = tmp_path / "f.sock"
    proc = start("cristack", ["trace-forwarder", "--listen", f"unix://{sock}", "--otlp-endpoint",
                              sink.addresses.otlp_endpoint], tmp_path / "forwarder.log",
                 endpoint=parse_endpoint(str(sock)))
    span_data = {"span_context": {"trace_id": "07" * 16, "span_id": "08" * 8, "trace_flags": 1, "is_remote": False,
                                  "trace_state": ""},
                 "parent_span_id": "09" * 8, "span_kind": "Internal", "name": "create_container",
                 "start_time": {"secs_since_epoch": 1, "nanos_since_epoch": 5},
                 "end_time": {"secs_since_epoch": 2, "nanos_since_epoch": 0},
                 "attributes": {"mod": "rpc.rs"}, "events": [], "links": [], "status_code": "Unset",
                 "status_message": "", "instrumentation_lib": {"name": "kata-agent", "version": None}}
    try:
        for garbage in (HEADER.pack(MAX_FRAME + 1), encode(b"\xff\xff not json"), encode(b'{"name": 1}'),
                        b"\x00\x00\x00"):
            with socket.socket(socket.AF_UNIX) as s:
                s.connect(str(sock))
                s.sendall(garbage)
        with socket.socket(socket.AF_UNIX) as s:
            s.connect(str(sock))
            s.sendall(encode(json.dumps(span_data).encode()))
        assert sink.store.wait(lambda st: any(x.name == "create_container" for x in st.spans()), 10)
        got = next(x for x in sink.store.spans() if x.name == "create_container")
        assert got.resource == {"service.name": "kata-agent", "exporter": "otlp"}
        assert (got.scope, got.parent_span_id, got.attributes) == ("kata-agent", "09" * 8, {"mod": "rpc.rs"})
        assert got.start == 1_000_000_005 and got.end == 2_000_000_000
        assert proc.popen.poll() is None
        assert proc.log_text().count("dropping an agent connection") >= 3
    finally:
        proc.stop()


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.lists(st.binary(max_size=64), max_size=8), st.integers(1, 17))
def test_frame_decoder_fuzzed(chunks, split):
    """Any bytes, in any chunking: whole frames come out, or FrameError; never anything else."""
    d = Decoder(max_frame=1024)
    try:
        for chunk in chunks:
            for i in range(0, len(chunk), split):
                for payload in d.feed(chunk[i:i + split]):
                    assert len(payload) <= 1024
        d.close()
    except FrameError:
        pass


@given(st.lists(st.binary(max_size=200), max_size=5), st.integers(1, 13))
def test_frames_round_trip(payloads, split):
    data = b"".join(encode(p) for p in payloads)
    d = Decoder()
    out = []
    for i in range(0, len(data), split):
        out += d.feed(data[i:i + split])
    d.close()
    assert out == payloads
