"""Status (CRI-O's server/runtime_status.go): the runtime and network conditions, the handlers, and with
``verbose`` the configuration that matters here."""

from __future__ import annotations

import json

from cristack.wire.pb.runtime.v1 import api_pb2 as pb
from fake_crio.server.server import ServerBase


class RuntimeStatus(ServerBase):
    async def status(self, request: pb.StatusRequest) -> pb.StatusResponse:
        conditions = [pb.RuntimeCondition(type="RuntimeReady", status=True),
                      pb.RuntimeCondition(type="NetworkReady", status=True)]
        handlers = [pb.RuntimeHandler(name=name, features=pb.RuntimeHandlerFeatures(
            recursive_read_only_mounts=False, user_namespaces=False)) for name in sorted(self.runtimes)]
        info = {}
        if request.verbose:
            cfg = self.config
            info["config"] = json.dumps({
                "runtime": {"default_runtime": cfg.default_runtime,
                            "runtimes": {n: {"runtime_type": h.runtime_type, "monitor_endpoint": h.monitor_endpoint}
                                         for n, h in cfg.runtimes.items()}},
                "tracing": {"enable_tracing": cfg.tracing.enable_tracing,
                            "tracing_endpoint": cfg.tracing.tracing_endpoint,
                            "tracing_sampling_rate_per_million": cfg.tracing.tracing_sampling_rate_per_million},
                "root": str(cfg.root), "runroot": str(cfg.runroot), "pod_logs_root": str(cfg.pod_logs_root),
            })
        return pb.StatusResponse(status=pb.RuntimeStatus(conditions=conditions), info=info,
                                 runtime_handlers=handlers)
