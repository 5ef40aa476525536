"""``fake-containerd``: the entry point (``fake-containerd --config config.toml``, containerd's own flags)."""

from __future__ import annotations

import asyncio
import logging
import sys

from cristack.otel import logs
from cristack.otel.loghandler import attached
from cristack.otel.otelenv import OtelEnvError
from cristack.versions import CONTAINERD_REVISION, CONTAINERD_VERSION
from cristack.wire.errors import ConfigError, exit_config_error
from fake_containerd import config as ctd_config
from fake_containerd.daemon import run
from fake_containerd.tracing import containerd_telemetry

log = logging.getLogger("fake_containerd")


def main(argv: list[str] | None = None) -> None:
    """Parses flags and config, then serves until SIGTERM/SIGINT."""
    logs.setup("fake-containerd", logging.INFO)
    try:
        cfg = ctd_config.load(argv)
    except ConfigError as err:
        exit_config_error("fake-containerd", err)
    logs.setup("fake-containerd", cfg.log_level)
    try:
        telemetry, env = containerd_telemetry()
    except OtelEnvError as err:
        # containerd logs the tracing plugin's failure and runs without it.
        log.error("failed to load plugin io.containerd.tracing.processor.v1.otlp: %s", err)
        from cristack.otel.telemetry import Telemetry, TracingSettings

        telemetry, env = Telemetry("containerd", TracingSettings(False, "")), {}
    telemetry.install()
    log.info("starting containerd revision=%s version=%s", CONTAINERD_REVISION, CONTAINERD_VERSION)
    try:
        # containerd/log/otel's hook: log lines as events on containerd's own spans, while it runs.
        with attached(telemetry.log_events("containerd", cfg.log_level)):
            asyncio.run(run(cfg, telemetry.provider, env or None))
    except (OSError, ValueError) as err:
        print(f"fake-containerd: {err}", file=sys.stderr)
        sys.exit(1)
    finally:
        telemetry.shutdown()


if __name__ == "__main__":
    main()
