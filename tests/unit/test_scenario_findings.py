"""A scenario is its folder: its finding (what the exercise asks an attendee to find) is ``find(runs)`` in the
folder's finding.py, and a folder without one is reported as checking nothing, never as seen. No processes: the
findings run on no runs, or are only loaded."""

from __future__ import annotations

from pathlib import Path

import pytest
from rich.console import Console

from cristack.harness import demo, demo_scenarios, scenarios
from cristack.harness.sink.store import SpanStore
from cristack.wire.errors import ConfigError


def new_scenario(root: Path, name: str, finding: str | None = None) -> Path:
    folder = root / name
    (folder / "manifests").mkdir(parents=True)
    (folder / "scenario.toml").write_text(f'title = "the {name} exercise"\n')
    (folder / "README.md").write_text(f"# {name}\n")
    if finding is not None:
        (folder / "finding.py").write_text(finding)
    return folder


SAYS = '''from cristack.harness.scenarios import Finding


def find(runs):
    return Finding(True, "found by {name}/finding.py on %d runs" % len(runs))
'''


def test_a_new_scenario_folder_without_a_finding_is_reported_unchecked_not_ran(tmp_path: Path) -> None:
    new_scenario(tmp_path, "brand-new")
    assert scenarios.names(tmp_path) == ["brand-new"]
    finding = scenarios.find(scenarios.load("brand-new", tmp_path), [])
    assert not finding.ok and not finding.checked
    assert finding.summary == "nothing checked: brand-new/ has no finding.py saying what to find"


def test_a_scenarios_finding_comes_from_its_own_folder(tmp_path: Path) -> None:
    # Named like a shipped scenario and like each other's: each folder's own file answers.
    for name in ("hello", "crashloop-copy"):
        new_scenario(tmp_path, name, SAYS.replace("{name}", name))
    for name in ("hello", "crashloop-copy"):
        finding = scenarios.find(scenarios.load(name, tmp_path), [])
        assert finding.ok and finding.checked and finding.summary == f"found by {name}/finding.py on 0 runs"


def test_a_finding_file_without_find_names_the_file(tmp_path: Path) -> None:
    folder = new_scenario(tmp_path, "odd", "def check(runs):\n    return None\n")
    with pytest.raises(ConfigError) as err:
        scenarios.find(scenarios.load("odd", tmp_path), [])
    assert str(folder / "finding.py") in str(err.value) and "find" in str(err.value)


def test_every_shipped_scenario_has_its_finding() -> None:
    for name in scenarios.names():
        scenario = scenarios.load(name)
        assert callable(scenarios.load_finding(scenario.dir / scenarios.FINDING_FILE)), name


def test_demo_says_unchecked_for_a_scenario_without_a_finding(tmp_path: Path, monkeypatch) -> None:
    new_scenario(tmp_path, "brand-new")
    new_scenario(tmp_path, "seen", SAYS.replace("{name}", "seen"))
    monkeypatch.setattr(scenarios, "scenarios_dir", lambda: tmp_path)
    # No stack: an empty run stands in, the report of the finding is the point.
    monkeypatch.setattr(scenarios, "run", lambda scenario, rt, say, runtime: scenarios.Run(scenario, rt, SpanStore(),
                                                                                             {}, 0, runtime=runtime))
    console = Console(width=80, record=True)
    rc = demo_scenarios.run_scenarios(["brand-new", "seen"], demo.DemoOptions(), console)
    lines = console.export_text().splitlines()
    assert rc == 1
    assert lines[0].split(None, 2)[:2] == ["UNCHECKED", "brand-new"] and "no finding.py" in lines[0]
    assert lines[1].split(None, 2)[:2] == ["OK", "seen"]


def test_a_finding_may_define_dataclasses(tmp_path: Path) -> None:
    new_scenario(tmp_path, "typed", "from dataclasses import dataclass\n\nfrom cristack.harness.scenarios import "
                 "Finding\n\n\n@dataclass\nclass Seen:\n    n: int\n\n\ndef find(runs):\n"
                 "    return Finding(True, f'{Seen(len(runs))}')\n")
    assert scenarios.find(scenarios.load("typed", tmp_path), []).summary == "Seen(n=0)"


