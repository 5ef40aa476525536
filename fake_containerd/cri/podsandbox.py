"""The podsandbox controller (internal/cri/server/podsandbox of containerd v2.4.2): a pod's sandbox is a pause
container with a task of its own, the first task of the pod's shim.

- ``start`` (controller.Start, sandbox_run.go): the pause container (``client.NewContainer``), its task
  (``container.NewTask``: the shim started, Create, Connect), the exit monitor's ``task.Wait`` (a root), and
  ``client.task.Start``;
- ``stop`` (sandbox_stop.go): load the task (State), SIGKILL it (``client.task.Kill``), wait until the exit
  monitor has deleted it;
- ``shutdown`` (sandbox_delete.go): the task gone, the pause container deleted (``container.Delete``).
"""

from __future__ import annotations

import json
import logging
import shutil
import signal
from pathlib import Path

from cristack.containers.containerfs import resolv_conf
from cristack.files import write_atomic
from cristack.images.store import StoredImage
from cristack.wire.errors import NotFound
from fake_containerd.cri import events
from fake_containerd.cri.gotext import runtime_text
from fake_containerd.cri.service import CriService
from fake_containerd.cri.spec import hostname_of, sandbox_spec
from fake_containerd.cri.store import Sandbox
from fake_containerd.metadata import ContainerMeta

log = logging.getLogger(__name__)


def sandbox_dir(c: CriService, sandbox_id: str) -> Path:
    """getSandboxRootDir: ``<state>/io.containerd.grpc.v1.cri/sandboxes/<id>``."""
    return c.config.k8s_state / "sandboxes" / sandbox_id


def setup_sandbox_files(c: CriService, sandbox: Sandbox) -> None:
    """setupSandboxFiles: the pod's hostname and, with a DNSConfig, its resolv.conf, which every container of the
    pod gets bind-mounted (container_create_linux.go)."""
    root = sandbox_dir(c, sandbox.id)
    root.mkdir(parents=True, exist_ok=True, mode=0o700)
    write_atomic(root / "hostname", f"{hostname_of(sandbox.config)}\n".encode(), mode=0o644)
    dns = sandbox.config.dns_config
    if dns.servers or dns.searches or dns.options:
        write_atomic(root / "resolv.conf", resolv_conf(dns.servers, dns.searches, dns.options).encode(), mode=0o644)


async def start(c: CriService, sandbox: Sandbox, image: StoredImage) -> int:
    _, runtime = c.runtime(sandbox.runtime_handler)
    setup_sandbox_files(c, sandbox)
    fields = {"podsandboxid": sandbox.id}
    log.debug("use OCI runtime %s", runtime_text(runtime.runtime_type, runtime.options, runtime.sandboxer,
                                                 runtime.snapshotter), extra={"fields": fields})
    cat = image.catalog
    spec = sandbox_spec(sandbox.id, sandbox.config, cat, sandbox.name)
    log.debug("sandbox container spec", extra={"fields": {**fields, "spec": json.dumps(spec)}})
    image_name = image.repo_tags[0] if image.repo_tags else f"sha256:{image.id}"
    container = await c.client.new_container(ContainerMeta(
        id=sandbox.id, image=image_name, runtime=runtime.runtime_type,
        snapshotter=runtime.snapshotter or c.config.snapshotter, snapshot_key=sandbox.id, spec=spec,
        labels={"io.cri-containerd.kind": "sandbox", **dict(sandbox.config.labels)}))
    sandbox.container = container
    task = await container.new_task()
    sandbox.task = task
    exit_wait = task.wait(background=True)
    await task.start()
    sandbox.pid = task.pid
    events.start_sandbox_exit_monitor(c, sandbox, exit_wait)
    return task.pid


async def stop(c: CriService, sandbox: Sandbox) -> None:
    """stopSandboxContainer: SIGKILL to the pause container's task and wait for the exit monitor."""
    if sandbox.container is None:
        return
    try:
        task = await sandbox.container.task()
    except NotFound:
        return
    try:
        await task.kill(signal.SIGKILL)
    except NotFound:
        pass
    await sandbox.stopped.wait()


async def shutdown(c: CriService, sandbox: Sandbox) -> None:
    """controller.Shutdown: the task (if any) deleted, then the pause container."""
    if sandbox.container is None:
        return
    try:
        task = await sandbox.container.task()
    except NotFound:
        log.info("Ensure that sandbox %s in task-service has been cleanup successfully", sandbox.id)
    else:
        await task.delete(kill=True)
    try:
        await sandbox.container.delete()
    except NotFound:
        pass
    shutil.rmtree(sandbox_dir(c, sandbox.id), ignore_errors=True)
