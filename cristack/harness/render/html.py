"""One self-contained HTML file (no scripts from anywhere, no fonts, no CDN): a waterfall per
trace, each span a <details> element that opens to show its attributes and events."""

from __future__ import annotations

import html
from collections.abc import Iterable
from datetime import datetime, timezone

from cristack.harness.expectations import role
from cristack.harness.render.escape import visible
from cristack.harness.render.model import TraceView, describe, fmt_duration
from cristack.wording import plural

COLOURS = {"kubelet": "#1f77b4", "crio": "#9467bd", "conmonrs": "#2ca02c", "containerd": "#17becf",
           "containerd-shim": "#8c564b"}  # a shim's service is containerd-shim-<sandbox id>: by its role
CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:1.5rem;color:#222;background:#fff}
h1{font-size:1.3rem}h2{font-size:1.05rem;margin-top:2rem}
.meta{color:#555;font-size:.85rem}
.legend span{display:inline-block;margin-right:1rem}.legend i{display:inline-block;width:.8rem;height:.8rem;
margin-right:.3rem;vertical-align:middle}
.trace{border:1px solid #ddd;border-radius:6px;padding:.4rem .6rem}
details{margin:0}summary{list-style:none;cursor:pointer;display:grid;grid-template-columns:minmax(22rem,38%) 5rem 1fr;
align-items:center;gap:.5rem;font-size:.82rem;padding:1px 0}
summary::-webkit-details-marker{display:none}
summary:hover{background:#f4f6fb}
.name{white-space:nowrap;overflow:hidden;text-overflow:ellipsis}
.svc{font-weight:600;margin-right:.4rem}
.dur{text-align:right;color:#444;font-variant-numeric:tabular-nums}
.lane{position:relative;height:.8rem;background:#f7f7f7}
.bar{position:absolute;top:0;height:100%;min-width:2px;border-radius:2px}
.err .name{color:#c00}.err .bar{outline:2px solid #c00}
.body{margin:.2rem 0 .5rem 0;font-size:.78rem;background:#fafafa;border-left:3px solid #ccc;padding:.3rem .6rem}
.body table{border-collapse:collapse}.body td{padding:0 .6rem 0 0;vertical-align:top}
.body td:first-child{color:#666;white-space:nowrap}
.events li{margin:.1rem 0}
"""


def _esc(value: object) -> str:
    """HTML-escaped, its control characters written out (a browser drops or garbles them silently)."""
    return html.escape(visible(value), quote=True)


def _trace_html(view: TraceView, title: str) -> str:
    rows = []
    for node in view.walk():
        s = node.span
        a, b = view.offsets(s)
        colour = COLOURS.get(role(s.service), "#7f7f7f")
        attrs = "".join(f"<tr><td>{_esc(k)}</td><td>{_esc(v)}</td></tr>" for k, v in sorted(s.attributes.items()))
        events = "".join(
            f"<li>+{fmt_duration(max(0, e.time - view.start))} <b>{_esc(describe(e))}</b> "
            f"<span class=meta>{_esc(', '.join(f'{k}={v}' for k, v in e.attributes.items()))}</span></li>"
            for e in s.events)
        status = ""
        if s.status != "UNSET":
            status = f"<tr><td>status</td><td>{_esc(s.status)} {_esc(s.status_message)}</td></tr>"
        body = (f"<div class=body><table><tr><td>kind</td><td>{_esc(s.kind)}</td></tr>"
                f"<tr><td>span id</td><td>{_esc(s.span_id)}</td></tr>{status}{attrs}</table>"
                + (f"<ul class=events>{events}</ul>" if events else "") + "</div>")
        rows.append(
            f"<details class='{'err' if s.status == 'ERROR' else ''}'><summary>"
            f"<span class=name style='padding-left:{node.depth * 1.1:.1f}rem' title='{_esc(s.name)}'>"
            f"<span class=svc style='color:{colour}'>{_esc(s.service)}</span>{_esc(s.name)}</span>"
            f"<span class=dur>{fmt_duration(s.duration_ns)}</span>"
            f"<span class=lane><span class=bar style='left:{a * 100:.3f}%;width:{max(0.2, (b - a) * 100):.3f}%;"
            f"background:{colour}'></span></span></summary>{body}</details>")
    started = datetime.fromtimestamp(view.start / 1e9, tz=timezone.utc).isoformat(timespec="milliseconds")
    return (f"<h2>{_esc(title)}</h2><p class=meta>trace {_esc(view.trace_id)} · {started} · "
            f"{fmt_duration(view.duration_ns)} · {plural(sum(1 for _ in view.walk()), 'span')}</p>"
            f"<div class=trace>{''.join(rows)}</div>")


def render(traces: Iterable[tuple[str, TraceView]], heading: str = "cristack traces", back: str = "") -> str:
    """The whole page for ``(title, view)`` pairs; ``back``: a link to the page it was opened from."""
    legend = "".join(f"<span><i style='background:{c}'></i>{_esc(n)}</span>" for n, c in COLOURS.items())
    body = "".join(_trace_html(view, title) for title, view in traces)
    nav = f"<p class=meta><a href='{_esc(back)}'>← all traces</a></p>" if back else ""
    return (f"<!doctype html><html lang=en><head><meta charset=utf-8><title>{_esc(heading)}</title>"
            f"<meta name=viewport content='width=device-width,initial-scale=1'><style>{CSS}</style></head>"
            f"<body>{nav}"
            f"<h1>{_esc(heading)}</h1><p class='legend meta'>{legend} · click a span for its attributes "
            f"and events</p>{body}</body></html>")
