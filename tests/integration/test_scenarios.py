"""Every workshop scenario runs, and what its exercise asks the attendee to find is really
in the spans (three real processes and the embedded sink per scenario)."""

from __future__ import annotations

import subprocess

from cristack.config.durations import parse_duration
from cristack.harness import scenarios
from cristack.harness.procs import component_argv

NAMES = scenarios.names()


def test_the_documented_scenarios_exist():
    assert set(NAMES) >= {"hello", "image-pull-backoff", "crashloop", "slow-storage", "slow-pull", "sampling",
                          "oci-vs-pod", "collector-outage", "multi-container"}
    for name in NAMES:
        s = scenarios.load(name)
        assert (s.dir / "README.md").is_file() and s.manifests, name


# Every scenario's finding is checked where the workshop guide runs it (test_workshop_guide.py): one run each.


def test_crashloop_backoff_doubles_from_the_span_timestamps():
    """The kubelet restarts at once after the first crash, then waits a back-off counted from each exit that is
    exactly twice the one before (0.4 s, 0.8 s, 1.6 s, 3.2 s in the scenario: 10 s ... 300 s scaled by 1/25). Read
    from the spans alone: conmonrs's wait_for_exit_code ends at the exit, the next start's syncPod begins the
    restart."""
    runs, _ = scenarios.run_scenario("crashloop")
    spans = runs[0].spans()
    starts = sorted({s.trace_id for s in spans if s.service == "kubelet" and s.name.endswith("/StartContainer")},
                    key=lambda t: min(s.start for s in spans if s.trace_id == t))
    assert len(starts) == 6, f"{len(starts)} starts in 9 s"
    assert [line for lines in runs[0].pod_logs.values() for line in lines] == ["starting"] * 6
    sync_start = {t: next(s.start for s in spans if s.trace_id == t and s.name == "syncPod") for t in starts}
    exit_at = {t: max(s.end for s in spans if s.trace_id == t and s.name == "wait_for_exit_code") for t in starts}
    waits = [(sync_start[b] - exit_at[a]) / 1e9 for a, b in zip(starts, starts[1:], strict=False)]
    assert waits[0] < 0.4, f"the first restart is immediate (the next sync after PLEG sees the exit): {waits}"
    backoffs = waits[1:]
    assert abs(backoffs[0] - 0.4) < 0.25, backoffs
    for before, after in zip(backoffs, backoffs[1:], strict=False):
        # Never sooner than twice the one before; late only by a sync's latency on a loaded machine.
        assert 2 * before - 0.3 <= after <= 2 * before + 0.35, f"not doubling: {backoffs}"
    # The kubelet says so in the syncs it refuses, each exactly double, in Go's duration format as the real one
    # writes them (back-off 400ms, not 0.4s).
    said = [str(e.attributes["exception.message"]).split()[1] for s in spans if s.name == "syncPod"
            for e in s.events if e.attributes.get("exception.type") == "CrashLoopBackOff"]
    assert sorted(set(said), key=parse_duration) == ["400ms", "800ms", "1.6s", "3.2s", "6.4s"], said


def test_demo_list_and_bad_scenario():
    listed = subprocess.run(component_argv("cristack", "demo", "--list"), capture_output=True, text=True, timeout=30)
    assert listed.returncode == 0
    # Piped: 80 columns, one scenario a line, its whole title (the kata title was once cut mid-sentence).
    lines = listed.stdout.splitlines()
    assert all(len(line) <= 80 for line in lines), max(lines, key=len)
    assert [line.split(None, 1) for line in lines] == [[n, scenarios.load(n).title] for n in NAMES]
    assert all(not scenarios.load(n).title.startswith(n) for n in NAMES), "a title says more than the name"
    bad = subprocess.run(component_argv("cristack", "demo", "--scenario", "nope"), capture_output=True, text=True,
                         timeout=30)
    assert bad.returncode == 2 and "cristack demo --list" in bad.stderr
