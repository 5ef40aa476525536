"""The real fake-kubelet among hostile and careless manifests: each is refused with the kubelet's reason,
no line of its log or events file grows with the input, and a good pod beside them runs."""

from __future__ import annotations

import json
from pathlib import Path

from cristack.wire.pb.runtime.v1 import api_pb2 as pb
from fake_kubelet.manifests import MAX_MANIFEST_BYTES
from tests.support.kubelet import containers, runtime, wait_for
from tests.unit.test_manifest_limits import BOMB, pod

LONGEST_LINE = 4096  # far above any honest line, far below the megabytes each bad manifest carries


def test_hostile_manifests_are_refused_with_bounded_lines_and_a_good_pod_runs(make_stack, tmp_path: Path):
    stack = make_stack(pod_events=True)
    stack.manifests.mkdir(parents=True, exist_ok=True)
    m = stack.manifests
    (m / "bomb.yaml").write_bytes(BOMB)
    quarter = "x" * (1024 * 1024 + 512 * 1024)  # 4.5 MiB of annotations in each of four manifests
    for i in range(4):
        (m / f"fat{i}.yaml").write_bytes(pod(f"name: fat{i}, annotations: {{a: {quarter}, b: {quarter}, "
                                             f"c: {quarter}}}"))
    (m / "huge.yaml").write_bytes(pod("name: huge") + b"#" * MAX_MANIFEST_BYTES)
    (m / "badname.yaml").write_bytes(pod("name: Bad_Name"))
    secret = tmp_path / "shadow"
    secret.write_text("root:$6$s3cr3t-hash:19000:0:99999:7:::\n")
    (m / "link.yaml").symlink_to(secret)
    (m / "good.yaml").write_bytes(pod("name: good", "name: main, image: busybox, command: [sleep, '60']"))
    stack.start_runtime()
    stack.start_kubelet()
    wait_for("the good pod running", lambda: [c for c in containers(stack, "good")
                                              if c.state == pb.CONTAINER_RUNNING], timeout=30)
    want = {"bomb.yaml": "excessive aliasing", "fat0.yaml": "metadata.annotations: Too long",
            "huge.yaml": "the read limit is reached", "badname.yaml": "invalid pod: metadata.name",
            "link.yaml": "a key that is not a field name"}

    def refused() -> dict[str, str]:
        events = [json.loads(line) for line in stack.events_file.read_text().splitlines()] \
            if stack.events_file.exists() else []
        return {name: e["message"] for e in events if e["reason"] == "FailedValidation"
                for name in want if f"/{name}:" in e["message"]}

    got = wait_for("every bad manifest refused", lambda: (r := refused()).keys() == want.keys() and r)
    for name, why in want.items():
        assert why in got[name], got[name]
    for f in (stack.events_file, stack.base / "kubelet.log"):
        longest = max(len(line) for line in f.read_text().splitlines())
        assert longest < LONGEST_LINE, f"{f.name}: a line of {longest:,} characters"
    assert "s3cr3t" not in (stack.base / "kubelet.log").read_text()
    names = {s.metadata.name for s in runtime(stack).ListPodSandbox(pb.ListPodSandboxRequest()).items}
    assert names == {"good"}, names
