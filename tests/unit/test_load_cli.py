"""``cristack load``'s argument errors (exit 2, a message naming the argument) and the pieces it builds on."""

from __future__ import annotations

import json

import pytest

from cristack.harness import podevents
from cristack.harness.cli import main
from cristack.harness.load import manifest
from fake_kubelet.manifests import parse_pod

GOOD = ["--pods-per-second", "1", "--duration", "1", "--otlp-endpoint", "127.0.0.1:4317"]


@pytest.mark.parametrize(("args", "says"), [
    (["--nodes", "0", *GOOD], "argument --nodes: '0': must be above zero"),
    (["--nodes", "two", *GOOD], "argument --nodes: 'two' is not a whole number"),
    (["--pods-per-second", "-1", "--duration", "1", "--otlp-endpoint", "127.0.0.1:4317"],
     "argument --pods-per-second: '-1': must be above zero"),
    ([*GOOD, "--pod-lifetime", "nan"], "argument --pod-lifetime: 'nan': must be above zero"),
    (["--pods-per-second", "1", "--duration", "1"], "the following arguments are required: --otlp-endpoint"),
    ([*GOOD, "--nodes", "3", "--cluster-cidr", "10.244.0.0/23"], "node index 2 is outside cluster CIDR"),
])
def test_bad_arguments_exit_2_with_a_clear_message(args, says, capsys) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["load", *args])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert says in err and "Traceback" not in err, err


def test_the_load_pod_is_a_valid_manifest() -> None:
    pod = parse_pod(manifest("load-000001", "0c6f7b4e-1111-4222-8333-944455556666").encode(), "x.yaml", "node-1")
    assert (pod.name, pod.uid, [c.name for c in pod.containers]) == (
        "load-000001", "0c6f7b4e-1111-4222-8333-944455556666", ["app"])


def test_pod_events_carry_the_pod_uid_and_the_exact_time() -> None:
    line = json.dumps({"kind": "Event", "reason": "Started", "type": "Normal",
                       "eventTime": "2026-01-02T03:04:05.250000Z",
                       "involvedObject": {"name": "p", "namespace": "default", "uid": "u-1",
                                          "fieldPath": "spec.containers{app}"}})
    ev = podevents.parse(line)
    assert ev is not None and ev.uid == "u-1" and ev.container == "app"
    assert ev.at == 1767323045.25
