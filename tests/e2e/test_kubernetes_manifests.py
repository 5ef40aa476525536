"""deploy/kubernetes validates offline: every kustomization, rendered by the real kustomize, passes kubeconform
-strict against JSON schemas generated from the Kubernetes v1.36.3 OpenAPI spec (scripts/k8s_schemas.py), and
the validator really catches a bad manifest. Plus what a user applying it would check: the versions compose.yaml
runs, the restricted security settings on every container, the overlays' node counts and endpoints, and the
node pods' static manifests being the repository's examples."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from tests.conftest import IN_CI, require_tool
from tests.support.kustomize import (
    DEPLOY,
    K8S_VERSION,
    KUSTOMIZATIONS,
    REPO,
    find,
    objects,
    pod_templates,
    render,
    schema_root,
)


@pytest.fixture(scope="module")
def kustomize() -> str:
    return require_tool("kustomize")


@pytest.fixture(scope="module")
def rendered(kustomize) -> dict[str, str]:
    return {k: render(kustomize, k) for k in KUSTOMIZATIONS}


@pytest.fixture(scope="module")
def validate():
    """kubeconform -strict against the generated v1.36.3 schemas: (exit status, output) of one YAML text."""
    kubeconform = require_tool("kubeconform")
    schemas = schema_root()
    if not (schemas / f"v{K8S_VERSION}-standalone-strict").is_dir():
        msg = f"no Kubernetes schemas in {schemas}; run `make tools` (scripts/k8s_schemas.py, needs Go)"
        pytest.fail(f"CI=true: {msg}") if IN_CI else pytest.skip(msg)

    def run(text: str) -> tuple[int, str]:
        # No -ignore-missing-schemas: a kind without a schema is an error, not a silent pass.
        proc = subprocess.run([kubeconform, "-strict", "-summary", "-kubernetes-version", K8S_VERSION,
                               "-schema-location", str(schemas), "-"],
                              input=text, capture_output=True, text=True, timeout=120)
        return proc.returncode, proc.stdout + proc.stderr

    return run


@pytest.mark.parametrize("kustomization", KUSTOMIZATIONS)
def test_rendered_manifests_are_valid_kubernetes_1_36(rendered, validate, kustomization):
    text = rendered[kustomization]
    status, out = validate(text)
    count = len(objects(text))
    assert status == 0, out
    assert f"{count} resources found parsing stdin - Valid: {count}, Invalid: 0, Errors: 0, Skipped: 0" in out, out


@pytest.mark.parametrize(("good", "bad", "complaint"), [
    ("readOnlyRootFilesystem:", "readOnlyRootFileSystem:", "additional properties 'readOnlyRootFileSystem'"),
    ("podManagementPolicy:", "podManagmentPolicy:", "additional properties 'podManagmentPolicy'"),
    ("replicas: 3", "replicas: three", "/spec/replicas"),
])
def test_validator_catches_a_bad_manifest(rendered, validate, good, bad, complaint):
    text = rendered["overlays/demo"]
    assert good in text
    status, out = validate(text.replace(good, bad, 1))
    assert status == 1, out
    assert complaint in out and "is invalid" in out, out


def test_unknown_kind_is_an_error_not_a_skip(validate):
    status, out = validate("apiVersion: apps/v1\nkind: StatefulSett\nmetadata:\n  name: x\n")
    assert status == 1 and "Errors: 1" in out, out


def test_images_are_the_versions_compose_runs(rendered):
    compose = yaml.safe_load((REPO / "compose.yaml").read_text())["services"]
    images = {c["image"] for _, spec in pod_templates(objects(rendered["base"])) for c in spec["containers"]}
    assert images == {"cristack:dev", compose["collector"]["image"], compose["jaeger"]["image"]}


@pytest.mark.parametrize("kustomization", KUSTOMIZATIONS)
def test_every_container_is_locked_down(rendered, kustomization):
    """The "restricted" Pod Security Standard (the namespace enforces it) and a read-only root filesystem."""
    objs = objects(rendered[kustomization])
    assert find(objs, "Namespace", "cristack")["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] \
        == "restricted"
    for name, spec in pod_templates(objs):
        pod = spec["securityContext"]
        assert pod["runAsNonRoot"] is True and pod["runAsUser"] == 10001, name
        assert pod["seccompProfile"] == {"type": "RuntimeDefault"}, name
        assert spec["automountServiceAccountToken"] is False, name
        for c in spec["containers"]:
            sc = c["securityContext"]
            assert sc == {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                          "capabilities": {"drop": ["ALL"]}}, name
            assert {"cpu", "memory"} <= set(c["resources"]["requests"]) and "memory" in c["resources"]["limits"], name


def node_args(objs: list[dict]):  # noqa: ANN201 - argparse's Namespace
    """What `cristack up` makes of the StatefulSet's container arguments, its ConfigMap's values put in."""
    from cristack.harness.cli import build_parser

    (container,) = find(objs, "StatefulSet", "cristack-node")["spec"]["template"]["spec"]["containers"]
    data = find(objs, "ConfigMap", "cristack-node")["data"]
    env = {e["name"]: data[e["valueFrom"]["configMapKeyRef"]["key"]] for e in container["env"]
           if "configMapKeyRef" in e.get("valueFrom", {})}
    env.update(POD_NAME="cristack-node-0", POD_INDEX="0")
    args = [a.replace("$(", "{").replace(")", "}").format(**env) for a in container["args"]]
    return build_parser().parse_args([*container["command"][1:], *args])


def test_overlays_node_counts_and_endpoints(rendered):
    demo, live = objects(rendered["overlays/demo"]), objects(rendered["overlays/live-nodes"])
    assert find(demo, "StatefulSet", "cristack-node")["spec"]["replicas"] == 3
    assert find(demo, "ConfigMap", "cristack-node")["data"]["OTLP_ENDPOINT"] == "otel-collector:4317"
    assert node_args(demo).runtime == ("crio",) and node_args(live).runtime == ("crio",)
    assert {o["metadata"]["name"] for o in demo if o["kind"] == "Service"} >= {"otel-collector", "jaeger"}
    assert find(live, "StatefulSet", "cristack-node")["spec"]["replicas"] == 100
    # The live nodes export to the user's collector: none of ours, no Jaeger, nothing pointing at them.
    assert {o["kind"] for o in live} == {"Namespace", "ConfigMap", "Service", "StatefulSet"}
    assert {o["metadata"]["name"] for o in live if o["kind"] == "Service"} == {"cristack-node"}
    endpoint = find(live, "ConfigMap", "cristack-node")["data"]["OTLP_ENDPOINT"]
    assert endpoint != "otel-collector:4317" and not endpoint.startswith("jaeger")


def test_the_containerd_overlay_is_the_demo_on_containerd(rendered):
    """Three nodes running `cristack up --runtime containerd`, with the demo's collector and Jaeger; only the
    ConfigMap's RUNTIME differs from the demo."""
    demo, ctd = objects(rendered["overlays/demo"]), objects(rendered["overlays/containerd"])
    args = node_args(ctd)
    assert args.command == "up" and args.runtime == ("containerd",) and args.node_name == "cristack-node-0"
    assert find(ctd, "StatefulSet", "cristack-node")["spec"]["replicas"] == 3
    data = find(ctd, "ConfigMap", "cristack-node")["data"]
    assert data == {**find(demo, "ConfigMap", "cristack-node")["data"], "RUNTIME": "containerd"}
    assert {(o["kind"], o["metadata"]["name"]) for o in ctd if o["kind"] != "ConfigMap"} == \
        {(o["kind"], o["metadata"]["name"]) for o in demo if o["kind"] != "ConfigMap"}


