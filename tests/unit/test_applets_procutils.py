"""The process applets (cristack/containers/applets/procutils.py) as real processes: a container sees its own."""

from __future__ import annotations

import signal
from pathlib import Path

from tests.support.applets import spawn


def test_child_top_ps_and_pgrep_show_the_containers_own_processes(tmp_path: Path) -> None:
    from cristack.containers.containerfs import BUNDLE_ENV, Bundle

    root = tmp_path / "root"
    root.mkdir()
    bundle = Bundle().write(tmp_path / "bundle")
    env = {BUNDLE_ENV: str(bundle), "PWD": "/"}
    main = spawn("top", "-d", "0.2", env=env, cwd=str(root))
    outsider = spawn("sleep", "30", env={}, cwd=str(tmp_path))
    try:
        line = main.stdout.readline()  # type: ignore[union-attr]
        assert line.startswith(b"Mem: ")
        proc = spawn("ps", env=env, cwd=str(root))
        out, _ = proc.communicate(timeout=10)
        lines = out.decode().splitlines()
        assert lines[0] == "PID   USER     TIME  COMMAND"
        assert any(line.endswith(" top -d 0.2") and line.split()[0] == str(main.pid) for line in lines)
        assert not any(str(outsider.pid) == line.split()[0] for line in lines[1:]), "another container's process"
        pg = spawn("pgrep", "top", env=env, cwd=str(root))
        assert pg.communicate(timeout=10)[0].decode().split() == [str(main.pid)]
        pg = spawn("pgrep", "sleep", env=env, cwd=str(root))
        assert pg.communicate(timeout=10)[0] == b"" and pg.returncode == 1
        # top keeps refreshing until it is killed.
        frames = 1
        while frames < 2:
            frames += main.stdout.readline().startswith(b"Mem: ")  # type: ignore[union-attr]
        assert main.poll() is None
    finally:
        main.send_signal(signal.SIGTERM)
        outsider.kill()
        assert main.wait(10) == -signal.SIGTERM
        outsider.wait(10)
