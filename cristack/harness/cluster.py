"""Several nodes on one machine: N independent stacks (each its own kubelet and runtime, sockets, state
and logs), named ``node-1``…``node-N``, each handing out pod IPs from its own slice of one cluster CIDR
(``cristack.harness.nodeplan``), all exporting to one OTLP endpoint. Nodes may run different runtimes (a list
dealt round-robin: ``crio, containerd`` gives node-1 CRI-O, node-2 containerd, node-3 CRI-O, ...). Used by
``cristack up --nodes N``, ``cristack demo --nodes N`` and ``cristack load``.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from cristack.harness.nodeplan import NodePlan, assign
from cristack.harness.procs import Proc
from cristack.harness.stack import Stack, StackOptions, runtime_label


class Cluster:
    """N stacks under ``base/<node name>``, started and stopped side by side; node i runs ``runtimes[i % len]``
    (default: ``options.runtime`` everywhere)."""

    def __init__(self, base: Path, plans: list[NodePlan], options: StackOptions, runtimes: Sequence[str] = ()) -> None:
        self.base = base
        self.plans = plans
        runtimes = tuple(runtimes) or (options.runtime,)
        # A node of its own is the base itself (a short socket path: a unix socket's path has at most 107 bytes,
        # and a StatefulSet pod's name may have 63); several each get a directory named for them.
        self.stacks = [Stack(base / plan.name if len(plans) > 1 else base,
                             replace(options, node_name=plan.name, pod_cidr=plan.pod_cidr,
                                     runtime=runtimes[i % len(runtimes)]))
                       for i, plan in enumerate(plans)]

    def describe(self) -> str:
        """What runs, for a banner: ``fake-kubelet → fake-containerd → shim (runtime containerd)``, or per node
        when they differ."""
        said = [f"{stack.chain} ({runtime_label(stack.opts.runtime, stack.opts.runtime_type)})"
                for stack in self.stacks]
        if len(set(said)) == 1:
            return said[0]
        return "; ".join(f"{plan.name}: {text}" for plan, text in zip(self.plans, said, strict=True))

    @property
    def shapes(self) -> set[str]:
        """The pod-start shapes of the nodes' traces (``Stack.shape``)."""
        return {stack.shape for stack in self.stacks}

    def __iter__(self):  # noqa: ANN204 - an iterator of (NodePlan, Stack)
        return iter(zip(self.plans, self.stacks, strict=True))

    def add_manifests(self, manifests: list[Path], spread: bool) -> None:
        """Gives each node its share of ``manifests`` (see ``assign``)."""
        for stack, share in zip(self.stacks, assign(manifests, len(self.stacks), spread), strict=True):
            for path in share:
                shutil.copyfile(path, stack.manifests / path.name)

    def start(self, *, runonce: bool = False) -> list[Proc]:
        """Starts every node's kubelet and runtime without waiting, then waits until every runtime serves
        (so that N nodes start in about the time of one). Returns the kubelets."""
        kubelets = [stack.start_kubelet(runonce=runonce) for stack in self.stacks]
        for stack in self.stacks:
            stack.spawn_runtime()
        try:
            for stack in self.stacks:
                stack.wait_runtime()
        except Exception:
            self.stop()
            raise
        return kubelets

    def alive(self) -> bool:
        """Whether every process of every node still runs."""
        return all(stack.alive() for stack in self.stacks)

    def stop(self) -> dict[str, float]:
        """Stops every node; all are told at once, so this takes as long as the slowest process. Returns the
        seconds each component kind took, at most over the nodes."""
        for stack in self.stacks:
            stack.terminate()
        started = time.monotonic()
        took: dict[str, float] = {}
        for stack in self.stacks:
            for name, proc in stack.procs():
                proc.stop()
                took[name] = max(took.get(name, 0.0), time.monotonic() - started)
        return took
