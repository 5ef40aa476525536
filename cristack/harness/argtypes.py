"""The value types of ``cristack``'s arguments (argparse ``type=`` callables): each turns a user's text into a
value or raises ``argparse.ArgumentTypeError`` with a message that says what was expected."""

from __future__ import annotations

import argparse
from collections.abc import Callable

from cristack.wire.endpoints import parse_endpoint


def endpoint(text: str) -> str:
    try:
        ep = parse_endpoint(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None
    if ep.is_unix:
        raise argparse.ArgumentTypeError("an OTLP endpoint is HOST:PORT")
    return ep.grpc_target


SIZE = {"": 1, "k": 1000, "kb": 1000, "kib": 1024, "m": 1000**2, "mb": 1000**2, "mib": 1024**2, "g": 1000**3,
        "gb": 1000**3, "gib": 1024**3}


def size(text: str) -> int:
    """A byte count: ``67108864``, ``64MiB``, ``500kB``."""
    number = text.rstrip("kKmMgGiBb ")
    unit = text[len(number):].strip().lower()
    try:
        value = int(number) * SIZE[unit]
    except (ValueError, KeyError):
        raise argparse.ArgumentTypeError(f"{text!r} is not a size (e.g. 67108864, 64MiB, 500kB)") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r}: a size is above zero")
    return value


def names(text: str) -> list[str]:
    """A comma-separated list of host names."""
    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names:
        raise argparse.ArgumentTypeError(f"{text!r}: give at least one name")
    return names


def count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r}: a bound is above zero")
    return value


def runtimes(text: str) -> tuple[str, ...]:
    """``crio``, ``containerd``, or a list of them for several nodes (``crio,containerd``); a typo gets the
    closest name."""
    from cristack.harness.nodeplan import check_runtime

    names = tuple(n.strip() for n in text.split(",") if n.strip())
    if not names:
        raise argparse.ArgumentTypeError("name a runtime: crio or containerd")
    try:
        return tuple(check_runtime(n) for n in names)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def index(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r}: an index is 0 or more")
    return value


def node_name(text: str) -> str:
    """A node name as Kubernetes takes it: a DNS subdomain (lowercase alphanumerics, '-' and '.')."""
    import re

    if len(text) > 253 or not re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*", text):
        raise argparse.ArgumentTypeError(f"{text!r} is not a node name (lowercase letters, digits, '-' and '.', "
                                         "starting and ending with a letter or digit)")
    return text


def positive(kind: type) -> Callable[[str], float]:
    def parse(text: str) -> float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a {'whole ' if kind is int else ''}number") from None
        if not value > 0:
            raise argparse.ArgumentTypeError(f"{text!r}: must be above zero")
        return value
    return parse


def shares(what: str, known: tuple[str, ...]) -> Callable[[str], dict[str, float]]:
    """``a=0.5,b=0.25``: a share (0..1) per name, names from ``known`` ("did you mean" for a typo)."""
    def parse(text: str) -> dict[str, float]:
        import difflib

        out: dict[str, float] = {}
        for item in filter(None, (x.strip() for x in text.split(","))):
            name, eq, value = item.partition("=")
            name = name.strip()
            if name not in known:
                near = difflib.get_close_matches(name, known, n=1)
                hint = f"; did you mean {near[0]!r}?" if near else f" (known: {', '.join(known)})"
                raise argparse.ArgumentTypeError(f"no {what} {name!r}{hint}")
            try:
                share = float(value) if eq else 1.0
            except ValueError:
                raise argparse.ArgumentTypeError(f"{item!r}: the share is a number between 0 and 1") from None
            if not 0 <= share <= 1:
                raise argparse.ArgumentTypeError(f"{item!r}: the share is a number between 0 and 1")
            out[name] = share
        return out
    return parse
