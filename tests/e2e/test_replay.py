"""``cristack replay``: a recording of the node's traffic (what ``cristack demo --json`` writes) delivered to a
real Jaeger as new traces: fresh ids, the same shape, timestamps moved to now; bad files refused by line."""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from pathlib import Path

from cristack.harness.procs import component_argv
from cristack.harness.sink.store import Span, flatten
from cristack.otel import otlpjson


def cristack(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(component_argv("cristack", *args), capture_output=True, text=True, timeout=timeout,
                          env=os.environ)


def shape(spans: list[Span]) -> list[tuple]:
    """Names, services and the parent's name: what must survive new ids."""
    by_id = {s.span_id: s for s in spans}
    return sorted((s.service, s.name, by_id[s.parent_span_id].name if s.parent_span_id in by_id else "",
                   sorted((k, str(v)) for k, v in s.attributes.items()), len(s.events)) for s in spans)


def test_replay_delivers_a_recording_to_jaeger(tmp_path: Path, jaeger) -> None:
    recording = tmp_path / "demo.json"
    made = cristack("demo", "--quiet", "--json", str(recording))
    assert made.returncode == 0, made.stderr
    original = flatten(otlpjson.loads(recording.read_text()))
    start = next(s for s in original if s.name == "syncPod" and s.attributes.get("k8s.pod.update_type") == "create")
    old_trace = [s for s in original if s.trace_id == start.trace_id]

    before = time.time_ns()
    proc = cristack("replay", str(recording), "--otlp-endpoint", jaeger.otlp_endpoint, "--shift-to-now")
    after = time.time_ns()
    assert proc.returncode == 0, proc.stderr
    mapping = dict(re.findall(r"^\s+([0-9a-f]{32}) -> ([0-9a-f]{32})$", proc.stdout, re.M))
    assert len(mapping) == len({s.trace_id for s in original}), proc.stdout
    assert f"replayed {len(original)} spans" in proc.stdout
    new_id = mapping[start.trace_id]
    assert new_id != start.trace_id

    deadline = time.monotonic() + 60
    replayed = jaeger.query.trace(new_id)
    while len(replayed) < len(old_trace) and time.monotonic() < deadline:
        time.sleep(0.2)
        replayed = jaeger.query.trace(new_id)
    assert len(replayed) == len(old_trace)
    assert shape(replayed) == shape(old_trace), "the same spans, parents and attributes under new ids"
    assert not {s.span_id for s in replayed} & {s.span_id for s in old_trace}, "every span id is fresh"
    root = next(s for s in replayed if s.name == "syncPod")
    assert root.parent_span_id == ""
    # The recording's first span (not necessarily this one) is moved to the moment of the replay.
    offset = start.start - min(s.start for s in original)
    assert before - 10**9 <= root.start - offset <= after, "--shift-to-now starts the recording now"
    # Durations are kept (Jaeger keeps microseconds).
    assert abs(root.duration_ns - start.duration_ns) < 2_000


def test_replay_paces_with_speed_and_refuses_bad_files(tmp_path: Path, sink) -> None:
    example = json.loads((Path(__file__).resolve().parents[1] / "data" / "otlp" / "trace.json").read_text())
    later = json.loads(json.dumps(example))
    span = later["resourceSpans"][0]["scopeSpans"][0]["spans"][0]
    span["spanId"], span["parentSpanId"] = "00000000000000aa", "EEE19B7EC3C1B174"
    span["endTimeUnixNano"] += 2 * 10**9  # ends two seconds after the first
    lines = tmp_path / "export.jsonl"  # a Collector file export: one request per line
    lines.write_text(json.dumps(example) + "\n" + json.dumps(later) + "\n")
    started = time.monotonic()
    proc = cristack("replay", str(lines), "--otlp-endpoint", sink.addresses.otlp_endpoint, "--speed", "4")
    took = time.monotonic() - started
    assert proc.returncode == 0, proc.stderr
    assert took >= 0.5, "the second span waits for its recorded gap, divided by the speed"
    new_trace = re.search(r"5b8efff798038103d269b633813fc60c -> ([0-9a-f]{32})", proc.stdout).group(1)
    spans = sink.store.trace(new_trace)
    assert len(spans) == 2
    first = next(s for s in spans if s.name == "I'm a server span" and s.end - s.start == 10**9)
    second = next(s for s in spans if s is not first)
    assert second.parent_span_id == first.span_id, "a parent in the file maps to the parent's new id"
    assert first.parent_span_id not in ("", "eee19b7ec3c1b173"), "a parent outside the file gets a fresh id too"
    assert first.start == 1544712660000000000, "without --shift-to-now the recorded times are kept"

    lines.write_text(json.dumps(example) + "\n" + '{"resourceSpans": [{"scopeSpans": [{"spans": '
                     '[{"traceId": "not hex"}]}]}]}\n')
    proc = cristack("replay", str(lines), "--otlp-endpoint", sink.addresses.otlp_endpoint)
    assert proc.returncode == 2 and f"{lines}:2: not OTLP/JSON: traceId 'not hex'" in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr
    broken = tmp_path / "broken.json"
    broken.write_text('{\n "resourceSpans": [\n  {"scopeSpans": [{"spans": [{"spanId": "zz"}]}]}\n ]\n}\n')
    proc = cristack("replay", str(broken), "--otlp-endpoint", sink.addresses.otlp_endpoint)
    assert proc.returncode == 2 and f"{broken}:3: not OTLP/JSON: spanId 'zz'" in proc.stderr, proc.stderr
