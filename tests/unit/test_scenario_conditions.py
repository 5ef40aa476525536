"""Scenario conditions (cristack/harness/scenario_conditions.py): what a scenario's actions and its end wait for
instead of a time, checked on hand-made spans, events and export counts (no processes)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from cristack.harness import scenario_conditions as sc
from cristack.harness import scenarios
from cristack.harness.sink.store import Event, Span
from cristack.harness.stack import StackOptions
from cristack.otel.telemetry import ExportStats
from cristack.wire.errors import ConfigError


def span(trace: str, sid: str, parent: str, service: str, name: str, kind: str = "INTERNAL",
         attrs: dict | None = None, events: list[Event] | None = None) -> Span:
    return Span(trace, sid, parent, name, kind, 0, 1, service, "", attrs or {}, events or [], "UNSET", "")


def sync(trace: str, pod: str, *, error: str = "", calls: tuple[str, ...] = (), update: str = "sync") -> list[Span]:
    events = [Event("exception", 0, {"exception.type": error})] if error else []
    out = [span(trace, "01", "", "kubelet", "syncPod", attrs={"k8s.pod.name": pod, "k8s.pod.update_type": update},
                events=events)]
    out += [span(trace, f"1{i}", "01", "kubelet", f"runtime.v1.RuntimeService/{c}", "CLIENT")
            for i, c in enumerate(calls)]
    return out


class Store:
    """The three reads a condition makes of a SpanStore."""

    def __init__(self, *traces: list[Span]) -> None:
        self.traces = {t[0].trace_id: t for t in traces}

    def trace_ids(self) -> list[str]:
        return list(self.traces)

    def trace(self, trace_id: str) -> list[Span]:
        return self.traces[trace_id]

    def spans(self) -> list[Span]:
        return [s for t in self.traces.values() for s in t]


@dataclass
class FakeStack:
    events_file: Path
    stats: list[dict[str, ExportStats]] = field(default_factory=list)  # one per read, the last repeated
    opts: StackOptions = field(default_factory=StackOptions)  # the runtime whose exports count: crio

    def export_stats(self) -> dict[str, ExportStats]:
        return self.stats.pop(0) if len(self.stats) > 1 else self.stats[0]


def progress(store: Store, tmp_path: Path, stats=None) -> sc.Progress:  # noqa: ANN001
    return sc.Progress(store, FakeStack(tmp_path / "events.jsonl", stats or [{}]), "pod")  # type: ignore[arg-type]


@pytest.mark.parametrize("text, parsed", [
    ("spans wait_for_exit_code 6", ("spans", ("wait_for_exit_code", "6"))),
    ("spans exec_sync_container", ("spans", ("exec_sync_container", "1"))),
    ("sync app ImagePullBackOff", ("sync", ("app", "ImagePullBackOff", "1"))),
    ("exports-failed 3", ("exports-failed", ("3",))),
])
def test_parse(text: str, parsed: tuple) -> None:
    cond = sc.parse(text)
    assert (cond.kind, cond.args) == parsed


@pytest.mark.parametrize("text, says", [
    ("", "is not a condition"), ("later 3", "is not a condition"), ("spans", "is not a condition"),
    ("spans x 0", "'0' is not a count"), ("exports-failed", "is not a condition"), ("exited a b", "not a condition"),
])
def test_parse_refuses_with_the_forms(text: str, says: str) -> None:
    with pytest.raises(ValueError, match=says) as err:
        sc.parse(text)
    assert "pod-start POD" in str(err.value) or "count" in str(err.value)


def test_a_bad_condition_in_scenario_toml_names_the_file_and_key(tmp_path: Path) -> None:
    folder = tmp_path / "bad"
    folder.mkdir()
    (folder / "scenario.toml").write_text('mode = "timed"\n[[action]]\ndo = "stop-sink"\nafter = ["spans x", "soon"]\n')
    with pytest.raises(ConfigError) as err:
        scenarios.load("bad", tmp_path)
    assert str(folder / "scenario.toml") in str(err.value) and "action[0].after" in str(err.value)
    (folder / "scenario.toml").write_text('mode = "timed"\nuntil = "never"\n')
    with pytest.raises(ConfigError, match="until"):
        scenarios.load("bad", tmp_path)


def test_sync_and_spans_count_what_the_sink_holds(tmp_path: Path) -> None:
    store = Store(sync("a" * 32, "app", error="ErrImagePull"), sync("b" * 32, "app", error="ImagePullBackOff"),
                  sync("c" * 32, "other", calls=("StartContainer",)), sync("d" * 32, "app", error="ErrImagePull"))
    run = progress(store, tmp_path)
    holds = {text: sc.watch(sc.parse(text), run)() for text in (
        "sync app ErrImagePull 2", "sync app ErrImagePull 3", "sync app ImagePullBackOff", "sync app StartContainer",
        "sync other StartContainer", "spans syncPod 4", "spans syncPod 5")}
    assert holds == {"sync app ErrImagePull 2": True, "sync app ErrImagePull 3": False,
                     "sync app ImagePullBackOff": True, "sync app StartContainer": False,
                     "sync other StartContainer": True, "spans syncPod 4": True, "spans syncPod 5": False}


def test_pod_start_waits_for_the_whole_start_trace(tmp_path: Path) -> None:
    started = sync("a" * 32, "web", update="create", calls=("RunPodSandbox",))
    assert not sc.watch(sc.parse("pod-start web"), progress(Store(started), tmp_path))()


def test_exited_reads_the_kubelets_own_event(tmp_path: Path) -> None:
    run = progress(Store(), tmp_path)
    check = sc.watch(sc.parse("exited during"), run)
    assert not check(), "no events file yet"

    def event(pod: str, reason: str) -> str:
        return json.dumps({"kind": "Event", "reason": reason, "message": "", "type": "Normal",
                           "involvedObject": {"name": pod, "namespace": "w"}, "eventTime": ""}) + "\n"

    (tmp_path / "events.jsonl").write_text(event("during", "Started") + event("before", "ContainerExited"))
    assert not check()
    with (tmp_path / "events.jsonl").open("a") as f:
        f.write(event("during", "ContainerExited"))
    assert check()


def test_exports_failed_counts_growths_of_each_exporters_dropped_spans(tmp_path: Path) -> None:
    def stats(kubelet: int, crio: int) -> dict[str, ExportStats]:
        return {"kubelet": ExportStats("kubelet", 0, kubelet, 0), "crio": ExportStats("crio", 0, crio, 0)}

    # The first read is the baseline; then the kubelet's count grows three times, crio's twice, then a third.
    reads = [stats(5, 7), stats(6, 7), stats(6, 9), stats(8, 9), stats(9, 9), stats(9, 10), stats(9, 11)]
    run = progress(Store(), tmp_path, reads)
    check = sc.watch(sc.parse("exports-failed 3"), run)
    assert [check() for _ in range(6)] == [False, False, False, False, False, True]
    sent = sc.watch(sc.parse("exports-sent 1"), progress(Store(), tmp_path, [stats(0, 0)]))
    assert not sent(), "nothing was exported since"


def test_needs_turns_on_what_the_conditions_read() -> None:
    from cristack.harness.stack import StackOptions

    opts = StackOptions()
    sc.needs([sc.parse("spans x")], opts)
    assert (opts.pod_events, opts.telemetry_stats) == (False, False)
    sc.needs([sc.parse("exited p"), sc.parse("exports-sent 1")], opts)
    assert (opts.pod_events, opts.telemetry_stats) == (True, True)


def test_actions_wait_for_their_conditions_in_order_and_until_ends_the_run(monkeypatch) -> None:
    polls: list[str] = []

    def watch(cond: sc.Condition, run) -> object:  # noqa: ANN001 - holds on its third poll
        seen = []

        def check() -> bool:
            polls.append(str(cond))
            seen.append(1)
            return len(seen) >= 3
        return check

    monkeypatch.setattr(scenarios, "watch", watch)
    scenario = scenarios.Scenario("s", Path("."), "t", mode="timed", duration_s=60, until=sc.parse("spans end"),
                                  actions=[scenarios.Action(0, "stop-sink", after=[sc.parse("spans a"),
                                                                                    sc.parse("spans b")]),
                                           scenarios.Action(0, "add-manifest", file="x.yaml"),
                                           scenarios.Action(0, "start-sink", after=[sc.parse("spans c")])])
    done: list[str] = []
    said: list[str] = []
    rc = scenarios._drive(scenario, None, None, lambda a: done.append(f"{a.do} after {polls[-1:]}"),  # type: ignore
                          said.append)
    assert rc is None
    assert polls == ["spans a 1"] * 3 + ["spans b 1"] * 3 + ["spans c 1"] * 3 + ["spans end 1"] * 3
    assert done == ["stop-sink after ['spans b 1']", "add-manifest after ['spans b 1']",
                    "start-sink after ['spans c 1']"]
    assert said[0].endswith("(spans a 1, spans b 1): stop-sink")


def test_a_condition_never_seen_ends_the_run_at_its_duration_and_runs_the_actions_left(monkeypatch) -> None:
    monkeypatch.setattr(scenarios, "watch", lambda cond, run: lambda: False)
    scenario = scenarios.Scenario("s", Path("."), "t", mode="timed", duration_s=0.2,
                                  actions=[scenarios.Action(0, "start-sink", after=[sc.parse("exports-sent 1")])])
    done: list[str] = []
    said: list[str] = []
    scenarios._drive(scenario, None, None, lambda a: done.append(a.do), said.append)  # type: ignore[arg-type]
    assert done == ["start-sink"] and said == ["  … not seen within 0.2s: exports-sent 1"]
