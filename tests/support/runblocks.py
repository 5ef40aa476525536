"""Run a documented shell block as a user would, in a directory laid out like a clone (``.venv``, ``Makefile``,
``examples`` ...), and check the comments written after it (tests/support/docblocks.py)."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import jsonschema
import yaml

from tests.support.composefile import load, read_env_file
from tests.support.docblocks import Block

REPO = Path(__file__).resolve().parents[2]
# What a clone holds that documented commands read, linked into the directory a block runs in. `.venv` is the venv
# running these tests (in a clone that is the one `make` builds), so `.venv/bin/cristack` is this checkout's.
CLONE = ("Makefile", "pyproject.toml", "examples", "deploy", "compose.yaml", "Dockerfile", "docs", "scripts")


def clone_dir(path: Path) -> Path:
    """``path`` laid out like the root of a clone, so commands run as written there and their files land there."""
    path.mkdir(parents=True, exist_ok=True)
    (path / ".venv").symlink_to(Path(sys.prefix))
    for name in CLONE:
        if (REPO / name).exists():
            (path / name).symlink_to(REPO / name)
    return path


def env() -> dict[str, str]:
    """The user's environment with the project's venv first on PATH; no colour, a pipe's width."""
    out = {**os.environ, "PATH": f"{Path(sys.prefix) / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}"}
    out.pop("COLUMNS", None)
    out.pop("FORCE_COLOR", None)
    return out


@dataclass
class Result:
    output: str  # stdout and stderr of every command, in order
    codes: list[int]


def run(block: Block, cwd: Path, *, timeout: float = 300, rewrite: dict[str, str] | None = None) -> Result:
    """Runs the block's commands with bash in ``cwd``. ``rewrite`` replaces text in the commands (a fixed port by a
    free one, so parallel runs do not collide); nothing else is changed."""
    commands = [_rewrite(c, rewrite) for c in block.commands]
    if block.background:
        return _run_background(block, commands, cwd, timeout)
    out, codes = [], []
    for cmd in commands:
        proc = subprocess.run(["bash", "-c", cmd], cwd=cwd, env=env(), capture_output=True, text=True,
                              timeout=timeout, stdin=subprocess.DEVNULL)
        out.append(f"$ {cmd}\n{proc.stdout}{proc.stderr}")
        codes.append(proc.returncode)
    return Result("".join(out), codes)


_RESULTS: dict[tuple[str, ...], Result] = {}
_WORKDIR: list[Path] = []


def shared_workdir() -> Path:
    """One clone-like directory for every documented block of a test session (as one user's shell would be)."""
    if not _WORKDIR:
        import tempfile

        _WORKDIR.append(clone_dir(Path(tempfile.mkdtemp(prefix="cristack-docs-")) / "cristack"))
    return _WORKDIR[0]


def run_cached(block: Block, *, timeout: float = 400, rewrite: dict[str, str] | None = None) -> Result:
    """``run`` in the shared directory, once per session for the same commands: the README and the workshop
    guide document some of the same commands, and a scenario run takes seconds.

    One addition to what is written: a single scenario's run (``cristack demo --scenario NAME``) also keeps its
    spans with ``--json`` (``scenario_json(NAME)``), so the scenario snapshot tests read the very run the guide's
    test checks instead of running every scenario again. Its only trace in the output is one ``wrote`` line."""
    commands = [_keep_scenario_spans(_rewrite(c, rewrite)) for c in block.commands]
    key = (*commands, str(block.background))
    if key not in _RESULTS:
        _RESULTS[key] = run(dataclasses.replace(block, commands=commands), shared_workdir(), timeout=timeout)
    return _RESULTS[key]


SCENARIO_RUN = re.compile(r"^\S*cristack demo --scenario ([\w-]+)(?:\s|$)")


def scenario_json(name: str) -> Path:
    """Where the session's run of scenario ``name`` (through a documented command) wrote its spans."""
    out = shared_workdir().parent / "scenario-spans"
    out.mkdir(exist_ok=True)
    return out / f"{name}.json"


def _keep_scenario_spans(cmd: str) -> str:
    m = SCENARIO_RUN.match(cmd)
    if m is None or m.group(1) == "all" or "--json" in cmd:
        return cmd
    return f"{cmd} --json {scenario_json(m.group(1))}"


def _rewrite(cmd: str, rewrite: dict[str, str] | None) -> str:
    """Every ``old`` replaced by its ``new`` in one pass, the longest first where keys overlap: one after another,
    examples/crio/crio.conf was replaced again inside the new path of examples/crio/crio.conf.d (fake-crio then
    refused the mangled --config-dir, and the README's --runonce example waited for a runtime that never came)."""
    if not rewrite:
        return cmd
    keys = re.compile("|".join(re.escape(k) for k in sorted(rewrite, key=len, reverse=True)))
    return keys.sub(lambda m: rewrite[m.group(0)], cmd)