def test_the_fleet_overlay_is_one_pod_of_cristack_fleet_for_100_nodes(rendered):
    """One Deployment replica running `cristack fleet`, whose arguments cristack's own parser takes, exporting to
    the user's collector: no live nodes, no collector or Jaeger of ours."""
    from cristack.harness.cli import build_parser

    fleet = objects(rendered["overlays/fleet"])
    assert {(o["kind"], o["metadata"]["name"].rsplit("-", 1)[0] if o["kind"] == "ConfigMap" else o["metadata"]["name"])
            for o in fleet} == {("Namespace", "cristack"), ("ConfigMap", "cristack-node"),
                                ("Deployment", "cristack-fleet")}
    deploy = find(fleet, "Deployment", "cristack-fleet")
    assert deploy["spec"]["replicas"] == 1
    (container,) = deploy["spec"]["template"]["spec"]["containers"]
    endpoint = find(fleet, "ConfigMap", "cristack-node")["data"]["OTLP_ENDPOINT"]
    assert endpoint != "otel-collector:4317" and not endpoint.startswith("jaeger")
    env = {e["name"]: e["valueFrom"]["configMapKeyRef"]["key"] for e in container["env"]}
    assert env == {"OTLP_ENDPOINT": "OTLP_ENDPOINT", "RUNTIMES": "RUNTIMES"}
    assert container["command"] == ["cristack", "fleet"]
    runtimes = find(fleet, "ConfigMap", "cristack-node")["data"]["RUNTIMES"]
    args = build_parser().parse_args(["fleet", *(a.replace("$(OTLP_ENDPOINT)", endpoint).replace(
        "$(RUNTIMES)", runtimes) for a in container["args"])])
    assert args.nodes == 100 and args.otlp_endpoint == endpoint
    assert args.runtimes == {"crio": 0.5, "containerd": 0.5}, "half the simulated nodes on each runtime"


