"""Go's time.Duration.String, as the real kubelet prints durations ("back-off 400ms restarting failed
container"): Go's own test table and examples, a round trip through our parser, and Go itself on random values."""

from __future__ import annotations

import os
import random
import shutil
import subprocess

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cristack.config.durations import go_duration, go_duration_seconds, parse_duration
from tests.conftest import IN_CI

NS, US, MS, S, MIN, H = 1, 1_000, 1_000_000, 1_000_000_000, 60_000_000_000, 3_600_000_000_000

# Go 1.26 src/time/time_test.go (durationTests) and src/time/example_test.go (ExampleDuration_String).
GO_TABLE = [
    ("0s", 0),
    ("1ns", 1 * NS),
    ("1.1\u00b5s", 1100 * NS),
    ("2.2ms", 2200 * US),
    ("3.3s", 3300 * MS),
    ("4m5s", 4 * MIN + 5 * S),
    ("4m5.001s", 4 * MIN + 5001 * MS),
    ("5h6m7.001s", 5 * H + 6 * MIN + 7001 * MS),
    ("8m0.000000001s", 8 * MIN + 1 * NS),
    ("2562047h47m16.854775807s", (1 << 63) - 1),
    ("-2562047h47m16.854775808s", -(1 << 63)),
    ("1h2m0.3s", 1 * H + 2 * MIN + 300 * MS),
    ("300ms", 300 * MS),
]


@pytest.mark.parametrize(("text", "ns"), GO_TABLE, ids=[t for t, _ in GO_TABLE])
def test_go_table(text: str, ns: int) -> None:
    assert go_duration(ns) == text


def test_the_kubelets_back_offs() -> None:
    """The crashloop scenario's back-offs (0.4 s doubling) and the real ones (10 s doubling to 5 min)."""
    assert [go_duration_seconds(0.4 * 2**i) for i in range(6)] == ["400ms", "800ms", "1.6s", "3.2s", "6.4s", "12.8s"]
    assert [go_duration_seconds(10 * 2**i) for i in range(5)] + [go_duration_seconds(300)] == \
        ["10s", "20s", "40s", "1m20s", "2m40s", "5m0s"]


@given(st.integers(min_value=-(1 << 63), max_value=(1 << 63) - 1))
def test_round_trip_through_the_parser(ns: int) -> None:
    text = go_duration(ns)
    back = -parse_duration(text[1:]) if text.startswith("-") else parse_duration(text)
    assert back == pytest.approx(ns / 1e9, rel=1e-12, abs=1e-9)


def test_agrees_with_go_itself(tmp_path) -> None:
    """Go's own String() on a spread of values, from nanoseconds to the int64 limits."""
    go = shutil.which("go")
    if go is None:
        msg = "Go is not installed (it is where `make tools` runs)"
        pytest.fail(f"CI=true: {msg}") if IN_CI else pytest.skip(msg)
    rng = random.Random(29)
    values = [0, 1, -1, 999, 1000, 999_999, 1_000_000, S - 1, S, MIN, H, (1 << 63) - 1, -(1 << 63)]
    values += [rng.randrange(-(10 ** rng.randrange(1, 19)), 10 ** rng.randrange(1, 19)) for _ in range(300)]
    (tmp_path / "main.go").write_text(
        'package main\n\nimport (\n\t"bufio"\n\t"fmt"\n\t"os"\n\t"strconv"\n\t"time"\n)\n\n'
        "func main() {\n\tin := bufio.NewScanner(os.Stdin)\n\tfor in.Scan() {\n"
        "\t\tv, _ := strconv.ParseInt(in.Text(), 10, 64)\n\t\tfmt.Println(time.Duration(v))\n\t}\n}\n")
    out = subprocess.run([go, "run", "main.go"], input="\n".join(map(str, values)) + "\n", capture_output=True,
                         text=True, cwd=tmp_path, timeout=120, env={**os.environ, "GO111MODULE": "off"})
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == [go_duration(v) for v in values]
