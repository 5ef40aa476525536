"""fake-containerd's config: containerd v2.4.2's config.toml (version 4, older ones migrated), then flags."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from cristack.wire.errors import ConfigError
from fake_containerd import config
from tests.support.replay import REAL

RECIPE = REAL / "recipes" / "containerd" / "config" / "config.toml.tmpl"


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def load(*argv: str | Path) -> config.CtdConfig:
    return config.load([str(a) for a in argv])


def test_the_recorded_config_loads_with_the_unmodelled_keys_named(tmp_path: Path, caplog) -> None:
    text = RECIPE.read_text()
    for mark, value in (("@ST@", str(tmp_path / "st")), ("@CFG@", str(tmp_path / "cfg")), ("@LVL@", "debug"),
                        ("@CNIBIN@", "/opt/cni/bin"), ("@RUNC@", "/usr/bin/runc")):
        text = text.replace(mark, value)
    with caplog.at_level(logging.WARNING):
        cfg = load("--config", write(tmp_path / "config.toml", text))
    assert cfg.address.path == tmp_path / "st" / "containerd.sock"
    assert cfg.ttrpc_address == tmp_path / "st" / "containerd.sock.ttrpc"
    assert (cfg.root, cfg.state) == (tmp_path / "st" / "root", tmp_path / "st" / "state")
    assert cfg.log_level == logging.DEBUG and cfg.sandbox_image == "127.0.0.1:5001/pause:3.10"
    assert cfg.registry_config_path == tmp_path / "cfg" / "certs.d" and cfg.cni_conf_dir == tmp_path / "cfg" / "cni"
    assert cfg.runtimes["runc"].options["BinaryName"] == "/usr/bin/runc" and cfg.default_runtime == "runc"
    assert "restrict_oom_score_adj" in caplog.text and "io.containerd.nri.v1.nri'.socket_path" in caplog.text
    assert "migrated" not in caplog.text


def test_defaults_without_a_file_are_private_and_containerds(tmp_path: Path) -> None:
    cfg = load("--root", tmp_path / "r", "--state", tmp_path / "s")
    assert cfg.address.path == tmp_path / "s" / "containerd.sock" and cfg.address_is_default
    assert cfg.ttrpc_address == tmp_path / "s" / "containerd.sock.ttrpc"
    assert cfg.sandbox_image == "registry.k8s.io/pause:3.10.2" and cfg.snapshotter == "overlayfs"
    assert list(cfg.runtimes) == ["runc"] and cfg.runtimes["runc"].runtime_type == "io.containerd.runc.v2"
    assert cfg.stats_collect_period == 1.0 and cfg.cni_max_conf_num == 1


@pytest.mark.parametrize("text, key, hint", [
    ("version = 4\n[debug]\nlevle = 'info'\n", "debug.levle", "did you mean level"),
    ("version = 4\n[plugins.'io.containerd.cri.v1.runtime'.containerd]\ndefault_runtime_nam = 'runc'\n",
     "plugins.'io.containerd.cri.v1.runtime'.containerd.default_runtime_nam", "did you mean default_runtime_name"),
    ("version = 4\n[plugins.'io.containerd.cri.v1.image']\nsnapshotter = 'overlayfs'\n",
     "plugins.'io.containerd.cri.v1.image'", "did you mean io.containerd.cri.v1.images"),
    ("version = 4\n[plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]\nBinaryNam = 'x'\n",
     "runtimes.runc.options.BinaryNam", "did you mean BinaryName"),
    ("version = 4\n[cristack]\npull_latncy_ms = 1\n", "cristack.pull_latncy_ms", "did you mean pull_latency_ms"),
    ("version = 4\nroot = 3\n", "root", "expected str"),
    ("version = 4\n[debug]\nlevel = 'loud'\n", "debug.level", "unknown log level"),
    ("version = 5\n", "version", "equal to or less than `4`"),
    ("version = 4\n[plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.kata]\n"
     "runtime_type = 'io.containerd.kata.v2'\n", "runtimes.kata.runtime_type", "runs only its own runc shim"),
    ("version = 4\n[plugins.'io.containerd.cri.v1.runtime'.containerd]\ndefault_runtime_name = 'crun'\n",
     "default_runtime_name", "has no runtimes.crun table"),
])
def test_mistakes_name_the_file_and_the_key(tmp_path: Path, text: str, key: str, hint: str) -> None:
    path = write(tmp_path / "config.toml", text)
    with pytest.raises(ConfigError) as err:
        load("--config", path)
    assert str(path) in str(err.value) and key in str(err.value) and hint in str(err.value)


def test_a_version_3_file_is_migrated_with_a_warning_as_upstream(tmp_path: Path, caplog) -> None:
    path = write(tmp_path / "config.toml", "version = 3\n[grpc]\naddress = '/tmp/v3/c.sock'\n[debug]\nlevel = 'warn'\n")
    with caplog.at_level(logging.WARNING):
        cfg = load("--config", path)
    assert cfg.address.path == Path("/tmp/v3/c.sock")
    assert cfg.ttrpc_address == Path("/tmp/v3/c.sock.ttrpc")  # derived from the gRPC address before version 4
    assert cfg.log_level == logging.WARNING
    assert "Configuration migrated from version 3" in caplog.text


def test_a_version_2_cri_plugin_splits_into_images_and_runtime(tmp_path: Path) -> None:
    path = write(tmp_path / "config.toml", """
