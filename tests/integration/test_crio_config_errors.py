"""fake-crio as a command: a configuration it cannot run with is one line naming the file and the key, and
exit status 2."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def test_an_unknown_cgroup_manager_is_a_config_error(tmp_path: Path):
    conf = tmp_path / "crio.conf"
    conf.write_text('[crio.runtime]\ncgroup_manager = "cgroupsv3"\n')
    proc = subprocess.run([sys.executable, "-m", "fake_crio.main", "--config", str(conf), "--root",
                           str(tmp_path / "root"), "--listen", str(tmp_path / "c.sock")],
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 2
    assert str(conf) in proc.stderr and "crio.runtime.cgroup_manager" in proc.stderr and "cgroupsv3" in proc.stderr
