"""Text that came from a pod, a span or an event, shown on a terminal or a page: control characters become visible
escapes (``\\x1b``, ``\\n``), so that a container name, an image, a log message or an attribute value can neither
clear the screen, retitle the terminal, move the cursor nor reorder the text around it (bidi controls). What the
containers themselves wrote stays as written, as `kubectl logs` shows it: callers leave that alone."""

from __future__ import annotations

import re

# C0 and C1 controls, DEL, the Unicode line/paragraph separators and the bidirectional embedding, override and
# isolate controls (U+202A-U+202E, U+2066-U+2069).
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
_SHORT = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(m: re.Match[str]) -> str:
    c = m.group()
    return _SHORT.get(c) or (f"\\x{ord(c):02x}" if ord(c) <= 0xFF else f"\\u{ord(c):04x}")


def visible(text: object) -> str:
    """``text`` (made a string) with every control character written out as its escape."""
    return _CONTROL.sub(_escape, str(text))
