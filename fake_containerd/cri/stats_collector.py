"""The CRI plugin's stats collector (internal/cri/server/stats_collector.go of containerd v2.4.2): once every
``stats_collect_period`` (1 s by default) it asks the tasks service for the metrics of every container it
knows, from a background context: one root ``containerd.task.v3.Task/Stats`` per live task and tick, as
recorded. A container whose task is gone is skipped; with no containers nothing is asked."""

from __future__ import annotations

import asyncio
import logging

from cristack.wire.errors import RpcError
from fake_containerd.cri.service import CriService

log = logging.getLogger(__name__)


async def collect_loop(c: CriService, period: float) -> None:
    """Runs until cancelled: a tick at once, then one every ``period`` seconds (time.Ticker: the next tick is
    due ``period`` after the last one was due, not after the work ended)."""
    loop = asyncio.get_running_loop()
    due = loop.time()
    while True:
        ids = list(c.stores.containers)
        if ids:
            with c.tracing.background():
                try:
                    await c.client.tasks.metrics(ids)
                except RpcError as err:
                    log.debug("StatsCollector: failed to fetch container metrics: %s", err)
        due += period
        await asyncio.sleep(max(0.0, due - loop.time()))
