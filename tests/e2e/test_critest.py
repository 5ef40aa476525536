"""critest v1.36.0, the CRI validation suite CRI-O and containerd run in their CI, against fake-crio and
fake-containerd.

The specs it runs and the ones it leaves out (each with its reason) live in critest-specs.toml.
Every focused spec must pass: on fake-crio with runtime type oci (fake-crio supervises) and pod (through a
real fake-conmon), and on fake-containerd (each pod in a shim process of its own). Logs go where critest's
requests say (/tmp/...), as with the real runtimes, so neither confines pod logs here.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import (
    ContainerdHandle,
    CrioHandle,
    require_tool,
    start_containerd,
    start_crio,
    start_pod_crio,
)

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10 (pyproject pulls in tomli there)
    import tomli as tomllib

SPECS_FILE = Path(__file__).with_name("critest-specs.toml")
# Per runtime the focused specs take ~20 s (fake-crio) to ~60 s (fake-containerd: a shim process per pod) on 2
# idle cores; the cap only stops a hang.
CRITEST_TIMEOUT_S = 300
SUMMARY = re.compile(r"Ran (\d+) of (\d+) Specs in [\d.]+ seconds\n(?:SUCCESS|FAIL)! -- (\d+) Passed \| (\d+) Failed")


@dataclass(frozen=True)
class SpecList:
    focus: list[str]
    skip: dict[str, str]  # spec pattern -> reason


def load_specs(path: Path = SPECS_FILE) -> SpecList:
    """The focus and skip lists; every skip carries a reason."""
    data = tomllib.loads(path.read_text())
    skips = {}
    for entry in data.get("skip", []):
        assert entry.get("reason", "").strip(), f"{path}: skip {entry.get('spec')!r} has no reason"
        skips[entry["spec"]] = entry["reason"]
    return SpecList(list(data["focus"]), skips)


def test_spec_list_is_well_formed() -> None:
    specs = load_specs()
    assert specs.focus and specs.skip
    for pattern in [*specs.focus, *specs.skip]:
        re.compile(pattern)


@pytest.fixture(params=["oci", "pod", "containerd"])
def crio(request, tmp_path: Path) -> Iterator[CrioHandle | ContainerdHandle]:
    if request.param == "containerd":
        handle = start_containerd(tmp_path)
        yield handle
        handle.close()
        return
    start = start_pod_crio if request.param == "pod" else start_crio
    handle = start(tmp_path, confine_logs=False)
    yield handle
    handle.close()


def test_critest_focused_specs_pass(crio: CrioHandle | ContainerdHandle, request) -> None:
    critest = require_tool("critest")
    specs = load_specs()
    args = [critest, f"--runtime-endpoint={crio.endpoint}", f"--image-endpoint={crio.endpoint}",
            "--ginkgo.no-color", "--ginkgo.v", f"--ginkgo.focus={'|'.join(specs.focus)}",
            f"--ginkgo.skip={'|'.join(specs.skip)}"]
    proc = subprocess.run(args, capture_output=True, text=True, timeout=CRITEST_TIMEOUT_S, cwd=crio.dir)
    out = proc.stdout + proc.stderr
    (crio.dir / "critest.log").write_text(out)
    m = SUMMARY.search(out)
    assert m, f"no ginkgo summary in critest's output:\n{out[-3000:]}"
    ran, total, passed, failed = map(int, m.groups())
    runtime = request.node.callspec.params["crio"]
    print(f"\ncritest v1.36.0 ({runtime}): {passed} of {ran} focused specs passed "
          f"({total} specs in the suite, {len(specs.skip)} skip entries)")
    failures = re.findall(r"^\s*\[FAIL\] (.+)$", out, re.MULTILINE)
    assert failed == 0 and proc.returncode == 0, "failing specs:\n" + "\n".join(failures) + \
        f"\n(critest output: {crio.dir / 'critest.log'})\n{out[-4000:]}"
    assert ran == passed > 0