def test_the_crashloop_finding_fails_a_kubelet_that_breaks_its_back_off() -> None:
    """The finding's checks on hand-made windows: a restart inside the window, a refusal after it, a refusal that
    says another delay, a refusal that called the runtime: each is named; a kept back-off is not."""
    crashloop = scenarios.finding_module(scenarios.load("crashloop").dir / scenarios.FINDING_FILE)
    s = 1_000_000_000

    def refusal(at_s: float, said: str = "0.4s", calls: list[str] | None = None) -> scenarios.SyncRow:
        return scenarios.SyncRow("t", int(at_s * s), "crasher", "u", "sync", "CrashLoopBackOff",
                                 f"back-off {said} restarting failed container=crasher pod=crasher_w(u)", calls or [])

    def window(delay: float, refused: list, restart_s: float) -> object:
        return crashloop.Window(delay, (10 * s - crashloop.TICK_NS, 10 * s + 1000), refused, int(restart_s * s))

    kept = [window(0, [], 10.05), window(0.4, [refusal(10.1), refusal(10.39)], 10.4),
            window(0.8, [refusal(10.2, "800ms")], 12.0)]
    assert crashloop.problems(kept) == []
    broken = [window(0.4, [refusal(10.1)], 10.3), window(0.4, [refusal(10.41)], 10.5),
              window(0.8, [refusal(10.2, "0.4s")], 10.9), window(0.4, [refusal(10.2, calls=["ListImages"])], 10.5)]
    assert crashloop.problems(broken) == [
        "crash 1 (back-off 0.4s): restarted 0.090s early",
        "crash 2 (back-off 0.4s): 1 sync(s) refused after the window had closed",
        "crash 3 (back-off 0.8s): refusals said back-off 0.4",
        "crash 4 (back-off 0.4s): a refused sync made CRI calls"]


def test_every_shipped_finding_runs_on_a_run_that_showed_nothing() -> None:
    """Each finding.py runs on an empty run per runtime and runtime type (what a stack that sent no span leaves) and
    says it did not see its finding, rather than failing in its own code."""
    for name in scenarios.names():
        scenario = scenarios.load(name)
        for runtime in scenario.runtimes:
            runs = [scenarios.Run(scenario.on(runtime), rt, SpanStore(), {}, 0, runtime=runtime)
                    for rt in scenario.runtime_types_on(runtime)]
            finding = scenarios.find(scenario, runs)
            assert not finding.ok and finding.checked and finding.summary, (name, runtime)


def test_a_scenario_names_its_runtimes_and_why_not_the_others(tmp_path: Path) -> None:
    folder = new_scenario(tmp_path, "both")
    (folder / "scenario.toml").write_text('title = "t"\nmode = "timed"\nuntil = "spans a"\nruntimes = ["crio", '
                                          '"containerd"]\n[containerd]\nuntil = "spans b 2"\n')
    both = scenarios.load("both", tmp_path)
    assert both.runtimes == ["crio", "containerd"] and str(both.on("containerd").until) == "spans b 2"
    assert str(both.on("crio").until) == "spans a 1" and both.runtime_types_on("containerd") == ["pod"]
    one = new_scenario(tmp_path, "one")
    (one / "scenario.toml").write_text('title = "t"\n[not_for]\ncontainerd = "CRI-O only, because"\n')
    with pytest.raises(scenarios.NotForRuntime, match="scenario one is not for containerd: CRI-O only, because"):
        scenarios.load("one", tmp_path).check_runtime("containerd")


@pytest.mark.parametrize(("text", "says"), [
    ('runtimes = ["cri-o"]', "runtimes: expected a list of crio and containerd"),
    ('runtime = ["crio"]', "runtime: unknown key; did you mean runtimes?"),
    ('[containerd]\nuntill = "spans a"', "containerd: a table of until, duration_s"),
    ('[containerd]\nuntil = "whenever"', "containerd.until: 'whenever' is not a condition"),
    ('[not_for]\ndocker = "no"', "not_for: a table of runtime"),
])
def test_a_bad_runtime_key_names_the_file_and_key(tmp_path: Path, text: str, says: str) -> None:
    folder = new_scenario(tmp_path, "bad")
    (folder / "scenario.toml").write_text(f'title = "t"\n{text}\n')
    with pytest.raises(ConfigError, match="scenario.toml") as err:
        scenarios.load("bad", tmp_path)
    assert says in str(err.value), str(err.value)


def test_every_shipped_scenario_runs_on_containerd_or_says_why_not() -> None:
    for name in scenarios.names():
        scenario = scenarios.load(name)
        assert "containerd" in scenario.runtimes or scenario.not_for.get("containerd"), name
