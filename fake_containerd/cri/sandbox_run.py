"""RunPodSandbox (internal/cri/server/sandbox_run.go of containerd v2.4.2), all of it in ``cri.sandbox.run``
(namespace, sandbox.id, sandbox.name; the sandbox image's pull attributes when it had to be pulled):

the sandbox's metadata record (``metadata.sandbox.Create``); for a pod with a network namespace of its own the
CNI path (``setup pod network``, two ``metadata.sandbox.Update``, ``cni.setup_pod_network``); the sandbox image
pulled if missing (ensurePauseImageExists: the registry and unpack spans); the podsandbox controller's start
(the pause container and its task, fake_containerd.cri.podsandbox); the record updated once more. The name is
held from before the first await; a failure gives it back and undoes what was done.
"""

from __future__ import annotations

import logging

from cristack.wire.errors import NotFound, RpcError
from cristack.wire.pb.runtime.v1 import api_pb2 as pb
from fake_containerd.cri import podsandbox
from fake_containerd.cri.errors import Unknown
from fake_containerd.cri.gotext import proto_text
from fake_containerd.cri.images.image_pull import pull_image
from fake_containerd.cri.service import CriService
from fake_containerd.cri.spec import host_network
from fake_containerd.cri.store import SANDBOX_READY, Sandbox, generate_id, sandbox_name
from fake_containerd.metadata import SandboxMeta
from fake_containerd.tracing import add_event

log = logging.getLogger(__name__)


async def run_pod_sandbox(c: CriService, request: pb.RunPodSandboxRequest) -> str:
    config = request.config
    with c.tracing.span("cri.sandbox.run", namespace=True) as span:
        log.debug("Sandbox config %s", proto_text(config))
        sid = generate_id()
        if not config.HasField("metadata"):
            raise Unknown("sandbox config must include metadata")
        name = sandbox_name(config.metadata)
        span.set_attributes({"sandbox.id": sid, "sandbox.name": name})
        log.debug('generated id for sandbox name "%s"', name, extra={"fields": {"podsandboxid": sid}})
        try:
            c.stores.sandbox_names.reserve(name, sid)
        except RpcError as err:
            raise Unknown(f'failed to reserve sandbox name "{name}": {err}') from None
        done = False
        meta = None
        sandbox = Sandbox(sid, name, config, request.runtime_handler)
        try:
            try:
                _, runtime = c.runtime(request.runtime_handler)
            except RpcError as err:
                raise type(err)(f'unable to get OCI runtime for sandbox "{sid}": {err}') from None
            meta = c.client.metadata.create_sandbox(SandboxMeta(sid, runtime.runtime_type, runtime.sandboxer,
                                                                labels={"name": name}))
            if not host_network(config):
                await _setup_network(c, sandbox, meta)
            image = await ensure_pause_image(c)
            await podsandbox.start(c, sandbox, image)
            c.client.metadata.update_sandbox(meta)
            sandbox.state = SANDBOX_READY
            c.stores.sandboxes[sid] = sandbox
            c.send_event(sid, sid, pb.CONTAINER_CREATED_EVENT)
            c.send_event(sid, sid, pb.CONTAINER_STARTED_EVENT)
            done = True
            return sid
        finally:
            if not done:
                await _undo(c, sandbox, meta)
                c.stores.sandbox_names.release(name)


async def _setup_network(c: CriService, sandbox: Sandbox, meta: SandboxMeta) -> None:
    add_event("setup pod network")
    sandbox.netns_path = c.networks.new_netns()
    meta.extensions["netns"] = sandbox.netns_path
    c.client.metadata.update_sandbox(meta)
    used = {sb.ip for sb in c.stores.sandboxes.values() if sb.ip}
    try:
        sandbox.ip = c.networks.setup(sandbox.id, sandbox.netns_path, sandbox.runtime_handler, used)
    except RpcError as err:
        raise type(err)(f'failed to setup network for sandbox "{sandbox.id}": {err}') from None
    except RuntimeError as err:
        raise Unknown(f'failed to setup network for sandbox "{sandbox.id}": {err}') from None
    meta.extensions["ip"] = sandbox.ip
    c.client.metadata.update_sandbox(meta)


async def ensure_pause_image(c: CriService):  # noqa: ANN201 - a StoredImage
    """ensurePauseImageExists: the pinned sandbox image, pulled if the node lacks it."""
    ref = c.images.config.sandbox_image
    stored = c.images.store.find(ref)
    if stored is not None:
        return stored
    try:
        await pull_image(c.images, ref)
    except RpcError as err:
        raise type(err)(f'failed to pull image "{ref}": {err}') from None
    stored = c.images.store.find(ref)
    if stored is None:
        raise NotFound(f'failed to get image "{ref}": not found')
    return stored


async def _undo(c: CriService, sandbox: Sandbox, meta: SandboxMeta | None) -> None:
    """The deferred cleanups of a failed RunPodSandbox, last first."""
    try:
        if sandbox.container is not None:
            await podsandbox.shutdown(c, sandbox)  # kills and deletes the task, then the pause container
        if sandbox.netns_path and c.networks.ready:
            c.networks.teardown(sandbox.id)
        if meta is not None:
            c.client.metadata.delete_sandbox(sandbox.id)
    except RpcError as err:
        log.error('failed to clean up failed sandbox "%s": %s', sandbox.id, err)
