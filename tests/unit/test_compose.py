"""compose.yaml, the Dockerfile and the collector config, checked without a Docker engine:
against the Compose Specification's schema, and for consistency with our components."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import jsonschema
import pytest
import yaml

from cristack.harness import cli
from fake_conmon.main import build_parser as conmon_parser
from fake_containerd import config as ctd_config
from fake_containerd.tracing import containerd_telemetry
from fake_crio import config as crio_config
from fake_kubelet import config as kubelet_config
from tests.support.composefile import load, mounts, read_env_file

REPO = Path(__file__).resolve().parents[2]
SCHEMA = REPO / "tests" / "data" / "compose-spec" / "compose-spec.json"
COLLECTOR_ENV = read_env_file(REPO / "deploy" / "collector.env")
VARIANTS = {"default": {}, "collector": COLLECTOR_ENV}
OURS = ("conmon", "crio", "kubelet")
CONTAINERD_NODE = ("containerd", "containerd-kubelet")  # the containerd profile


@pytest.fixture(params=list(VARIANTS))
def compose(request) -> dict:
    return load(REPO / "compose.yaml", VARIANTS[request.param])


def test_validates_against_the_compose_spec_schema() -> None:
    schema = json.loads(SCHEMA.read_text())
    doc = yaml.safe_load((REPO / "compose.yaml").read_text())
    validator = jsonschema.Draft202012Validator(schema)
    validator.validate(doc)
    broken = json.loads(json.dumps(doc))
    broken["services"]["crio"]["comand"] = ["typo"]
    assert not validator.is_valid(broken), "the schema catches a misspelt key"


def test_references_exist(compose) -> None:
    services = compose["services"]
    for name, svc in services.items():
        for dep in svc.get("depends_on", {}):
            assert dep in services, f"{name} depends on unknown service {dep}"
        for m in mounts(svc):
            if m.is_bind:
                assert (REPO / m.source).exists(), f"{name}: bind mount source {m.source} missing"
            else:
                assert m.source in compose["volumes"], f"{name}: volume {m.source} not declared"
    assert {"16686:16686", "4317:4317", "4318:4318"} <= set(services["jaeger"]["ports"])
    assert services["jaeger"]["image"].startswith("jaegertracing/jaeger:2.")
    assert services["collector"]["profiles"] == ["collector"]
    for name in (*OURS, *CONTAINERD_NODE):
        deps = services[name]["depends_on"]
        assert deps, f"{name} waits for what it needs"
        assert all(d["condition"] == "service_healthy" for n, d in deps.items() if n != "collector")
        # With the collector profile, stopped before the collector they export to; without it, no collector needed.
        assert deps["collector"] == {"condition": "service_started", "required": False}


def _argv(svc: dict) -> list[str]:
    cmd = svc["command"]
    return shlex.split(cmd) if isinstance(cmd, str) else list(cmd)


def _local(path: str, svc: dict) -> str:
    """A container path of a bind mount → the file in the repository."""
    for m in mounts(svc):
        if m.is_bind and (path == m.target or path.startswith(m.target + "/")):
            return str(REPO / m.source) + path[len(m.target):]
    return path


def test_every_flag_and_key_is_one_the_component_accepts(compose, tmp_path) -> None:
    services = compose["services"]
    conmon = _argv(services["conmon"])
    assert conmon[0] == "fake-conmon"
    conmon_parser().parse_args(conmon[1:])

    crio = _argv(services["crio"])
    assert crio[0] == "fake-crio"
    args = crio_config.build_parser().parse_args(crio[1:])
    cfg = crio_config.load([a if not a.startswith(("--config=", "--config-dir=")) else
                            a.split("=", 1)[0] + "=" + _local(a.split("=", 1)[1], services["crio"])
                            for a in crio[1:]])
    assert cfg.tracing.enable_tracing and args.enable_tracing
    expected = COLLECTOR_ENV["CRISTACK_OTLP_ENDPOINT"] if "collector" in cfg.tracing.tracing_endpoint else "jaeger:4317"
    assert cfg.tracing.tracing_endpoint == expected
    assert cfg.runtimes[cfg.default_runtime].runtime_type == "pod"
    assert cfg.runtimes[cfg.default_runtime].monitor_endpoint == "unix:///run/cristack/conmon.sock"

    kubelet = _argv(services["kubelet"])
    assert kubelet[0] == "fake-kubelet"
    kubelet_config.build_parser().parse_args(kubelet[1:])
    config_path = _local(kubelet[1].split("=", 1)[1], services["kubelet"])
    kcfg = kubelet_config.load(["--config", config_path])
    assert kcfg.tracing.enabled and kcfg.tracing.sampling_rate_per_million == 1_000_000
    assert kcfg.tracing.endpoint == cfg.tracing.tracing_endpoint, "kubelet and crio export to the same place"
    assert kcfg.runtime_endpoint.grpc_target == "unix:///run/cristack/crio.sock"
    assert str(kcfg.static_pod_path) == "/etc/kubernetes/manifests"
    assert str(kcfg.pod_logs_dir) == str(cfg.pod_logs_root)
    assert kcfg.read_only_port == 10255

    for name in (*OURS, *CONTAINERD_NODE):
        test = services[name]["healthcheck"]["test"]
        assert test[:3] == ["CMD", "cristack", "health"]
        cli.build_parser().parse_args(test[2:])
        assert "environment" not in services[name] or all(
            k.startswith("OTEL_") for k in services[name]["environment"])


def test_the_containerd_profile_is_a_node_of_its_own(compose) -> None:
    """fake-containerd reads the mounted config.toml as its own parser does, serves the CRI where its kubelet and
    crictl look, takes its tracing from the OTEL_* environment (to the same place as the CRI-O node), and the
    containerd node shares no volume with the CRI-O node."""
    services = compose["services"]
    ctd, kubelet = services["containerd"], services["containerd-kubelet"]
    assert ctd["profiles"] == kubelet["profiles"] == ["containerd"]
    argv = _argv(ctd)
    assert argv[0] == "fake-containerd"
    cfg = ctd_config.load(["--config", _local(argv[1].split("=", 1)[1], ctd)])
    assert str(cfg.address.path) == "/run/cristack/containerd.sock"
    assert cfg.state == Path("/run/containerd") and cfg.root == Path("/var/lib/containerd")
    assert cfg.cni_conf_dir == ctd_config.DEFAULT_CNI_CONF_DIR
    net = _local(str(cfg.cni_conf_dir), ctd)
    assert list(Path(net).glob("*.conflist")), f"{net}: the CNI network containerd loads"
    crictl = yaml.safe_load(Path(_local("/etc/crictl.yaml", ctd)).read_text())
    assert crictl["runtime-endpoint"] == crictl["image-endpoint"] == f"unix://{cfg.address.path}"
    assert ctd["healthcheck"]["test"][-1] == f"unix://{cfg.address.path}"

    telemetry, env = containerd_telemetry(dict(ctd["environment"]))
    crio = crio_config.load([a for a in _argv(services["crio"])[1:] if not a.startswith("--config")])
    assert telemetry.settings.enabled and env["OTEL_EXPORTER_OTLP_ENDPOINT"] == f"http://{crio.tracing.tracing_endpoint}"

    kargs = kubelet_config.build_parser().parse_args(_argv(kubelet)[1:])
    kcfg = kubelet_config.load(["--config", _local(kargs.config.as_posix(), kubelet),
                                "--container-runtime-endpoint", kargs.container_runtime_endpoint])
    assert kcfg.runtime_endpoint.grpc_target == f"unix://{cfg.address.path}"
    assert str(kcfg.pod_logs_dir) == str(cfg.pod_logs_root)
    assert kcfg.tracing.endpoint == crio.tracing.tracing_endpoint
    # containerd's image filesystem (ImageFsInfo) is on the kubelet's own disk, read-only.
    assert any(m.target == str(cfg.root) and m.read_only for m in mounts(kubelet))

    def volumes(names) -> set[str]:
        return {m.source for n in names for m in mounts(services[n]) if not m.is_bind}

    assert volumes(CONTAINERD_NODE).isdisjoint(volumes(OURS)), "the two nodes share no state"
    assert volumes(["containerd"]) >= volumes(["containerd-kubelet"]), "its kubelet sees only what containerd has"


def test_configuration_is_mounted_read_only(compose) -> None:
    """Every file or directory of the repository a service sees is read-only to it."""
    for name, svc in compose["services"].items():
        for m in mounts(svc):
            if m.is_bind:
                assert m.read_only, f"{name}: {m.source} is mounted read-write"


def test_collector_config_pipeline_references_defined_components() -> None:
    cfg = yaml.safe_load((REPO / "deploy" / "otel-collector.yaml").read_text())
    service = cfg["service"]
    assert set(service["extensions"]) <= set(cfg["extensions"]) == {"health_check", "pprof", "zpages"}
    for pipeline in service["pipelines"].values():
        assert set(pipeline["receivers"]) <= set(cfg["receivers"])
        assert set(pipeline["processors"]) <= set(cfg["processors"])
        assert set(pipeline["exporters"]) <= set(cfg["exporters"])
    traces = service["pipelines"]["traces"]
    assert traces["receivers"] == ["otlp", "zipkin"] and traces["exporters"] == ["debug", "otlp/jaeger"]
    assert cfg["exporters"]["debug"]["verbosity"] == "detailed"
    assert cfg["exporters"]["otlp/jaeger"]["endpoint"] == "jaeger:4317"
    assert set(cfg["receivers"]["otlp"]["protocols"]) == {"grpc", "http"}


def test_dockerfile_is_slim_pinned_and_non_root() -> None:
    text = (REPO / "Dockerfile").read_text()
    froms = [line.split()[1] for line in text.splitlines() if line.startswith("FROM ")]
    assert froms[-1].startswith("python:") and "slim" in froms[-1] and froms[-1].count(".") >= 2, froms
    assert "USER cristack" in text and "pip install --no-cache-dir ." in text
    final = text[text.rindex("FROM "):]
    assert "apt-get" not in final and "gcc" not in final, "no build tools in the final image"
    for path in ("tools/crictl", "deploy/compose/crictl.yaml", "cristack", "fake_crio", "fake_conmon",
                 "fake_kubelet", "pyproject.toml"):
        assert (REPO / path).exists(), f"Dockerfile copies {path}"
    # Every package the wheel is built from, and what cristack/examples links to, is in the build stage.
    copied = {line.split()[1] for line in text.splitlines() if line.startswith("COPY ") and "--from" not in line}
    packages = {"cristack", *(p.name for p in REPO.glob("fake_*") if (p / "__init__.py").exists())}
    assert packages <= copied, f"the image would lack {packages - copied}"
    assert (REPO / "cristack" / "examples").resolve().name in copied, "the examples the package links to"


def test_every_service_is_held_to_a_3s_stop_grace_period() -> None:
    """`docker compose down` sends SIGTERM and SIGKILLs after stop_grace_period: 3 s for every service, so that the
    real-engine test (tests/e2e/test_compose_real.py) reads "no container needed SIGKILL" as "each stopped within
    3 s" (the engine's default would allow 10)."""
    compose = load(REPO / "compose.yaml")
    assert {name: svc.get("stop_grace_period") for name, svc in compose["services"].items()} == \
        dict.fromkeys(compose["services"], "3s")
