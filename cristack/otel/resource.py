"""A component's resource: only what each real component sets (recorded in tests/data/real/).

The kubelet sets ``service.name`` and ``host.name`` (its node name); CRI-O adds ``process.pid``; conmon-rs adds
``process.pid`` and the Rust SDK's ``telemetry.sdk.*``. No ``service.version``. ``OTEL_RESOURCE_ATTRIBUTES`` adds
attributes when set; on a clash ours win, except ``host.name`` (see ``resource_for``).
"""

from __future__ import annotations

import os
import socket

from opentelemetry.sdk.resources import OTELResourceDetector, Resource

# What each component's real resource holds besides service.name and host.name: the kubelet's
# (k8s.io/kubernetes cmd/kubelet/app/server.go) has nothing else; CRI-O's
# (internal/opentelemetry/tracing_config.go) adds the pid; conmon-rs 0.8.0 uses the Rust SDK's
# default resource (telemetry.sdk.* from opentelemetry 0.31.0) plus the pid.
RESOURCE_EXTRAS: dict[str, dict[str, str]] = {
    "kubelet": {},
    "crio": {},
    "conmonrs": {"telemetry.sdk.name": "opentelemetry", "telemetry.sdk.language": "rust",
                 "telemetry.sdk.version": "0.31.0"},
    # Kata's shim (src/runtime/pkg/katautils/katatrace/tracing.go): a schemaless resource of its own.
    "kata": {"exporter": "jaeger", "lib": "opentelemetry"},
}
WITH_PID = frozenset({"crio", "conmonrs"})
WITHOUT_HOST = frozenset({"kata"})


def resource_for(service_name: str, host_name: str | None = None) -> Resource:
    """The component's resource, as the real one builds it (see RESOURCE_EXTRAS), plus whatever
    ``OTEL_RESOURCE_ATTRIBUTES`` names. ``host_name`` defaults to the machine's hostname; the
    kubelet passes its node name (``--hostname-override``), as the real one does.

    On a clash our attributes win (the Go and Rust SDKs merge the environment under the
    component's own resource), except ``host.name``: there the environment wins. The real
    components read the UTS hostname, which differs on every real node; mock nodes share one
    machine, so the standard variable is how each is given its own name."""
    from_env = OTELResourceDetector().detect()
    env_host = from_env.attributes.get("host.name")
    attrs: dict[str, str | int] = {"service.name": service_name,
                                   "host.name": env_host or host_name or socket.gethostname()}
    attrs.update(RESOURCE_EXTRAS.get(service_name, {}))
    if service_name in WITHOUT_HOST and not env_host:
        del attrs["host.name"]
    if service_name in WITH_PID:
        attrs["process.pid"] = os.getpid()
    # Resource() (unlike Resource.create) adds no SDK attributes and no default service.name.
    return from_env.merge(Resource(attrs))
