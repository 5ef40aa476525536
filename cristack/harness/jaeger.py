"""Running a real Jaeger v2 (the binary `make tools` builds) with in-memory storage on free
loopback ports, for end-to-end tests and benchmarks."""

from __future__ import annotations

import os
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from cristack.harness.backends import JaegerBackend
from cristack.harness.procs import find_tool
from cristack.harness.tracequery import JaegerQuery
from cristack.lifeline import stop_process
from cristack.wire.endpoints import free_ports

CONFIG = """\
service:
  extensions: [jaeger_storage, jaeger_query, healthcheckv2]
  pipelines:
    traces:
      receivers: [otlp]
      processors: [batch]
      exporters: [jaeger_storage_exporter]
  telemetry:
    resource:
      service.name: jaeger
    metrics:
      level: none
    logs:
      level: warn
extensions:
  jaeger_query:
    storage:
      traces: memstore
    http:
      endpoint: {host}:{query_http}
    grpc:
      endpoint: {host}:{query_grpc}
  jaeger_storage:
    backends:
      memstore:
        memory:
          max_traces: 100000
  healthcheckv2:
    use_v2: true
    http:
      endpoint: {host}:{health}
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: {host}:{otlp_grpc}
      http:
        endpoint: {host}:{otlp_http}
processors:
  batch:
    timeout: 100ms
exporters:
  jaeger_storage_exporter:
    trace_storage: memstore
"""


def jaeger_binary() -> str | None:
    """CRISTACK_JAEGER_BIN, then .tools/bin/jaeger of this checkout, then PATH."""
    return os.environ.get("CRISTACK_JAEGER_BIN") or find_tool("jaeger")


@dataclass
class Jaeger:
    """A Jaeger to send to and query: one we started, or an external one."""

    otlp_endpoint: str
    query_url: str
    proc: subprocess.Popen | None = None
    otlp_http: str = ""  # http://HOST:PORT of the OTLP/HTTP receiver, when we know it
    log_path: Path | None = None
    config_path: Path | None = None
    argv: list[str] = field(default_factory=list)

    @property
    def query(self) -> JaegerQuery:
        return JaegerQuery(self.query_url)

    @property
    def backend(self) -> JaegerBackend:
        """Its pod traces (the kubelet's syncPod traces) for ``wait_for_trace(pod_start(), match=pod_uid(uid))``."""
        return JaegerBackend.kubelet_syncs(self.query_url, self.otlp_endpoint)

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path and self.log_path.exists() else ""

    def wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"jaeger exited with {self.proc.returncode}:\n{self.log_text()[-3000:]}")
            if self.query.ready():
                return
            time.sleep(0.1)
        raise TimeoutError(f"jaeger query API at {self.query_url} not ready within {timeout}s")

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc, 10)

    def restart(self) -> None:
        """Starts (again) the same binary with the same config and ports."""
        self.stop()
        assert self.log_path is not None
        with self.log_path.open("ab") as out:
            self.proc = subprocess.Popen(self.argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        self.wait_ready()


def start_jaeger(binary: str, workdir: Path, *, wait: bool = True, launch: bool = True) -> Jaeger:
    """Starts Jaeger's all-in-one with in-memory storage on free loopback ports.

    ``launch=False`` only picks the ports and writes the config: ``restart()`` starts it later
    (for tests of a stack that comes up before its Jaeger)."""
    workdir.mkdir(parents=True, exist_ok=True)
    otlp_grpc, otlp_http, query_http, query_grpc, health = free_ports(5)
    config = workdir / "jaeger.yaml"
    config.write_text(CONFIG.format(host="127.0.0.1", otlp_grpc=otlp_grpc, otlp_http=otlp_http,
                                    query_http=query_http, query_grpc=query_grpc, health=health))
    log_path = workdir / "jaeger.log"
    argv = [binary, "--config", str(config)]
    j = Jaeger(f"127.0.0.1:{otlp_grpc}", f"http://127.0.0.1:{query_http}", None,
               f"http://127.0.0.1:{otlp_http}", log_path, config, argv)
    if not launch:
        return j
    with log_path.open("ab") as out:
        j.proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    if wait:
        try:
            j.wait_ready()
        except Exception:
            j.stop()
            raise
    return j


def external_jaeger() -> Jaeger | None:
    """The Jaeger named by CRISTACK_JAEGER_QUERY_URL and CRISTACK_OTLP_ENDPOINT, if set."""
    url = os.environ.get("CRISTACK_JAEGER_QUERY_URL")
    if not url:
        return None
    return Jaeger(os.environ.get("CRISTACK_OTLP_ENDPOINT", "127.0.0.1:4317"), url)
