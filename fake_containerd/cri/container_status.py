"""ContainerStatus (internal/cri/server/container_status.go of containerd v2.4.2) and ListContainers
(container_list.go): the state derived from the container's times, the exit reason as containerd names it
(``Completed`` for 0, ``Error`` otherwise, or what the start failure or an OOM kill set), and (verbose) the
info containerd gives."""

from __future__ import annotations

import json

from cristack.wire.errors import NotFound
from cristack.wire.pb.runtime.v1 import api_pb2 as pb
from fake_containerd.cri.service import CriService
from fake_containerd.cri.store import ContainerRecord

COMPLETED, ERROR = "Completed", "Error"


def container_status(c: CriService, container_id: str, verbose: bool) -> pb.ContainerStatusResponse:
    try:
        record = c.stores.container(container_id)
    except NotFound:
        raise NotFound(f'an error occurred when try to find container "{container_id}": not found') from None
    state = record.state
    reason = record.reason
    if state == pb.CONTAINER_EXITED and not reason:
        reason = COMPLETED if record.exit_code == 0 else ERROR
    image = c.images.store.find(record.image_id)
    status = pb.ContainerStatus(
        id=record.id, metadata=record.config.metadata, state=state, created_at=record.created_at,
        started_at=record.started_at, finished_at=record.finished_at, exit_code=record.exit_code,
        image=pb.ImageSpec(image=image.repo_tags[0] if image and image.repo_tags else record.config.image.image,
                           user_specified_image=record.config.image.user_specified_image),
        image_ref=record.image_id, reason=reason, message=record.message, labels=record.config.labels,
        annotations=record.config.annotations, mounts=record.config.mounts, log_path=record.log_path,
        image_id=record.image_id)
    if record.config.linux.HasField("resources"):
        status.resources.linux.CopyFrom(record.config.linux.resources)
    info = {}
    if verbose:
        info["info"] = json.dumps({"sandboxID": record.sandbox_id, "pid": record.pid, "removing": record.removing,
                                   "snapshotKey": record.id, "snapshotter": c.config.snapshotter,
                                   "runtimeType": record.container.meta.runtime,
                                   "runtimeSpec": record.container.meta.spec})
    return pb.ContainerStatusResponse(status=status, info=info)


def container_message(record: ContainerRecord) -> pb.Container:
    return pb.Container(id=record.id, pod_sandbox_id=record.sandbox_id, metadata=record.config.metadata,
                        image=pb.ImageSpec(image=record.image_name), image_ref=record.image_id, state=record.state,
                        created_at=record.created_at, labels=record.config.labels,
                        annotations=record.config.annotations, image_id=record.image_id)


def matches(record: ContainerRecord, flt: pb.ContainerFilter | pb.ContainerStatsFilter | None) -> bool:
    if flt is None:
        return True
    if flt.id and not record.id.startswith(flt.id):
        return False
    if flt.pod_sandbox_id and not record.sandbox_id.startswith(flt.pod_sandbox_id):
        return False
    if isinstance(flt, pb.ContainerFilter) and flt.HasField("state") and record.state != flt.state.state:
        return False
    return all(record.config.labels.get(k) == v for k, v in flt.label_selector.items())


def list_containers(c: CriService, flt: pb.ContainerFilter | None) -> list[pb.Container]:
    items = [container_message(r) for r in c.stores.containers.values() if matches(r, flt)]
    return sorted(items, key=lambda x: x.created_at, reverse=True)
