"""``cristack check``: runs a pod through the stack (on CRI-O, or on containerd) against a user's collector or Jaeger
and prints a pass/fail table of the expected trace edges found in Jaeger. Exit 0 only when all are there; what a
workshop attendee runs to check their pipeline."""

from __future__ import annotations

import tempfile
import urllib.parse
from pathlib import Path

from rich.console import Console
from rich.table import Table

from cristack.harness import expectations
from cristack.harness.assertions import find_trace, pod_start, pod_uid
from cristack.harness.backends import JaegerBackend
from cristack.harness.render.terminal import make_console
from cristack.harness.stack import Stack, StackOptions, example
from cristack.harness.tracequery import JaegerQuery
from cristack.otel.envcontext import EnvContext, jaeger_link


def default_otlp_endpoint(jaeger_url: str) -> str:
    """Jaeger's own OTLP gRPC port on the query URL's host."""
    host = urllib.parse.urlparse(jaeger_url).hostname or "127.0.0.1"
    return f"{host}:4317"


def run_check(jaeger_url: str, otlp_endpoint: str | None = None, pod: Path | None = None, runtime_type: str = "pod",
              timeout: float = 60.0, crio_tracing: bool = True, console: Console | None = None,
              parent: EnvContext | None = None, jaeger_ui: str | None = None, runtime: str = "crio") -> int:
    """``crio_tracing`` off: the node's runtime exports nothing (fake-crio and fake-conmon, or fake-containerd and
    its shims), so that the table shows what a broken pipeline looks like."""
    console = console or make_console()
    err = make_console(stderr=True)
    query = JaegerQuery(jaeger_url)
    if not query.ready():
        err.print(f"cristack check: no Jaeger query API answers at {jaeger_url}/api/services")
        return 2
    pod = pod or example("pods", "hello.yaml")
    if not pod.is_file():
        err.print(f"cristack check: {pod}: no such pod manifest")
        return 2
    endpoint = otlp_endpoint or default_otlp_endpoint(jaeger_url)
    with tempfile.TemporaryDirectory(prefix="cristack-check-") as tmp:
        stack = Stack(Path(tmp), StackOptions(runtime=runtime, runtime_type=runtime_type, otlp_endpoint=endpoint,
                                              relist_period="0.2s", crio_tracing=crio_tracing,
                                              conmon_tracing=crio_tracing))
        if parent is not None and parent.context is not None:
            stack.opts.traceparent, stack.opts.tracestate = parent.traceparent, parent.tracestate
        uid = stack.add_unique_manifest(pod)
        console.print(f"cristack check: running {pod.name} (uid {uid}) through {stack.chain}, traces to "
                      f"{endpoint}, querying {jaeger_url}")
        try:
            stack.start_runtime()
            rc = stack.start_kubelet(runonce=True).popen.wait(timeout)
        except Exception as e:  # noqa: BLE001 - reported, not raised
            err.print(f"cristack check: the stack failed: {e}")
            stack.stop()
            return 1
        stack.stop()
    if rc != 0:
        err.print("cristack check: the pod itself failed; traces are checked all the same")
    found = find_trace(JaegerBackend.kubelet_syncs(jaeger_url), pod_start(runtime_type, runtime=runtime),
                       match=pod_uid(uid), timeout=timeout, grace=10)
    trace = found.trace.spans
    rows = expectations.check(trace, expectations.shape(runtime, runtime_type))
    table = Table(title=f"expected edges in Jaeger (trace {trace[0].trace_id if trace else 'not found'})",
                  title_justify="left")
    table.add_column("", no_wrap=True)
    table.add_column("parent", overflow="fold")
    table.add_column("child", overflow="fold")
    for edge, ok in rows:
        table.add_row("[green]PASS[/green]" if ok else "[red]FAIL[/red]", f"{edge.parent_service}: {edge.parent}",
                      f"{edge.child_service}: {edge.child}")
    console.print(table)
    if trace:
        link = jaeger_link(jaeger_ui or jaeger_url, trace[0].trace_id)
        console.print(f"pod start: trace {trace[0].trace_id}  {link}", highlight=False, soft_wrap=True)
    missing = [e for e, ok in rows if not ok]
    if not trace:
        console.print(f"FAIL: no syncPod trace for pod uid {uid} reached {jaeger_url} within {timeout:g}s")
        return 1
    if missing:
        for edge in missing:
            console.print(f"missing: {edge}", highlight=False)
        services = sorted({s.service for s in trace})
        console.print(f"FAIL: {len(missing)} of {len(rows)} edges missing; services in the trace: {services}")
        return 1
    console.print(f"PASS: all {len(rows)} edges found")
    return 0