version = 2
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "registry.k8s.io/pause:3.9"
  stream_server_port = "0"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "native"
    default_runtime_name = "fast"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.fast]
      runtime_type = "io.containerd.runc.v2"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/opt/cni/bin"
    conf_dir = "/etc/cni/custom"
  [plugins."io.containerd.grpc.v1.cri".registry]
    config_path = "/etc/containerd/certs.d"
""")
    cfg = load("--config", path)
    assert cfg.sandbox_image == "registry.k8s.io/pause:3.9" and cfg.snapshotter == "native"
    assert cfg.default_runtime == "fast" and list(cfg.runtimes) == ["fast"]
    assert cfg.cni_bin_dirs == ["/opt/cni/bin"] and cfg.cni_conf_dir == Path("/etc/cni/custom")
    assert cfg.registry_config_path == Path("/etc/containerd/certs.d")


def test_imports_merge_after_the_main_file_and_a_circle_stops(tmp_path: Path) -> None:
    (tmp_path / "conf.d").mkdir()
    write(tmp_path / "conf.d" / "10-level.toml", "version = 4\n[debug]\nlevel = 'debug'\n")
    write(tmp_path / "conf.d" / "20-back.toml", "version = 4\nimports = ['../config.toml']\nroot = '/tmp/imported'\n")
    main = write(tmp_path / "config.toml", "version = 4\nimports = ['conf.d/*.toml']\nroot = '/tmp/main'\n")
    cfg = load("--config", main)
    assert cfg.log_level == logging.DEBUG and cfg.root == Path("/tmp/imported")
    conf_d = tmp_path / "conf.d"
    assert cfg.sources == [str(main), str(conf_d / "10-level.toml"), str(conf_d / "20-back.toml")]


def test_a_mistake_in_an_import_names_the_imported_file(tmp_path: Path) -> None:
    bad = write(tmp_path / "bad.toml", "version = 4\n[debug]\nlvl = 'info'\n")
    main = write(tmp_path / "config.toml", "version = 4\nimports = ['bad.toml']\n")
    with pytest.raises(ConfigError, match=f"{bad}: debug.lvl"):
        load("--config", main)


def test_flags_win_and_an_address_flag_brings_its_ttrpc_socket(tmp_path: Path) -> None:
    path = write(tmp_path / "config.toml", "version = 4\n[debug]\nlevel = 'info'\n"
                                           "[plugins.'io.containerd.server.v1.grpc']\naddress = '/tmp/file.sock'\n")
    cfg = load("--config", path, "--address", tmp_path / "flag.sock", "--log-level", "debug")
    assert cfg.address.path == tmp_path / "flag.sock" and cfg.ttrpc_address == tmp_path / "flag.sock.ttrpc"
    assert cfg.log_level == logging.DEBUG


def test_mock_registry_mirrors_are_read(tmp_path: Path) -> None:
    path = write(tmp_path / "config.toml", "version = 4\n[cristack.registry_mirrors]\n"
                                           "'127.0.0.1:5000' = 'docker.io/library'\n")
    assert load("--config", path).registry_mirrors == {"127.0.0.1:5000": "docker.io/library"}