def _run_background(block: Block, commands: list[str], cwd: Path, timeout: float) -> Result:
    """All commands but the last keep running; the last is retried until the block's checks hold (or time is up)."""
    procs = [subprocess.Popen(["bash", "-c", f"exec {c}"], cwd=cwd, env=env(), stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True, start_new_session=True, stdin=subprocess.DEVNULL)
             for c in commands[:-1]]
    last = commands[-1]
    out, code = "", -1
    try:
        deadline = time.monotonic() + min(timeout, 120)
        while time.monotonic() < deadline:
            proc = subprocess.run(["bash", "-c", last], cwd=cwd, env=env(), capture_output=True, text=True,
                                  timeout=90, stdin=subprocess.DEVNULL)
            out, code = proc.stdout + proc.stderr, proc.returncode
            if code == 0 and not failures(block, out, cwd):
                break
            if any(p.poll() is not None for p in procs):
                break
            time.sleep(0.5)
    finally:
        logs = []
        for p in procs:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGINT)  # Ctrl-C, as the user stops it
            try:
                logs.append(p.communicate(timeout=30)[0])
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                logs.append(p.communicate()[0])
    head = "".join(f"$ {c} &\n{log}" for c, log in zip(commands[:-1], logs, strict=True))
    return Result(f"{head}$ {last}\n{out}", [*(p.returncode for p in procs), code])


def failures(block: Block, output: str, cwd: Path) -> list[str]:
    """The block's checks that do not hold, each said in a line."""
    bad = []
    for e in block.expects:
        if e.file is not None:
            path = cwd / e.file
            text = path.read_text(errors="replace") if path.is_file() else ""
            if e.text not in text:
                bad.append(f"{e.file} lacks {e.text!r}" if text else f"{e.file} was not written")
            continue
        n = output.count(e.text)
        if e.absent and n:
            bad.append(f"output holds {e.text!r}, which it must not")
        elif e.times is not None and n != e.times:
            bad.append(f"output holds {e.text!r} {n} times, not {e.times}")
        elif not e.absent and e.times is None and not n:
            bad.append(f"output lacks {e.text!r}")
    return bad


COMPOSE_UP = re.compile(r"^docker compose(?: --env-file (\S+))?(?: --profile (\S+))? up --build((?: [a-z][\w-]*)*)$")
COMPOSE_DOWN = re.compile(r"^docker compose(?: --profile (\S+))? down(?: -v)?$")
COMPOSE_EXEC = re.compile(r"^docker compose exec (\S+) ")


def check_without_docker(command: str) -> list[str]:
    """What can be checked of a ``docker compose`` command without an engine: the file it would read is valid under
    the Compose Specification (with the env file it names), what it builds exists, the profile and the services it
    names are there."""
    compose = yaml.safe_load((REPO / "compose.yaml").read_text())
    schema = json.loads((REPO / "tests" / "data" / "compose-spec" / "compose-spec.json").read_text())
    problems = [e.message for e in jsonschema.Draft202012Validator(schema).iter_errors(compose)]
    up, down, ex = COMPOSE_UP.match(command), COMPOSE_DOWN.match(command), COMPOSE_EXEC.match(command)
    profile = (up or down).group(2 if up else 1) if up or down else None
    profiles = {p for s in compose["services"].values() for p in s.get("profiles", [])}
    if profile is not None and profile not in profiles:
        problems.append(f"no profile {profile!r} in compose.yaml")
    for name in (up.group(3) or "").split() if up else []:
        if name not in compose["services"]:
            problems.append(f"no service {name!r} in compose.yaml")
    if up:
        env_file = REPO / up.group(1) if up.group(1) else None
        if env_file is not None and not env_file.is_file():
            return [*problems, f"{up.group(1)}: no such env file"]
        doc = load(REPO / "compose.yaml", read_env_file(env_file) if env_file else {})
        built = [s for s in doc["services"].values() if "build" in s]
        if not built:
            problems.append("--build, but no service has a build section")
        for svc in built:
            build = svc["build"] if isinstance(svc["build"], dict) else {"context": svc["build"]}
            context = REPO / build.get("context", ".")
            if not (context / build.get("dockerfile", "Dockerfile")).is_file():
                problems.append(f"build context {context} has no {build.get('dockerfile', 'Dockerfile')}")
    elif ex:
        if ex.group(1) not in compose["services"]:
            problems.append(f"no service {ex.group(1)!r} in compose.yaml")
    elif not down:
        problems.append(f"a docker command this check does not know: {command}")
    return problems
