"""CreateContainer (internal/cri/server/container_create.go of containerd v2.4.2): the sandbox's attributes
(``sandbox.id``, ``sandbox.pid``), a new id and name (``container.id``, ``container.name``) held from before the
first await, the image resolved locally (``container.image.ref``: its containerd name), the spec built, the
containerd container made (``client.NewContainer`` with ``metadata.containers.Create``), and the
``container created`` event with the time it took."""

from __future__ import annotations

import json
import logging
import time

from opentelemetry import trace

from cristack.containers.applets import merge_command
from cristack.wire.errors import InvalidArgument, NotFound, ResourceExhausted, RpcError
from cristack.wire.pb.runtime.v1 import api_pb2 as pb
from fake_containerd.cri.errors import Unknown
from fake_containerd.cri.gotext import proto_text, runtime_text
from fake_containerd.cri.images.image_pull import go_duration
from fake_containerd.cri.podsandbox import sandbox_dir
from fake_containerd.cri.service import CriService
from fake_containerd.cri.spec import container_spec
from fake_containerd.cri.store import SANDBOX_READY, ContainerRecord, container_name, generate_id
from fake_containerd.metadata import ContainerMeta
from fake_containerd.tracing import add_event

log = logging.getLogger(__name__)


async def create_container(c: CriService, request: pb.CreateContainerRequest) -> str:
    span = trace.get_current_span()
    started = time.monotonic()
    config = request.config
    log.debug("Container config %s", proto_text(config))
    try:
        sandbox = c.stores.sandbox(request.pod_sandbox_id)
    except NotFound:
        raise NotFound(f'failed to find sandbox id "{request.pod_sandbox_id}": not found') from None
    if sandbox.state != SANDBOX_READY:
        raise Unknown(f'sandbox container "{sandbox.id}" is not running')
    span.set_attributes({"sandbox.id": sandbox.id, "sandbox.pid": str(sandbox.pid)})
    cid = generate_id()
    if not config.HasField("metadata"):
        raise Unknown("container config must include metadata")
    sandbox_md = request.sandbox_config.metadata if request.HasField("sandbox_config") else sandbox.config.metadata
    name = container_name(config.metadata, sandbox_md)
    log.debug('Generated id "%s" for container "%s"', cid, name)
    try:
        c.stores.container_names.reserve(name, cid)
    except RpcError as err:
        log.warning("possible concurrent CreateContainer request", extra={"fields": {"error": str(err)}})
        raise Unknown(f'failed to reserve container name "{name}"; check if another CreateContainer request is in '
                      f'progress: {err}') from None
    span.set_attributes({"container.id": cid, "container.name": name})
    done = False
    try:
        if len(c.stores.containers) >= c.config.max_containers:
            raise ResourceExhausted(f"fake-containerd holds {len(c.stores.containers)} containers, its limit "
                                    "(cristack.max_containers); remove some first")
        try:
            image = c.images.local_resolve(config.image.image)
        except NotFound:
            raise NotFound(f'failed to resolve image "{config.image.image}": not found') from None
        image_name = image.repo_tags[0] if image.repo_tags else f"sha256:{image.id}"
        span.set_attribute("container.image.ref", image_name)
        record = await _create(c, request, sandbox, cid, name, image, image_name)
        c.stores.containers[cid] = record
        add_event("container created", {"container.create.duration": go_duration(time.monotonic() - started)})
        done = True
        return cid
    finally:
        if not done:
            c.stores.container_names.release(name)


async def _create(c: CriService, request: pb.CreateContainerRequest, sandbox, cid: str, name: str,  # noqa: ANN001
                  image, image_name: str) -> ContainerRecord:
    config = request.config
    _, runtime = c.runtime(sandbox.runtime_handler)
    log.debug('Use OCI runtime %s for sandbox "%s" and container "%s"',
              runtime_text(runtime.runtime_type, runtime.options, runtime.sandboxer, runtime.snapshotter),
              sandbox.id, cid)
    cat = image.catalog
    try:
        argv = merge_command(list(cat.entrypoint), list(cat.cmd), list(config.command), list(config.args))
    except ValueError as err:
        raise InvalidArgument(f'failed to generate container "{cid}" spec: {err}') from None
    spec = container_spec(cid, sandbox.id, config, sandbox.config, cat, image_name, argv,
                          sandbox_dir(c, sandbox.id))
    log.debug('Container "%s" spec', cid, extra={"fields": {"spec": json.dumps(spec)}})
    log_path = c.log_path(sandbox.config, config.log_path)
    if log_path:
        log.debug('Composed container full log path "%s" using sandbox log dir "%s" and container log path "%s"',
                  log_path, sandbox.config.log_directory, config.log_path)
    else:
        log.info('Logging will be disabled due to empty log paths for sandbox ("%s") or container ("%s")',
                 sandbox.config.log_directory, config.log_path)
    container = await c.client.new_container(ContainerMeta(
        id=cid, image=image_name, runtime=runtime.runtime_type,
        snapshotter=runtime.snapshotter or c.config.snapshotter, snapshot_key=cid, spec=spec,
        labels={"io.cri-containerd.kind": "container", **dict(config.labels)}, sandbox_id=sandbox.id), cdi=True)
    return ContainerRecord(cid, name, sandbox.id, config, f"sha256:{image.id}", image_name, log_path, container)
