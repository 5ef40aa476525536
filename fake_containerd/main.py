"""``fake-containerd``: the entry point (``fake-containerd --config config.toml``, containerd's own flags)."""

from __future__ import annotations

import logging

from cristack.config.startup import load_config
from cristack.otel.loghandler import attached
from cristack.versions import CONTAINERD_REVISION, CONTAINERD_VERSION
from cristack.wire.serving import run_main
from fake_containerd import config as ctd_config
from fake_containerd.daemon import run
from fake_containerd.tracing import containerd_telemetry

log = logging.getLogger("fake_containerd")


def main(argv: list[str] | None = None) -> None:
    """Parses flags and config, then serves until SIGTERM/SIGINT."""
    cfg = load_config("fake-containerd", ctd_config.load, argv)
    telemetry, env = containerd_telemetry()
    telemetry.install()
    log.info("starting containerd revision=%s version=%s", CONTAINERD_REVISION, CONTAINERD_VERSION)

    async def serve() -> None:
        # containerd/log/otel's hook: log lines as events on containerd's own spans, while it runs.
        with attached(telemetry.log_events("containerd", cfg.log_level)):
            await run(cfg, telemetry.provider, env)

    run_main("fake-containerd", serve(), telemetry.shutdown)


if __name__ == "__main__":
    main()
