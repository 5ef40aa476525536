"""Small helpers for messages people read."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


def plural(n: int, word: str, many: str | None = None) -> str:
    """``1 trace``, ``2 traces``, ``0 containers``: the count with the word in the right number."""
    return f"{n} {word if n == 1 else (many or word + 's')}"


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """``; did you mean X?`` for the closest of ``choices``, or nothing when none is close."""
    close = difflib.get_close_matches(word, sorted(choices), n=1, cutoff=0.6)
    return f"; did you mean {close[0]}?" if close else ""


def cut(text: str, limit: int = 80) -> str:
    """``text`` as an error message may echo it: whole when short, else its first ``limit`` characters and how
    long it was, so that hostile input (a 70 MB value, a file's first line) never reaches a log whole."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}… ({len(text):,} characters)"


def shown(value: object, limit: int = 80) -> str:
    """``repr(value)`` cut as ``cut`` does; a container is summarised by its type and size instead of being
    rendered (rendering an aliased YAML structure can take minutes and gigabytes)."""
    if isinstance(value, (dict, list, tuple, set)):
        return f"a {type(value).__name__} of {plural(len(value), 'entry', 'entries')}"
    if isinstance(value, str) and len(value) > limit:
        return f"{value[:limit]!r}… ({len(value):,} characters)"
    return cut(repr(value), limit)
