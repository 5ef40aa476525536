"""When a scenario's actions happen and when a timed run ends: conditions on what the run has shown so far, not on
the clock, so that a loaded machine changes how long a scenario takes, never what it shows.

A condition is one line in scenario.toml (an action's ``after``, the scenario's ``until``):

    pod-start POD       the sink holds POD's start trace (its first syncPod), complete: every span and edge
                        cristack.harness.expectations lists for the run's runtime (and CRI-O's runtime type)
    sync POD WORD [N]   the sink holds (N, default 1) syncPod traces of POD that stopped at the error WORD
                        (ImagePullBackOff) or made the CRI call WORD (StartContainer)
    spans NAME [N]      the sink holds at least N (default 1) spans called NAME
    exited POD          the kubelet has seen a container of POD exit (its ContainerExited pod event): a sync
                        after the one that started it, which has ended (a pod's syncs run one at a time)
    exports-failed N    the kubelet's and the runtime's span exports have each failed N more times since the condition
                        began to be waited for (their telemetry stats): with N = 3, what they held then is lost
    exports-sent N      ... have each succeeded N more times: they reach the collector again

``needs(conditions)`` says which of the stack's mock-only outputs they read (the events file, the stats files).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from cristack.harness import podevents
from cristack.harness.assertions import pod_start
from cristack.harness.sink.store import Span, SpanStore
from cristack.harness.stack import Stack, StackOptions

CONTAINER_EXITED = "ContainerExited"  # fake-kubelet's own event reason (fake_kubelet/events.py)

# kind -> the words after it; a trailing "[N]" is an optional count (default 1)
FORMS = {"pod-start": ("POD",), "sync": ("POD", "WORD", "[N]"), "spans": ("NAME", "[N]"), "exited": ("POD",),
         "exports-failed": ("N",), "exports-sent": ("N",)}


@dataclass(frozen=True)
class Condition:
    kind: str
    args: tuple[str, ...]

    def __str__(self) -> str:
        return " ".join((self.kind, *self.args))


def parse(text: str) -> Condition:
    """One condition (an optional count filled in); ValueError saying the forms when ``text`` is none of them."""
    words = str(text).split()
    form = FORMS.get(words[0], ()) if words else ()
    required = [a for a in form if not a.startswith("[")]
    if not words or words[0] not in FORMS or not len(required) <= len(words) - 1 <= len(form):
        forms = "; ".join(" ".join((k, *a)) for k, a in FORMS.items())
        raise ValueError(f"{text!r} is not a condition (one of: {forms})")
    args = words[1:] + ["1"] * (len(form) - len(words) + 1)
    for word, arg in zip(args, form, strict=True):
        if arg.strip("[]") == "N" and not (word.isdigit() and int(word) > 0):
            raise ValueError(f"{text!r}: {word!r} is not a count (1 or more)")
    return Condition(words[0], tuple(args))


@dataclass
class Progress:
    """What a condition looks at: a scenario run's spans so far, its stack, the shape of its pod starts (CRI-O's
    runtime type pod or oci, or containerd: ``cristack.harness.expectations``)."""

    store: SpanStore
    stack: Stack
    shape: str


def needs(conditions: list[Condition], opts: StackOptions) -> None:
    """Turns on the stack's outputs that ``conditions`` read."""
    kinds = {c.kind for c in conditions}
    opts.pod_events = opts.pod_events or "exited" in kinds
    opts.telemetry_stats = opts.telemetry_stats or bool({"exports-failed", "exports-sent"} & kinds)


def watch(cond: Condition, run: Progress) -> Callable[[], bool]:
    """A check of ``cond`` on ``run``, to call until it holds; made when the waiting begins (``exports-failed``
    counts from then)."""
    if cond.kind == "pod-start":
        return lambda: _pod_started(run, cond.args[0])
    if cond.kind == "sync":
        return lambda: sum(_sync_did(t, cond.args[1]) for t in _syncs(run.store, cond.args[0])) >= int(cond.args[2])
    if cond.kind == "spans":
        return lambda: sum(s.name == cond.args[0] for s in run.store.spans()) >= int(cond.args[1])
    if cond.kind == "exited":
        return lambda: _exited(run.stack, cond.args[0])
    return _Exports(run.stack, int(cond.args[0]), "dropped" if cond.kind == "exports-failed" else "exported")


def _syncs(store: SpanStore, pod: str, update_type: str | None = None) -> list[list[Span]]:
    out = []
    for trace_id in store.trace_ids():
        trace = store.trace(trace_id)
        root = next((s for s in trace if s.name == "syncPod" and not s.parent_span_id), None)
        if root is not None and root.attributes.get("k8s.pod.name") == pod and \
                update_type in (None, root.attributes.get("k8s.pod.update_type")):
            out.append(trace)
    return out


def _pod_started(run: Progress, pod: str) -> bool:
    shape = pod_start(run.shape)
    return any(not shape.missing(t) for t in _syncs(run.store, pod, "create"))


def _sync_did(trace: list[Span], word: str) -> bool:
    """Whether a syncPod trace stopped at error ``word`` or made the kubelet's CRI call ``word``."""
    for s in trace:
        if s.name == "syncPod" and any(e.name == "exception" and e.attributes.get("exception.type") == word
                                       for e in s.events):
            return True
        if s.service == "kubelet" and s.kind == "CLIENT" and s.name.rsplit("/", 1)[-1] == word:
            return True
    return False


def _exited(stack: Stack, pod: str) -> bool:
    try:
        lines = stack.events_file.read_text().splitlines()
    except FileNotFoundError:
        return False
    return any(ev is not None and ev.pod == pod and ev.reason == CONTAINER_EXITED for ev in map(podevents.parse, lines))


class _Exports:
    """Whether each exporter's count of spans it could not export (``dropped``) or did (``exported``) has grown
    ``times`` times since this was made. A batch's export is tried after the one before it ended: the first
    growth seen may come from a batch that ended before this was made, the second from one tried before; the
    third's batch was tried after, and held every span that had ended by then (a batch takes up to 512, far more
    than a few seconds of relists)."""

    def __init__(self, stack: Stack, times: int, count: str) -> None:
        self.stack = stack
        self.times = times
        self.count = count
        # The components whose exports run all the time (the kubelet's relists, the runtime's answers to them).
        self.exporters = ("kubelet", stack.opts.runtime)
        self.last = self._counts()
        self.grew = dict.fromkeys(self.exporters, 0)

    def _counts(self) -> dict[str, int]:
        stats = self.stack.export_stats()
        return {name: getattr(stats[name], self.count) if name in stats else 0 for name in self.exporters}

    def __call__(self) -> bool:
        now = self._counts()
        for name in self.exporters:
            if now[name] > self.last[name]:
                self.grew[name] += 1
        self.last = now
        return all(n >= self.times for n in self.grew.values())
