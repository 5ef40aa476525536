"""Manifests, back-off arithmetic, restart decisions, KubeletConfiguration parsing."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from cristack.config.durations import parse_duration
from cristack.harness.procs import component_argv
from cristack.wire.errors import ConfigError
from fake_kubelet import config
from fake_kubelet.backoff import Backoff, should_restart
from fake_kubelet.manifests import ManifestError, parse_pod, scan

POD = b"""
apiVersion: v1
kind: Pod
metadata: {name: web, namespace: prod, labels: {app: web}}
spec:
  restartPolicy: OnFailure
  terminationGracePeriodSeconds: 3
  initContainers:
    - {name: init, image: busybox:1.36, command: [echo, init]}
  containers:
    - name: main
      image: nginx
      args: ["-g", "daemon off;"]
      env: [{name: A, value: "1"}]
      workingDir: /srv
"""


def test_parse_pod() -> None:
    pod = parse_pod(POD, "web.yaml")
    assert (pod.name, pod.namespace, pod.restart_policy) == ("web", "prod", "OnFailure")
    assert pod.termination_grace_period == 3
    assert [c.name for c in pod.init_containers] == ["init"]
    main = pod.containers[0]
    assert (main.image_pull_policy, main.args, main.env, main.working_dir) == \
        ("Always", ("-g", "daemon off;"), (("A", "1"),), "/srv")
    assert pod.init_containers[0].image_pull_policy == "IfNotPresent"  # tagged, not :latest


def test_derived_uid_is_stable_and_changes_with_content() -> None:
    a = parse_pod(POD, "web.yaml").uid
    assert a == parse_pod(POD, "web.yaml").uid
    assert a != parse_pod(POD.replace(b"prod", b"dev"), "web.yaml").uid
    assert parse_pod(POD.replace(b"namespace: prod", b"namespace: prod, uid: fixed"), "web.yaml").uid == "fixed"


@pytest.mark.parametrize("text, field", [
    (b"kind: Deployment\n", "kind"),
    (b"kind: Pod\nmetadata: {}\nspec: {containers: [{name: a, image: b}]}\n", "metadata.name"),
    (b"kind: Pod\nmetadata: {name: x}\nspec: {containers: []}\n", "spec.containers"),
    (b"kind: Pod\nmetadata: {name: x}\nspec: {containers: [{name: a}]}\n", "spec.containers[0].image"),
    (b"kind: Pod\nmetadata: {name: x}\nspec: {restartPolicy: Sometimes, containers: [{name: a, image: b}]}\n",
     "spec.restartPolicy"),
    (b"kind: Pod\nmetadata: {name: x}\nspec: {containers: [{name: a, image: b, imagePullPolicy: Maybe}]}\n",
     "imagePullPolicy"),
    (b"kind: Pod\nmetadata: {name: x}\nspec: {containers: [{name: a, image: b}, {name: a, image: c}]}\n",
     "duplicate"),
    (b"kind: Pod\nmetadata: {name: x}\nspec: {containers: [{name: a, image: b, command: echo}]}\n",
     "command"),
    (b"{{{", "invalid YAML"),
])
def test_bad_manifests_name_file_and_field(text: bytes, field: str) -> None:
    with pytest.raises(ManifestError) as err:
        parse_pod(text, "bad.yaml")
    assert str(err.value).startswith("bad.yaml: ") and field in str(err.value)


def test_scan_skips_bad_files(tmp_path: Path) -> None:
    (tmp_path / "good.yaml").write_bytes(POD)
    (tmp_path / "bad.yaml").write_text("kind: Pod\n")
    (tmp_path / ".hidden.yaml").write_text("garbage")
    (tmp_path / "notes.txt").write_text("garbage")
    pods, errors = scan(tmp_path, "node")
    assert [p.name for p in pods.values()] == ["web"]
    assert len(errors) == 1 and "bad.yaml" in errors[0]


def test_backoff_doubles_to_the_ceiling_and_resets() -> None:
    now = [0.0]
    b = Backoff(10, 300, clock=lambda: now[0])
    assert b.in_backoff("k") == 0
    delays = []
    for _ in range(7):
        delays.append(b.next("k"))
        now[0] += 1
    assert delays == [10, 20, 40, 80, 160, 300, 300]
    assert b.in_backoff("k") == pytest.approx(299)
    now[0] += 601  # twice the ceiling without a failure: forgotten
    assert b.next("k") == 10
    b.reset("k")
    assert b.in_backoff("k") == 0


def test_crash_backoff_is_counted_from_the_containers_exit() -> None:
    """doBackOff asks IsInBackOffSince(key, finishedAt): a container that ran longer than its back-off still
    waits the whole back-off after it exits, not after it was started."""
    now = [100.0]
    b = Backoff(10, 300, clock=lambda: now[0])
    assert b.in_backoff_since("k", 99.0) == 0, "the first crash restarts at once"
    assert b.next("k", 99.0) == 10
    now[0] = 130.0  # it ran 30 s and exited at 129
    assert b.in_backoff_since("k", 129.0) == pytest.approx(9)
    now[0] = 139.0
    assert b.in_backoff_since("k", 129.0) == 0
    assert b.next("k", 129.0) == 20


def test_scenario_backoff_ceiling_is_scaled_like_its_base() -> None:
    """The real kubelet: 10 s doubling to 300 s; a scenario at 0.4 s doubles to 12 s."""
    from cristack.harness import scenarios

    assert scenarios.backoff_max(scenarios.load("crashloop")) == "12s"
    assert scenarios.backoff_max(scenarios.load("hello")) == "300s"


@pytest.mark.parametrize("policy, code, restart", [
    ("Always", 0, True), ("Always", 1, True), ("OnFailure", 0, False), ("OnFailure", 2, True),
    ("Never", 0, False), ("Never", 1, False),
])
def test_restart_decisions(policy: str, code: int, restart: bool) -> None:
    assert should_restart(policy, code) is restart


def test_durations() -> None:
    assert parse_duration("1m30s") == 90 and parse_duration("200ms") == 0.2 and parse_duration("2") == 2
    with pytest.raises(ValueError):
        parse_duration("soon")


def test_kubelet_config(tmp_path: Path) -> None:
    path = tmp_path / "k.yaml"
    path.write_text("apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\n"
                    "staticPodPath: manifests\ncontainerRuntimeEndpoint: unix:///x/crio.sock\n"
                    "tracing: {endpoint: 'collector:4317'}\nfeatureGates: {KubeletTracing: true}\nfailSwapOn: false\n")
    cfg = config.load(["--config", str(path)])
    assert cfg.static_pod_path == tmp_path / "manifests"
    assert cfg.runtime_endpoint.grpc_target == "unix:///x/crio.sock"
    assert cfg.tracing.enabled and cfg.tracing.endpoint == "collector:4317"
    assert cfg.tracing.sampling_rate_per_million is None
    cfg = config.load(["--config", str(path), "--container-runtime-endpoint", "/y.sock", "--pod-manifest-path", "/p"])
    assert cfg.runtime_endpoint.grpc_target == "unix:///y.sock" and cfg.static_pod_path == Path("/p")
    assert not config.load([]).tracing.enabled


@pytest.mark.parametrize("body, key", [
    ("kind: Deployment\n", "kind"),
    ("staticPodPath: 3\n", "staticPodPath"),
    ("featureGates: {KubeletTracing: 'yes'}\n", "featureGates.KubeletTracing"),
    ("tracing: {samplingRatePerMillion: -1}\n", "tracing.samplingRatePerMillion"),
    ("tracing: {endpoint: 'ftp://x'}\n", "tracing.endpoint"),
    ("fileCheckFrequency: soon\n", "fileCheckFrequency"),
    ("readOnlyPort: 70000\n", "readOnlyPort"),
    ("podCIDR: 10.1.0.0/33\n", "podCIDR"),
    ("podCIDR: 10.1.0.0\n", "podCIDR"),
    ("podCIDR: 10.1.0.0/16,10.2.0.0/16\n", "podCIDR"),
    ("podCIDR: 24\n", "podCIDR"),
])
def test_kubelet_config_errors(tmp_path: Path, body: str, key: str) -> None:
    path = tmp_path / "k.yaml"
    path.write_text(body)
    with pytest.raises(ConfigError) as err:
        config.load(["--config", str(path)])
    assert str(path) in str(err.value) and key in str(err.value)


def test_kubelet_bad_config_exits_2(tmp_path: Path) -> None:
    path = tmp_path / "k.yaml"
    path.write_text("staticPodPath: [1]\n")
    proc = subprocess.run(component_argv("fake-kubelet", "--config", str(path)), capture_output=True, text=True,
                          timeout=30)
    assert proc.returncode == 2
    assert f"{path}: staticPodPath: expected str" in proc.stderr and "Traceback" not in proc.stderr


def test_node_name_and_pod_cidr(tmp_path: Path, monkeypatch) -> None:
    # The real kubelet's GetHostname: the override, else the hostname, trimmed and lower-cased.
    monkeypatch.setattr(config.socket, "gethostname", lambda: "Worker-7.Example")
    assert config.load([]).node_name == "worker-7.example"
    assert config.load(["--hostname-override", " Node-A "]).node_name == "node-a"
    with pytest.raises(ConfigError, match="--hostname-override"):
        config.load(["--hostname-override", "  "])
    path = tmp_path / "k.yaml"
    path.write_text("podCIDR: 10.244.1.0/24,fd00:1::/64\n")
    assert config.load(["--config", str(path)]).pod_cidr == "10.244.1.0/24,fd00:1::/64"
    assert config.load([]).pod_cidr == ""


def test_kubelet_bad_pod_cidr_exits_2(tmp_path: Path) -> None:
    path = tmp_path / "k.yaml"
    path.write_text("apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\npodCIDR: 10.0.0.0/40\n")
    proc = subprocess.run(component_argv("fake-kubelet", "--config", str(path)), capture_output=True, text=True,
                          timeout=30)
    assert proc.returncode == 2
    assert f"{path}: podCIDR: '10.0.0.0/40' is not a CIDR" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.parametrize(("text", "message"), [
    ("spec:\n  contianers:\n  - {name: main, image: busybox}\n",
     "spec.contianers: unknown field in PodSpec; did you mean containers?"),
    ("spec:\n  containers:\n  - {name: main, image: busybox, comand: [echo, hi]}\n",
     "spec.containers[0].comand: unknown field in Container; did you mean command?"),
    ("spec:\n  containers:\n  - {name: main, image: busybox, imagePullPolicy: IfNotPresnt}\n",
     "spec.containers[0].imagePullPolicy: 'IfNotPresnt' is not one of Always, IfNotPresent, Never; "
     "did you mean IfNotPresent?"),
    ("spec:\n  restartPolicy: Nevr\n  containers:\n  - {name: main, image: busybox}\n",
     "did you mean Never?"),
    ("metdata: {name: x}\nspec:\n  containers:\n  - {name: main, image: busybox}\n",
     "metdata: unknown field in Pod; did you mean metadata?"),
    ("spec:\n  containers:\n  - name: main\n     image: busybox\n", "invalid YAML"),
])
def test_manifest_typos_are_named_with_a_suggestion(text: str, message: str) -> None:
    from fake_kubelet.manifests import ManifestError, parse_pod

    doc = text if text.startswith("metdata") else "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\n" + text
    if text.startswith("metdata"):
        doc = "apiVersion: v1\nkind: Pod\n" + text
    with pytest.raises(ManifestError) as err:
        parse_pod(doc.encode(), "typo.yaml")
    assert message in str(err.value) and str(err.value).startswith("typo.yaml: ")


def test_real_but_unmodelled_fields_are_accepted() -> None:
    from fake_kubelet.manifests import parse_pod

    doc = ("apiVersion: v1\nkind: Pod\nmetadata: {name: p, labels: {a: b}}\nspec:\n  nodeSelector: {x: y}\n"
           "  containers:\n  - {name: main, image: busybox, resources: {limits: {cpu: 1}}, ports: []}\n")
    assert parse_pod(doc.encode(), "ok.yaml").name == "p"


def test_kubelet_configuration_typo_is_named_with_a_suggestion(tmp_path) -> None:
    from cristack.wire.errors import ConfigError
    from fake_kubelet.config import read_config_file

    cfg = tmp_path / "kubelet.yaml"
    cfg.write_text("apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\nstaticPodPth: /x\n")
    with pytest.raises(ConfigError) as err:
        read_config_file(cfg)
    assert str(err.value) == f"{cfg}: staticPodPth: unknown field; did you mean staticPodPath?"
    cfg.write_text("apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\nfailSwapOn: false\n")
    assert read_config_file(cfg)["failSwapOn"] is False  # real, unmodelled: accepted (with a warning)


def test_a_relative_pod_manifest_path_flag_is_the_working_directorys(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """The README's `--config examples/kubelet/kubelet-config.yaml --pod-manifest-path examples/manifests`, run from
    the checkout: the flag's path is the working directory's, the file's staticPodPath is the file's directory's."""
    (tmp_path / "etc").mkdir()
    path = tmp_path / "etc" / "kubelet.yaml"
    path.write_text("apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\nstaticPodPath: pods\n")
    monkeypatch.chdir(tmp_path)
    assert config.load(["--config", "etc/kubelet.yaml"]).static_pod_path == Path("etc/pods")
    assert config.load(["--config", "etc/kubelet.yaml", "--pod-manifest-path", "manifests"]).static_pod_path == \
        Path("manifests")


def test_event_messages_are_cut_at_the_apis_note_limit(tmp_path: Path) -> None:
    """An image name or a runtime's error can be megabytes; an event's note may have 1,024 characters
    (pkg/apis/core/validation/events.go NoteLengthLimit), and so may each line of the events file's message."""
    import json

    from fake_kubelet.events import NOTE_LENGTH_LIMIT, EventRecorder, pod_ref

    path = tmp_path / "events.jsonl"
    recorder = EventRecorder(path, "node")
    recorder.record(pod_ref("ns", "p", "u"), "Normal", "Pulling", f'Pulling image "{"i" * 4_000_000}"')
    recorder.record(pod_ref("ns", "p", "u"), "Normal", "Pulled", "short")
    recorder.close()
    long, short = (json.loads(line)["message"] for line in path.read_text().splitlines())
    assert len(long) == NOTE_LENGTH_LIMIT and long.endswith("...") and short == "short"
