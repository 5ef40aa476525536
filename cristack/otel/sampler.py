"""Which spans a component records: its tracing settings and the sampler they make.

ParentBased(TraceIdRatioBased(rate / 1e6)); rate 0 or unset is ParentBased(AlwaysOff), so a component
records only under a sampled parent. conmon-rs uses ParentBased(AlwaysOn).
"""

from __future__ import annotations

from dataclasses import dataclass

from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ALWAYS_ON, ParentBased, Sampler, TraceIdRatioBased


@dataclass(frozen=True)
class TracingSettings:
    """A component's tracing configuration, whatever file or flag it came from."""

    enabled: bool
    endpoint: str
    rate_per_million: int | None = None  # None or 0: only under a sampled parent
    root_always_on: bool = False  # conmon-rs samples every root


def sampler_for(settings: TracingSettings) -> Sampler:
    """ParentBased(TraceIdRatioBased(rate/1e6)), or ParentBased(AlwaysOff/AlwaysOn)."""
    if settings.root_always_on:
        return ParentBased(ALWAYS_ON)
    rate = settings.rate_per_million or 0
    if rate <= 0:
        return ParentBased(ALWAYS_OFF)
    if rate >= 1_000_000:
        return ParentBased(ALWAYS_ON)
    return ParentBased(TraceIdRatioBased(rate / 1_000_000))
