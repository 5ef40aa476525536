"""Go/Kubernetes style durations ("1s", "200ms", "1m30s"), as KubeletConfiguration writes them."""

from __future__ import annotations

import re

# Go's time.ParseDuration takes the micro sign (U+00B5, what it prints) and the Greek mu (U+03BC) alike.
_UNITS = {"ns": 1e-9, "us": 1e-6, "\u00b5s": 1e-6, "\u03bcs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|\u00b5s|\u03bcs|ms|s|m|h)")


def parse_duration(text: str) -> float:
    """Seconds in ``text``; a bare number means seconds. ValueError for anything else."""
    value = str(text).strip()
    if not value:
        raise ValueError("empty duration")
    try:
        return float(value)
    except ValueError:
        pass
    pos, total = 0, 0.0
    for m in _PART.finditer(value):
        if m.start() != pos:
            break
        total += float(m.group(1)) * _UNITS[m.group(2)]
        pos = m.end()
    if pos != len(value) or pos == 0:
        raise ValueError(f"invalid duration {text!r} (use e.g. 500ms, 1s, 1m30s)")
    return total


def go_duration(ns: int) -> str:
    """``ns`` nanoseconds as Go's time.Duration.String writes them ("400ms", "1.5s", "5m0s", "1h2m3.5s"): what the
    real kubelet prints wherever it formats a duration with %v or %s. Below a second the largest unit that keeps a
    digit before the point (ns, µs with the micro sign U+00B5, ms); from a second on h/m/s, the seconds with up to
    nine decimals; trailing zeros of a fraction, and a fraction of zero with its point, left out."""
    if ns == 0:
        return "0s"
    sign, u = ("-", -ns) if ns < 0 else ("", ns)
    if u < 1_000_000_000:
        if u < 1_000:
            return f"{sign}{u}ns"
        prec, unit = (3, "µs") if u < 1_000_000 else (6, "ms")
        frac, whole = _go_fraction(u, prec)
        return f"{sign}{whole}{frac}{unit}"
    frac, seconds = _go_fraction(u, 9)
    minutes, seconds = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    text = f"{seconds}{frac}s"
    if minutes or hours:
        text = f"{minutes}m{text}"
    if hours:
        text = f"{hours}h{text}"
    return sign + text


def go_duration_seconds(seconds: float) -> str:
    """``seconds`` (a float, as our clocks and back-offs hold them) as Go's time.Duration.String writes them."""
    return go_duration(round(seconds * 1e9))


def _go_fraction(value: int, prec: int) -> tuple[str, int]:
    """Go's fmtFrac: the last ``prec`` decimal digits of ``value`` as ".ddd" without trailing zeros ("" when all
    are zero), and what is left of ``value`` above them."""
    whole, rest = divmod(value, 10**prec)
    digits = f"{rest:0{prec}d}".rstrip("0")
    return (f".{digits}" if digits else ""), whole
