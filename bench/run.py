"""The benchmark harness: every figure of docs/benchmarks.md, measured in one run.

    python -m bench.run            # make bench: the full run (about 18 minutes on 2 cores)
    python -m bench.run --quick    # make bench-quick: fewer iterations, for development

The machines are shared and noisy: A/B pairs are interleaved in blocks, figures are medians
(p50) with p99 beside them, and comparisons are ratios from the same run.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import grpc

from bench.driver import Driver
from bench.report import Report, Row, merge, verdict, write
from bench.stats import cpu_seconds, cpu_ticks, ms, p50, pct, rss_kb, stolen_share
from cristack.gcpolicy import tune_for_service
from cristack.harness.assertions import find_trace, pod_start, pod_uid, spans_from
from cristack.harness.backends import JaegerBackend
from cristack.harness.jaeger import Jaeger, jaeger_binary, start_jaeger
from cristack.harness.procs import component_argv, find_tool
from cristack.harness.stack import Stack, StackOptions, example
from cristack.wire.endpoints import free_ports, parse_endpoint, serving
from cristack.wire.pb.runtime.v1 import api_pb2 as pb
from cristack.wire.pb.runtime.v1 import api_pb2_grpc as pbgrpc

REPO = Path(__file__).resolve().parent.parent


class Bench:
    def __init__(self, quick: bool, base: Path) -> None:
        self.quick = quick
        self.base = base
        self.report = Report()
        binary = jaeger_binary()
        if binary is None:
            raise SystemExit("bench: the jaeger binary is missing; run `make tools`")
        self.jaeger: Jaeger = start_jaeger(binary, base / "jaeger")
        self._n = 0
        self.stacks: list[Stack] = []

    def stack(self, **options) -> Stack:
        self._n += 1
        opts = StackOptions(log_level="warn", relist_period="1s", gc_period="1m")
        for k, v in options.items():
            setattr(opts, k, v)
        s = Stack(self.base / f"stack{self._n}", opts)
        self.stacks.append(s)
        s.start_runtime()
        return s

    def n(self, full: int, quick: int) -> int:
        return quick if self.quick else full

    # 1. Per-RPC floor --------------------------------------------------------------------

    def _echo(self) -> tuple[subprocess.Popen, str]:
        """The bare grpc.aio server of bench/echo_server.py, serving; returns it and its target."""
        sock = self.base / "echo.sock"
        echo = subprocess.Popen([sys.executable, "-m", "bench.echo_server", f"unix://{sock}"], cwd=REPO)
        deadline = time.monotonic() + 10
        while not serving(parse_endpoint(str(sock))) and time.monotonic() < deadline:
            time.sleep(0.05)
        return echo, f"unix://{sock}"

    def rpc_floor(self) -> None:
        sec = "1. Per-RPC floor: CRI Version round trip"
        print(sec, flush=True)
        stack = self.stack(runtime_type="oci")
        echo, echo_target = self._echo()
        rounds, per = self.n(20, 6), 200

        async def measure(target: str, count: int) -> list[float]:
            async with grpc.aio.insecure_channel(target) as ch:
                stub = pbgrpc.RuntimeServiceStub(ch)
                await stub.Version(pb.VersionRequest())
                out = []
                for _ in range(count):
                    t = time.perf_counter()
                    await stub.Version(pb.VersionRequest())
                    out.append(time.perf_counter() - t)
                return out

        crio_t, echo_t = [], []
        for _ in range(rounds):  # interleaved A/B blocks
            crio_t += asyncio.run(measure(stack.crio_endpoint, per))
            echo_t += asyncio.run(measure(echo_target, per))
        echo.send_signal(signal.SIGTERM)
        echo.wait(5)
        ratio = p50(crio_t) / p50(echo_t)
        self.report.add(sec, Row("fake-crio Version p50 / p99", f"{ms(p50(crio_t)) * 1000:.0f} µs / "
                                 f"{ms(pct(crio_t, 99)) * 1000:.0f} µs ({len(crio_t)} calls)"))
        self.report.add(sec, Row("bare grpc.aio echo p50 / p99", f"{ms(p50(echo_t)) * 1000:.0f} µs / "
                                 f"{ms(pct(echo_t, 99)) * 1000:.0f} µs ({len(echo_t)} calls)"))
        self.report.add(sec, Row("our overhead over the floor (p50 ratio)", f"{ratio:.2f}×", "≤ 1.5×",
                                 verdict(ratio <= 1.5)))
        crictl = find_tool("crictl")
        if crictl:
            cfg = self.base / "crictl.yaml"
            cfg.write_text(f"runtime-endpoint: {stack.crio_endpoint}\nimage-endpoint: {stack.crio_endpoint}\n")
            times = []
            for _ in range(self.n(30, 10)):
                t = time.perf_counter()
                subprocess.run([crictl, "--config", str(cfg), "version"], capture_output=True, check=True)
                times.append(time.perf_counter() - t)
            self.report.add(sec, Row("`crictl version` (whole process) p50 / p99",
                                     f"{ms(p50(times)):.1f} ms / {ms(pct(times, 99)):.1f} ms",
                                     note="dominated by starting the crictl process"))
        stack.stop()

    # 2. Pod start latency, tracing off vs on; 5. outage cost ---------------------------------

    def _starts(self, stack: Stack, otlp: str | None, count: int, live: int = 20) -> list[float]:
        """``count`` pod starts on ``stack``, each pod removed once ``live`` newer ones run."""
        async def go() -> list[float]:
            async with Driver(stack.cri_endpoint, str(stack.pod_logs), otlp) as d:
                times, sids = [], []
                for _ in range(count):
                    t, sid, _ = await d.start_pod()
                    times.append(t)
                    sids.append(sid)
                    if len(sids) > live:
                        await d.remove_pod(sids.pop(0))
                for sid in sids:
                    await d.remove_pod(sid)
                return times

        return asyncio.run(go())

    def pod_start(self) -> None:
        sec = "2. Pod start latency (RunPodSandbox sent → StartContainer returned) and 5. outage cost"
        print(sec, flush=True)
        dead = f"127.0.0.1:{free_ports(1)[0]}"
        jaeger = self.jaeger.otlp_endpoint
        stacks = {
            "off": (self.stack(), None),
            "on": (self.stack(otlp_endpoint=jaeger), jaeger),
            "down": (self.stack(otlp_endpoint=dead), dead),
            # The same starts on a containerd node, in the same blocks: fake-containerd starts a shim process per
            # pod, as containerd starts containerd-shim-runc-v2, so fewer pods a block, and at most 4 running
            # (each shim is a Python process of its own, some 45 MiB).
            "containerd off": (self.stack(runtime="containerd"), None),
            "containerd on": (self.stack(runtime="containerd", otlp_endpoint=jaeger), jaeger),
        }
        blocks = self.n(10, 4)
        per = {"containerd off": 10, "containerd on": 10}
        times: dict[str, list[float]] = {k: [] for k in stacks}
        for _ in range(blocks):
            for name, (stack, otlp) in stacks.items():
                times[name] += self._starts(stack, otlp, per.get(name, 25), live=4 if name in per else 20)
        off, on, down = (p50(times[k]) for k in ("off", "on", "down"))
        for name, label in (("off", "tracing off"), ("on", "tracing on at 1000000 (to Jaeger)"),
                            ("down", "tracing on, OTLP endpoint unreachable")):
            self.report.add(sec, Row(f"pod start p50 / p99, {label}",
                                     f"{ms(p50(times[name])):.1f} ms / {ms(pct(times[name], 99)):.1f} ms "
                                     f"({len(times[name])} pods)"))
        self.report.add(sec, Row("tracing overhead (p50 on / off)", f"{on / off:.2f}×", "≤ 1.10×",
                                 verdict(on / off <= 1.10)))
        self.report.add(sec, Row("pod start p50 with tracing on", f"{ms(on):.1f} ms", "≤ 20 ms",
                                 verdict(ms(on) <= 20)))
        self.report.add(sec, Row("outage cost (p50 unreachable / reachable)", f"{down / on:.2f}×", "≤ 1.05×",
                                 verdict(down / on <= 1.05)))
        c_off, c_on = p50(times["containerd off"]), p50(times["containerd on"])
        for name, label in (("containerd off", "tracing off"), ("containerd on", "tracing on (to Jaeger)")):
            self.report.add(sec, Row(f"containerd node: pod start p50 / p99, {label}",
                                     f"{ms(p50(times[name])):.1f} ms / {ms(pct(times[name], 99)):.1f} ms "
                                     f"({len(times[name])} pods)"))
        self.report.add(sec, Row("containerd node: tracing overhead (p50 on / off)", f"{c_on / c_off:.2f}×",
                                 note="containerd's spans and its shims' (shim_tracing build)"))
        self.report.add(sec, Row("pod start p50, containerd / CRI-O node (tracing on)", f"{c_on / on:.1f}×",
                                 note="a containerd pod's start includes starting its shim, a process of its own "
                                      "(here a Python interpreter); a CRI-O pod's monitor is the running "
                                      "fake-conmon"))
        for name in ("on", "down", "containerd on"):
            stack = stacks[name][0]
            stack.start_kubelet()
            time.sleep(1.5)
            took = stack.stop()
            worst = max(took.values())
            what = {"on": "endpoint reachable", "down": "endpoint down",
                    "containerd on": "containerd node, endpoint reachable"}[name]
            self.report.add(sec, Row(f"exit on SIGTERM, {what}",
                                     ", ".join(f"{k} {v:.2f} s" for k, v in took.items()), "≤ 2 s",
                                     verdict(worst <= 2)))
        stacks["off"][0].stop()
        stacks["containerd off"][0].stop()

    # 3. Full lifecycle with the real kubelet ---------------------------------------------

    def lifecycle(self) -> None:
        sec = "3. Full lifecycle with fake-kubelet (manifest added → container exited → pod removed)"
        print(sec, flush=True)
        # The same on a containerd node (relist 1 s), in the same run.
        for runtime, relist in (("crio", "1s"), ("crio", "0.1s"), ("containerd", "1s")):
            stack = self.stack(runtime=runtime, relist_period=relist, gc_period="0.5s", file_check_frequency="0.1s")
            stack.start_kubelet()
            exited_t, removed_t = [], []
            with grpc.insecure_channel(stack.cri_endpoint) as ch:
                rt = pbgrpc.RuntimeServiceStub(ch)
                for i in range(self.n(8, 3)):
                    path = stack.manifests / f"life{i}.yaml"
                    t0 = time.monotonic()
                    path.write_text(f"apiVersion: v1\nkind: Pod\nmetadata: {{name: life{i}}}\nspec:\n"
                                    "  restartPolicy: Never\n  containers: [{name: c, image: busybox, "
                                    "imagePullPolicy: IfNotPresent, command: [echo, hi]}]\n")
                    exited = removed = None
                    deadline = t0 + 30
                    while time.monotonic() < deadline and removed is None:
                        ctrs = [c for c in rt.ListContainers(pb.ListContainersRequest()).containers
                                if c.labels.get("io.kubernetes.pod.name") == f"life{i}"]
                        pods = [p for p in rt.ListPodSandbox(pb.ListPodSandboxRequest()).items
                                if p.metadata.name == f"life{i}"]
                        if exited is None and ctrs and all(c.state == pb.CONTAINER_EXITED for c in ctrs):
                            exited = time.monotonic() - t0
                            # A finished static pod keeps its sandbox while its manifest is there (the kubelet's
                            # GC removes only deleted pods' sandboxes): the user removes the manifest.
                            path.unlink()
                            t_removed = time.monotonic()
                        if exited is not None and not pods:
                            removed = time.monotonic() - t_removed
                        time.sleep(0.02)
                    if exited is not None:
                        exited_t.append(exited)
                    if removed is not None:
                        removed_t.append(removed)
            stack.stop()
            node = "containerd node, " if runtime == "containerd" else ""
            self.report.add(sec, Row(f"{node}relist {relist}: to container exited p50", f"{p50(exited_t):.2f} s"))
            self.report.add(sec, Row(f"{node}relist {relist}: manifest removed → pod removed p50",
                                     f"{p50(removed_t):.2f} s ({len(removed_t)} pods; GC period 0.5 s)"))

    # 4. Throughput ------------------------------------------------------------------------

    def throughput(self) -> None:
        sec = "4. Throughput (pod starts per second, sustained; tracing on at 1000000)"
        print(sec, flush=True)
        duration = self.n(30, 5)
        for conc in (1, 10, 50):
            stack = self.stack(otlp_endpoint=self.jaeger.otlp_endpoint)

            async def go(stack: Stack = stack, conc: int = conc) -> int:
                async with Driver(stack.crio_endpoint, str(stack.pod_logs), self.jaeger.otlp_endpoint) as d:
                    end = time.monotonic() + duration
                    done = 0

                    async def worker() -> None:
                        nonlocal done
                        while time.monotonic() < end:
                            await d.lifecycle()
                            done += 1

                    await asyncio.gather(*(worker() for _ in range(conc)))
                    return done

            started = time.monotonic()
            count = asyncio.run(go())
            rate = count / (time.monotonic() - started)
            stack.stop()
            target = "≥ 50/s" if conc == 10 else ""
            self.report.add(sec, Row(f"concurrency {conc}", f"{rate:.1f} pods/s ({count} pods in {duration} s)",
                                     target, verdict(rate >= 50) if target else ""))

    # 6. Start-up and memory --------------------------------------------------------------

    def startup_memory(self) -> None:
        sec = "6. Start-up and memory"
        print(sec, flush=True)
        times = []
        for _ in range(self.n(5, 2)):
            self._n += 1
            port = free_ports(1)[0]
            s = Stack(self.base / f"stack{self._n}", StackOptions(otlp_endpoint=self.jaeger.otlp_endpoint,
                                                                   kubelet_config={"readOnlyPort": port}))
            self.stacks.append(s)
            t0 = time.monotonic()
            s.start()
            while True:
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1):
                        break
                except OSError:
                    time.sleep(0.01)
            times.append(time.monotonic() - t0)
            s.stop()
        self.report.add(sec, Row("launch → all three serving (p50)", f"{p50(times):.2f} s", "≤ 1.5 s",
                                 verdict(p50(times) <= 1.5)))
        walls = []
        for _ in range(self.n(3, 1)):
            t0 = time.monotonic()
            subprocess.run(component_argv("cristack", "demo", "--quiet"), capture_output=True, check=True)
            walls.append(time.monotonic() - t0)
        self.report.add(sec, Row("`cristack demo` wall time (p50)", f"{p50(walls):.2f} s", "≤ 5 s",
                                 verdict(p50(walls) <= 5)))
        stack = self.stack(otlp_endpoint=self.jaeger.otlp_endpoint)
        stack.start_kubelet()
        pods = self.n(1000, 200)

        async def go() -> None:
            async with Driver(stack.crio_endpoint, str(stack.pod_logs), self.jaeger.otlp_endpoint) as d:
                sem = asyncio.Semaphore(10)

                async def one() -> None:
                    async with sem:
                        await d.lifecycle()

                await asyncio.gather(*(one() for _ in range(pods)))

        asyncio.run(go())
        time.sleep(2)  # a couple of relists of the kubelet over what is left
        peaks = {name: rss_kb(getattr(stack, name).pid, peak=True) for name in ("conmon", "crio", "kubelet")}
        total = sum(peaks.values()) / 1024
        stack.stop()
        self.report.add(sec, Row(f"peak RSS after {pods} pods", ", ".join(f"{k} {v / 1024:.0f} MB"
                                                                          for k, v in peaks.items())))
        self.report.add(sec, Row("three processes together (peak RSS)", f"{total:.0f} MB", "≤ 200 MB",
                                 verdict(total <= 200)))

    # 7. Growth ----------------------------------------------------------------------------

    def growth(self) -> None:
        sec = "7. Growth with live pods (running containers)"
        print(sec, flush=True)
        from fake_kubelet.cri import CriClient
        from fake_kubelet.pleg import Pleg, StatusCache

        base_p50 = None
        for live in (10, 100, self.n(1000, 300)):
            stack = self.stack(otlp_endpoint=self.jaeger.otlp_endpoint)

            async def go(stack: Stack = stack, live: int = live) -> tuple[list[float], float, float]:
                async with Driver(stack.crio_endpoint, str(stack.pod_logs), self.jaeger.otlp_endpoint) as d:
                    sem = asyncio.Semaphore(20)

                    async def one() -> None:
                        async with sem:
                            await d.start_pod()

                    await asyncio.gather(*(one() for _ in range(live)))
                    starts = []
                    for _ in range(30):
                        t, sid, _ = await d.start_pod()
                        starts.append(t)
                        await d.remove_pod(sid)
                    cri = CriClient(parse_endpoint(stack.crio_endpoint), 60.0)
                    pleg = Pleg(cri, StatusCache(), 1.0, lambda uid: None)
                    await pleg.relist()  # the first relist fetches every pod's status
                    crio_pid = stack.crio.pid
                    # /proc counts CPU in 10 ms ticks: time many relists and divide.
                    rounds = 40
                    c0, t0 = time.process_time(), cpu_seconds(crio_pid)
                    for _ in range(rounds):
                        await pleg.relist()
                    ours = (time.process_time() - c0) / rounds
                    theirs = (cpu_seconds(crio_pid) - t0) / rounds
                    await cri.close()
                    return starts, ours, theirs

            starts, kubelet_cpu, crio_cpu = asyncio.run(go())
            stack.stop()
            start_p50 = p50(starts)
            base_p50 = base_p50 or start_p50
            self.report.add(sec, Row(f"{live} live pods: pod start p50", f"{ms(start_p50):.1f} ms "
                                     f"({start_p50 / base_p50:.2f}× the 10-pod figure)",
                                     "≤ 1.5× at 1000" if live >= 300 else "",
                                     verdict(start_p50 / base_p50 <= 1.5) if live >= 300 else ""))
            total = kubelet_cpu + crio_cpu
            self.report.add(sec, Row(f"{live} live pods: CPU of one steady relist",
                                     f"{ms(total):.1f} ms (kubelet {ms(kubelet_cpu):.1f} ms + "
                                     f"crio {ms(crio_cpu):.1f} ms)",
                                     "≤ 20 ms at 1000" if live >= 300 else "",
                                     verdict(ms(total) <= 20) if live >= 300 else ""))

    # 9. PLEG under churn --------------------------------------------------------------------

    def churn(self) -> None:
        """A relist in which every pod changed (each needs its PodSandboxStatus and ContainerStatus
        calls, as the real kubelet makes them), beside the steady relist over the same pods."""
        sec = "9. PLEG under churn (wall time of one relist; every pod changed vs nothing changed; tracing on)"
        print(sec, flush=True)
        from fake_kubelet.cri import CriClient
        from fake_kubelet.pleg import STATUS_CONCURRENCY, Pleg, StatusCache

        # The floor: as many calls as the relist's status calls, as many at a time, to a Python gRPC server with
        # no logic and no spans, from a client with no spans. No relist of ours can be faster on this machine.
        echo, echo_target = self._echo()

        async def floor(calls: int) -> float:
            async with grpc.aio.insecure_channel(echo_target) as ch:
                stub = pbgrpc.RuntimeServiceStub(ch)
                await stub.Version(pb.VersionRequest())
                gate = asyncio.Semaphore(STATUS_CONCURRENCY)

                async def one() -> None:
                    async with gate:
                        await stub.Version(pb.VersionRequest())

                t = time.perf_counter()
                await asyncio.gather(*(one() for _ in range(calls)))
                return time.perf_counter() - t

        for live in sorted({200, self.n(1000, 300)}):
            took = [asyncio.run(floor(2 * live)) for _ in range(self.n(5, 2))]
            self.report.add(sec, Row(f"{live} pods: floor, {2 * live} bare gRPC calls ({STATUS_CONCURRENCY} at a time) "
                                     "to a server with no logic and no spans (p50)", f"{p50(took):.3f} s"))
        echo.send_signal(signal.SIGTERM)
        echo.wait(5)
        for live, otlp in ((200, self.jaeger.otlp_endpoint), (self.n(1000, 300), self.jaeger.otlp_endpoint),
                           (self.n(1000, 300), None)):
            stack = self.stack(otlp_endpoint=otlp)

            async def go(stack: Stack = stack, live: int = live, otlp: str | None = otlp
                         ) -> tuple[list[float], list[float]]:
                async with Driver(stack.crio_endpoint, str(stack.pod_logs), otlp) as d:
                    sem = asyncio.Semaphore(20)

                    async def one() -> None:
                        async with sem:
                            await d.start_pod()

                    await asyncio.gather(*(one() for _ in range(live)))
                    cri = CriClient(parse_endpoint(stack.crio_endpoint), 60.0, tracer=d.cri.tracer)
                    churn, steady = [], []
                    for _ in range(self.n(5, 2)):
                        # A PLEG that has seen nothing: every pod counts as changed, as when every
                        # container of the node changed state between two relists.
                        pleg = Pleg(cri, StatusCache(), 1.0, lambda uid: None)
                        t = time.perf_counter()
                        await pleg.relist()
                        churn.append(time.perf_counter() - t)
                        for _ in range(5):
                            t = time.perf_counter()
                            await pleg.relist()
                            steady.append(time.perf_counter() - t)
                    await cri.close()
                    return churn, steady

            churn, steady = asyncio.run(go())
            stack.stop()
            target = {200: 0.5, 1000: 2.0}.get(live) if otlp else None
            label = f"{live} pods" + ("" if otlp else ", tracing off")
            self.report.add(sec, Row(f"{label}: relist in which every pod changed (p50 / max)",
                                     f"{p50(churn):.3f} s / {max(churn):.3f} s ({len(churn)} relists)",
                                     f"≤ {target} s" if target else "",
                                     verdict(p50(churn) <= target) if target else ""))
            self.report.add(sec, Row(f"{label}: steady relist, nothing changed (p50)",
                                     f"{ms(p50(steady)):.1f} ms ({len(steady)} relists)"))

    # 8. HotROD side by side ---------------------------------------------------------------

    def hotrod(self) -> None:
        sec = "8. Side by side with Jaeger's HotROD (launch → first complete trace queryable in Jaeger)"
        print(sec, flush=True)
        binary = find_tool("hotrod")
        if binary is None:
            self.report.add(sec, Row("HotROD", "not measured: run `./scripts/install-tools.sh hotrod`"))
            return
        frontend = JaegerBackend(self.jaeger.query_url, services=("frontend",))
        hot, ours = [], []
        rss_hot = rss_ours = 0.0
        for _ in range(self.n(3, 1)):
            c, d, f, r = free_ports(4)
            env = {**os.environ, "OTEL_EXPORTER_OTLP_ENDPOINT": self.jaeger.otlp_http,
                   "OTEL_EXPORTER_OTLP_INSECURE": "true"}
            t0, wall0 = time.monotonic(), time.time_ns()
            proc = subprocess.Popen([binary, "all", "-c", str(c), "-d", str(d), "-f", str(f), "-r", str(r)],
                                    env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            while True:  # the first request as soon as the frontend answers
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{f}/dispatch?customer=123", timeout=5):
                        break
                except OSError:
                    time.sleep(0.02)
            wanted = {"frontend", "customer", "driver", "route", "mysql", "redis-manual"}
            find_trace(frontend, spans_from(*wanted), timeout=60, poll=0.05,
                       match=lambda t, since=wall0: min(x.start for x in t) >= since)
            hot.append(time.monotonic() - t0)
            rss_hot = max(rss_hot, rss_kb(proc.pid) / 1024)
            proc.terminate()
            proc.wait(10)

            self._n += 1
            s = Stack(self.base / f"stack{self._n}", StackOptions(otlp_endpoint=self.jaeger.otlp_endpoint))
            self.stacks.append(s)
            t0 = time.monotonic()
            uid = s.add_unique_manifest(example("pods", "hello.yaml"))
            s.start()
            find_trace(self.jaeger.backend, pod_start(), match=pod_uid(uid), timeout=60, poll=0.05)
            ours.append(time.monotonic() - t0)
            rss_ours = max(rss_ours, sum(rss_kb(getattr(s, n).pid) for n in ("conmon", "crio", "kubelet")) / 1024)
            s.stop()
        self.report.add(sec, Row("HotROD `hotrod all` + one /dispatch", f"{p50(hot):.2f} s, RSS {rss_hot:.0f} MB"))
        self.report.add(sec, Row("cristack (three processes) + one pod", f"{p50(ours):.2f} s, RSS {rss_ours:.0f} MB",
                                 "no later than HotROD", verdict(p50(ours) <= p50(hot))))

    # 10. Many nodes: cristack load (issue 21) -------------------------------------------------

    def load_ceiling(self) -> None:
        from bench.load_bench import report

        report(self, "10. Many nodes (`cristack load`): spans per second per node, and the N/R ceiling")

    # 11. A fleet of nodes from one process: cristack fleet (issue 30) ------------------------------

    def fleet(self) -> None:
        from bench.fleet_bench import report

        report(self, "11. A fleet from one process (`cristack fleet`) beside telemetrygen and a live node")

    # 12. The trace sink beside Jaeger (issue 27) ----------------------------------------------------------

    def sink(self) -> None:
        from bench.sink_bench import report

        report(self, "12. The trace sink beside Jaeger v2 (memory storage), fed the same OTLP/HTTP load")

    def close(self) -> None:
        for stack in self.stacks:  # whatever a failed part left running
            stack.stop()
        self.jaeger.stop()


def main() -> None:
    parser = argparse.ArgumentParser(prog="bench")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--only", nargs="*", help="run only these parts (rpc_floor pod_start lifecycle ...)")
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "benchmarks.md")
    args = parser.parse_args()
    # The driver in this process stands in for fake-kubelet's CRI client: its collector is set as fake-kubelet's.
    tune_for_service()
    base = Path(tempfile.mkdtemp(prefix="cristack-bench-"))
    started, ticks = time.monotonic(), cpu_ticks()
    bench = Bench(args.quick, base)
    parts = args.only or ["rpc_floor", "pod_start", "lifecycle", "throughput", "startup_memory", "growth", "churn",
                            "hotrod", "load_ceiling", "fleet", "sink"]
    try:
        for part in parts:
            getattr(bench, part)()
    finally:
        bench.close()
        shutil.rmtree(base, ignore_errors=True)
    command = "make bench-quick" if args.quick else "make bench"
    if args.only:
        command = f"python -m bench.run {'--quick ' if args.quick else ''}--only {' '.join(args.only)}"
    if args.only:  # the other sections stay as the last full run measured them
        merge(bench.report, args.out, command)
    else:
        write(bench.report, args.out, command, time.monotonic() - started, args.quick,
              stolen_share(ticks, cpu_ticks()), notes=REPO / "docs" / "benchmarks-notes.md")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
