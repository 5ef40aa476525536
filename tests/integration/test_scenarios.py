"""Every workshop scenario runs, and what its exercise asks the attendee to find is really
in the spans (three real processes and the embedded sink per scenario)."""

from __future__ import annotations

import subprocess

import pytest

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


@pytest.mark.parametrize("runtime", ["crio", "containerd"])
def test_crashloop_backoff_doubles_from_the_span_timestamps(runtime: str):
    """The kubelet restarts at once after the first crash, then waits a back-off counted from each exit that is
    exactly twice the one before (0.4 s, 0.8 s, 1.6 s, 3.2 s in the scenario: 10 s ... 300 s scaled by 1/25). Read
    from the spans alone, as order and causality (the finding's checks, examples/scenarios/crashloop/finding.py):
    each restart's CreateContainer comes no sooner than the exit (the exit file conmonrs wrote, or on containerd
    the container's task.Wait) plus the window, and every sync the kubelet refused began inside the window, saying
    its delay; how late a restart comes is the machine's business, not the test's."""
    runs, finding = scenarios.run_scenario("crashloop", runtime=runtime)
    assert runs[0].runtime == runtime
    assert finding.details["starts"] == 6, f"the run ends at the sixth exit: {finding.summary}"
    assert [line for lines in runs[0].pod_logs.values() for line in lines] == ["starting"] * 6
    windows = finding.details["windows"]
    assert [w.delay for w in windows] == [0, 0.4, 0.8, 1.6, 3.2, 6.4], "doubling from the base, exactly"
    assert all(w.restarted_at is not None for w in windows[:5]), "every closed window ended in a restart"
    assert not windows[0].refused, "the first restart is immediate (the next sync after PLEG sees the exit)"
    assert finding.details["problems"] == [], finding.summary
    assert any(w.refused for w in windows), "the kubelet refused at least one sync inside a window"
    assert finding.ok, finding.summary
    # The kubelet says so in the syncs it refuses, in Go's duration format as the real one writes them (back-off
    # 400ms, not 0.4s); which windows saw a refused sync is the machine's timing, so only the words are checked.
    spans = runs[0].spans()
    said = [str(e.attributes["exception.message"]).split()[1] for s in spans if s.name == "syncPod"
            for e in s.events if e.attributes.get("exception.type") == "CrashLoopBackOff"]
    assert said and set(said) <= {"400ms", "800ms", "1.6s", "3.2s", "6.4s"}, said


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
