"""``fake-crio``: the entry point."""

from __future__ import annotations

import asyncio
import logging
import sys

import grpc

from cristack import logs
from cristack.errors import ConfigError, exit_config_error
from cristack.pb.runtime.v1 import api_pb2_grpc as pbgrpc
from cristack.serving import serve
from fake_crio import config as crio_config
from fake_crio.calls import RecordCalls
from fake_crio.server import Crio, ImageService, RuntimeService

log = logging.getLogger("fake_crio")


async def run(cfg: crio_config.CrioConfig) -> None:
    crio = Crio.create(cfg)

    def register(server: grpc.aio.Server) -> None:
        pbgrpc.add_RuntimeServiceServicer_to_server(RuntimeService(crio), server)
        pbgrpc.add_ImageServiceServicer_to_server(ImageService(crio), server)

    interceptors = [RecordCalls(cfg.record_calls)] if cfg.record_calls else []
    log.info("fake-crio: %d sandboxes, %d containers, %d images in %s; default runtime %s (%s)",
             len(crio.store.sandboxes), len(crio.store.containers), len(crio.images.images), cfg.root,
             cfg.default_runtime, cfg.runtimes[cfg.default_runtime].runtime_type)

    async def stop() -> None:
        await crio.close_runtimes()

    await serve("fake-crio", cfg.listen, register, private_parent=cfg.listen_is_default,
                interceptors=interceptors, on_stop=stop)


def main(argv: list[str] | None = None) -> None:
    """Parses flags and config, then serves until SIGTERM/SIGINT."""
    logs.setup("fake-crio", logging.INFO)
    try:
        cfg = crio_config.load(argv)
    except ConfigError as err:
        exit_config_error("fake-crio", err)
    logs.setup("fake-crio", cfg.log_level)
    try:
        asyncio.run(run(cfg))
    except (OSError, ValueError) as err:
        print(f"fake-crio: {err}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
