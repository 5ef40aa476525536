"""``fake-kubelet``: the entry point."""

from __future__ import annotations

import asyncio
import logging
import sys

import grpc

from cristack.config.startup import load_config
from cristack.gcpolicy import tune_for_service
from cristack.lifeline import stop_on_signals
from cristack.otel.envcontext import EnvContext, from_environment
from cristack.otel.telemetry import Telemetry, kubelet_telemetry
from fake_kubelet import config as kubelet_config
from fake_kubelet.kubelet import Kubelet, RuntimeUnavailable

log = logging.getLogger(__name__)


async def run(cfg: kubelet_config.KubeletConfig, telemetry: Telemetry, parent: EnvContext | None = None,
              stop: asyncio.Event | None = None) -> int:
    """Runs the kubelet until ``stop`` is set (without one: until SIGTERM/SIGINT, as ``main`` runs it)."""
    kubelet = Kubelet(cfg, telemetry, parent.context if parent is not None else None)
    if stop is not None:
        return await kubelet.run(stop)
    with stop_on_signals() as signalled:
        return await kubelet.run(signalled)


def main(argv: list[str] | None = None) -> None:
    """Parses flags and the KubeletConfiguration, then runs the kubelet."""
    cfg = load_config("fake-kubelet", kubelet_config.load, argv)
    # No log handler on its spans: the real kubelet's klog lines never become span events (only a failed sync
    # records its error).
    tracing = cfg.tracing
    # A CI job's trace context (TRACEPARENT, TRACESTATE): the pods' start traces become its children.
    parent = from_environment()
    if parent.warning:
        log.warning("%s", parent.warning)
    elif parent.context is not None:
        log.info("pod-start traces are children of TRACEPARENT %s", parent.traceparent)
    telemetry = kubelet_telemetry(tracing.enabled and cfg.tracing_gate, tracing.endpoint,
                                  tracing.sampling_rate_per_million, cfg.node_name).install()
    tune_for_service()
    try:
        code = asyncio.run(run(cfg, telemetry, parent))
    except (OSError, RuntimeUnavailable) as err:
        print(f"fake-kubelet: {err}", file=sys.stderr)
        code = 1
    except grpc.aio.AioRpcError as err:  # a call whose failure the kubelet cannot work around
        print(f"fake-kubelet: the container runtime answered {err.code().name}: {err.details()}", file=sys.stderr)
        code = 1
    except Exception as err:  # noqa: BLE001 - a bug of ours: one line, not a traceback
        print(f"fake-kubelet: {type(err).__name__}: {err}", file=sys.stderr)
        code = 1
    finally:
        telemetry.shutdown()
    sys.exit(code)


if __name__ == "__main__":
    main()
