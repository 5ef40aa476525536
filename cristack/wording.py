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


def clip(text: str, limit: int = 120) -> str:
    """``text`` as it can go into a message whatever its size: whole when short, otherwise its first ``limit``
    characters and how long it was (input from a socket or a file can be megabytes; an error that repeats it
    whole fills logs and answers with it)."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}… ({len(text):,} characters in all)"