def test_node_static_pods_are_the_repository_examples(rendered):
    cm = find(objects(rendered["base"]), "ConfigMap", "cristack-manifests")
    assert cm["data"] == {"nginx.yaml": (REPO / "examples/manifests/nginx.yaml").read_text(),
                          "hello.yaml": (REPO / "examples/pods/hello.yaml").read_text()}
    # Not hash-suffixed: the nodes read it live, so an applied edit reaches them without a restart.
    assert cm["metadata"]["name"] == "cristack-manifests"


def test_jaeger_config_is_accepted_by_jaeger():
    jaeger = require_tool("jaeger")  # the same v2.13.0 the Deployment runs
    config = DEPLOY / "base" / "jaeger-config.yaml"
    proc = subprocess.run([jaeger, "validate", f"--config=file:{config}"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr


def test_collector_pipeline_is_accepted_by_the_same_collector_components(tmp_path: Path):
    """Jaeger v2.13.0 bundles the otlp receiver, batch processor and otlp exporter of collector v0.140.0, the
    core of otelcol-contrib 0.140.1; it lacks only the contrib health_check extension, which is left out here."""
    jaeger = require_tool("jaeger")
    cfg = yaml.safe_load((DEPLOY / "base" / "otel-collector-config.yaml").read_text())
    assert cfg.pop("extensions") == {"health_check": {"endpoint": "0.0.0.0:13133"}}  # the probes' port
    assert cfg["service"].pop("extensions") == ["health_check"]
    assert cfg["exporters"]["otlp/jaeger"]["endpoint"] == "jaeger:4317"  # the Jaeger Service in the base
    core = tmp_path / "collector.yaml"
    core.write_text(yaml.safe_dump(cfg))
    proc = subprocess.run([jaeger, "validate", f"--config=file:{core}"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr


def test_jaeger_validate_refuses_a_broken_config(tmp_path: Path):
    """So that the test above can fail: a misspelt key is refused."""
    jaeger = require_tool("jaeger")
    broken = tmp_path / "config.yaml"
    broken.write_text((DEPLOY / "base" / "jaeger-config.yaml").read_text().replace("max_traces:", "max_trace:"))
    proc = subprocess.run([jaeger, "validate", f"--config=file:{broken}"], capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0 and "max_trace" in proc.stderr, proc.stderr
