"""Running built-in applets from a test: in-process with captured streams, as child processes, or inside a
container's file view."""

from __future__ import annotations

import io
import os
import subprocess
from pathlib import Path

from cristack.containers.applets import Context, child_argv, run

REPO = Path(__file__).resolve().parents[2]


def run_applet(
    *argv: str, stdin: bytes = b"", env: dict[str, str] | None = None, cwd: str | None = None
) -> tuple[int, str, str]:
    """Run an applet in-process; return (status, stdout, stderr)."""
    out, err = io.BytesIO(), io.BytesIO()
    ctx = Context(
        stdin=io.BytesIO(stdin),
        stdout=out,
        stderr=err,
        env={"PATH": "/usr/bin:/bin"} if env is None else env,
        cwd=cwd or os.getcwd(),
    )
    status = run(list(argv), ctx)
    return status, out.getvalue().decode(), err.getvalue().decode()


def sh(script: str, *args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    return run_applet("sh", "-c", script, *args, env=env)


def spawn(*argv: str, **kwargs: object) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": str(REPO), **kwargs.pop("env", {})}  # type: ignore[dict-item]
    return subprocess.Popen(
        child_argv(list(argv)),
        stdin=kwargs.pop("stdin", subprocess.DEVNULL),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        **kwargs,  # type: ignore[arg-type]
    )


def run_child(*argv: str, stdin: bytes = b"", env: dict[str, str] | None = None) -> tuple[int, str, str]:
    proc = spawn(*argv, stdin=subprocess.PIPE, env=env or {})
    out, err = proc.communicate(stdin, timeout=10)
    return proc.returncode, out.decode(), err.decode()


def view(tmp_path: Path, *mounts: tuple[str, Path, bool], sysctls: dict[str, str] | None = None) -> Context:
    """A context inside a container whose scratch root is tmp_path/root, with the given mounts."""
    from cristack.containers.containerfs import Bundle, ContainerFS, Mount

    root = tmp_path / "root"
    root.mkdir(exist_ok=True)
    bundle = Bundle([Mount(dest, str(src), ro) for dest, src, ro in mounts], sysctls or {}).write(tmp_path / "bundle")
    fs = ContainerFS.from_bundle(str(bundle), str(root))
    return Context(io.BytesIO(), io.BytesIO(), io.BytesIO(), {}, "/", fs=fs)


def run_in(ctx: Context, *argv: str) -> tuple[int, str, str]:
    out, err = io.BytesIO(), io.BytesIO()
    status = run(list(argv), ctx.derive(stdout=out, stderr=err))
    return status, out.getvalue().decode(), err.getvalue().decode()
