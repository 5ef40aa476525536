"""Configuration files a careless user (or a hostile one) could hand a component: too deep, too large, a device,
an alias bomb. Each is a config error naming the file (exit 2), never a traceback, a hang or unbounded memory."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from cristack.config.tomlconf import read_toml
from cristack.harness.procs import component_argv
from cristack.wire.errors import ConfigError
from fake_crio.network import network_from_file
from tests.unit.test_manifest_limits import _bomb

DEEP = 50_000


def run(name: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(component_argv(name, *args), capture_output=True, text=True, timeout=60,
                          stdin=subprocess.DEVNULL)


@pytest.mark.parametrize("body", ["a = " + "[" * DEEP + "]" * DEEP, "a = " + "{b = " * DEEP + "1" + "}" * DEEP])
def test_deep_toml_is_a_config_error(tmp_path: Path, body: str) -> None:
    path = tmp_path / "crio.conf"
    path.write_text(body + "\n")
    with pytest.raises(ConfigError, match="nested too deeply"):
        read_toml(path)
    proc = run("fake-crio", "--config", str(path))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert f"{path}: invalid TOML: arrays or tables nested too deeply" in proc.stderr


@pytest.mark.parametrize("name", ["fake-crio", "fake-kubelet"])
def test_a_config_that_never_ends_is_refused_at_10_MiB(name: str) -> None:
    proc = run(name, "--config", "/dev/zero")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "/dev/zero: cannot read: the read limit is reached" in proc.stderr


def test_a_kubelet_configuration_alias_bomb_is_refused_in_a_short_line(tmp_path: Path) -> None:
    path = tmp_path / "kubelet.yaml"
    path.write_bytes(_bomb().replace(b"apiVersion: v1\n", b"apiVersion: kubelet.config.k8s.io/v1beta1\n")
                     .split(b"metadata:")[0])
    proc = run("fake-kubelet", "--config", str(path))
    assert proc.returncode == 2 and "excessive aliasing" in proc.stderr and len(proc.stderr) < 1000, \
        proc.stderr[:2000]


def test_kubelet_configuration_values_are_cut(tmp_path: Path) -> None:
    path = tmp_path / "kubelet.yaml"
    path.write_text(f"kind: {'K' * 1_000_000}\n")
    proc = run("fake-kubelet", "--config", str(path))
    assert proc.returncode == 2 and "1,000,000 characters" in proc.stderr and len(proc.stderr) < 1000


def test_a_deep_cni_config_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "10-net.conflist"
    path.write_text('{"name": "x", "plugins": ' + "[" * DEEP + "]" * DEEP + "}")
    with pytest.raises(ConfigError, match="nested too deeply"):
        network_from_file(path)


def test_a_symlinked_config_is_followed(tmp_path: Path) -> None:
    real = tmp_path / "real.conf"
    real.write_text('[crio.runtime]\nlog_level = "info"\n')
    link = tmp_path / "crio.conf"
    link.symlink_to(real)
    assert read_toml(link) == {"crio": {"runtime": {"log_level": "info"}}}
