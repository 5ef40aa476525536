"""The sink's live view: a trace list at ``/`` that keeps itself up to date by polling
``/ui/traces`` (JSON), and a waterfall page per trace at ``/trace/{id}`` (render/html.py).

No build step and nothing from the network: the CSS and the script are inline, so the view works
offline and from a container. The Jaeger-compatible API beside it (``/api/...``) is untouched.
"""

from __future__ import annotations

import html
import threading
from dataclasses import asdict, dataclass
from typing import Any

from cristack.harness.render import html as html_render
from cristack.harness.render.model import build
from cristack.harness.render.terminal import display_name
from cristack.harness.sink.store import Span, SpanStore


@dataclass
class TraceSummary:
    """One row of the trace list."""

    traceID: str  # noqa: N815 - the JSON field, named as Jaeger names it
    service: str
    root: str  # the root span's name, CRI-O's Go paths shortened
    rootFull: str  # noqa: N815
    pod: str
    start: int  # µs since the epoch, as Jaeger's startTime
    duration: int  # µs
    spans: int
    errors: int
    services: list[str]
    standalone: bool  # a kubelet CRI call of its own (PLEG relist, status check), not a sync's


def root_of(spans: list[Span]) -> Span:
    """The earliest span whose parent is not in the trace."""
    ids = {s.span_id for s in spans}
    roots = [s for s in spans if not s.parent_span_id or s.parent_span_id not in ids]
    return min(roots or spans, key=lambda s: (s.start, -s.end))


def summarize(spans: list[Span]) -> TraceSummary:
    root = root_of(spans)
    pod = next((str(s.attributes["k8s.pod"]) for s in [root, *spans] if "k8s.pod" in s.attributes), "")
    start = min(s.start for s in spans)
    return TraceSummary(
        traceID=root.trace_id, service=root.service, root=display_name(root.name), rootFull=root.name, pod=pod,
        start=start // 1000, duration=max(s.end for s in spans) // 1000 - start // 1000, spans=len(spans),
        errors=sum(s.status == "ERROR" for s in spans), services=sorted({s.service for s in spans}),
        standalone=root.service == "kubelet" and root.kind == "CLIENT")


class Summaries:
    """Trace summaries, recomputed only for traces that got new spans since they were last asked for."""

    def __init__(self, store: SpanStore, max_values: int | None = None) -> None:
        self.store = store
        self.max_values = max_values  # values decoded per trace (spans.Values), for traces from anyone
        self._cache: dict[str, tuple[int, TraceSummary]] = {}
        self._lock = threading.Lock()

    def query(self, service: str = "", operation: str = "", pod: str = "", standalone: bool = False,
              limit: int = 200) -> dict[str, Any]:
        """Newest first: traces with a span of ``service``, a span name containing ``operation`` and a pod
        containing ``pod`` (case-insensitive); kubelet's standalone CRI calls only when asked. A trace is decoded
        only when it got spans since its summary was made; span names come from the store's index."""
        ids = self.store.trace_ids()
        rows = []
        with self._lock:
            for trace_id in ids:
                count, names = self.store.names(trace_id)
                if not count:
                    continue
                cached = self._cache.get(trace_id)
                if cached is None or cached[0] != count:
                    spans = self.store.trace(trace_id, self.max_values)
                    if not spans:
                        continue
                    cached = self._cache[trace_id] = (count, summarize(spans))
                rows.append((cached[1], names))
            for gone in set(self._cache) - set(ids):
                del self._cache[gone]
        services = sorted({svc for row, _ in rows for svc in row.services})
        op, pod = operation.lower(), pod.lower()
        out = []
        for row, names in sorted(rows, key=lambda r: r[0].start, reverse=True):
            if (row.standalone and not standalone) or (service and service not in row.services):
                continue
            if pod and pod not in row.pod.lower():
                continue
            if op and not any(op in name.lower() for name in names):
                continue
            out.append(asdict(row))
            if len(out) >= limit:
                break
        return {"traces": out, "services": services, "total": len(rows)}


def trace_page(spans: list[Span]) -> str:
    """The waterfall of one trace (the static HTML renderer's page), with a way back to the list."""
    row = summarize(spans)
    title = f"{row.service}: {row.rootFull}" + (f" · {row.pod}" if row.pod else "")
    return html_render.render([(title, build(spans))], f"trace {row.traceID}", back="/")


def missing_page(trace_id: str) -> str:
    esc = html.escape(trace_id)
    return (f"<!doctype html><html lang=en><head><meta charset=utf-8><title>no trace {esc}</title></head><body>"
            f"<p>The sink holds no trace {esc} (it keeps the newest traces only). <a href='/'>All traces</a></p>"
            "</body></html>")


LIST_PAGE = """<!doctype html><html lang=en><head><meta charset=utf-8><title>cristack traces</title>
<meta name=viewport content='width=device-width,initial-scale=1'>
<style>
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:1.2rem;color:#222;background:#fff}
h1{font-size:1.3rem;margin:0 0 .6rem}
form{display:flex;flex-wrap:wrap;gap:.8rem;align-items:center;font-size:.85rem;margin-bottom:.6rem}
input[type=text],select{font:inherit;padding:.15rem .3rem}
#status{color:#666;font-size:.8rem}
table{border-collapse:collapse;width:100%;font-size:.82rem}
th{text-align:left;color:#555;font-weight:600;border-bottom:2px solid #ddd;padding:.25rem .5rem}
td{padding:.2rem .5rem;border-bottom:1px solid #eee;white-space:nowrap}
td.num{text-align:right;font-variant-numeric:tabular-nums}
tr:hover td{background:#f4f6fb}
a{color:#1a4fa0;text-decoration:none}a:hover{text-decoration:underline}
.svc{font-weight:600}.kubelet{color:#1f77b4}.crio{color:#9467bd}.conmonrs{color:#2ca02c}
.err{color:#c00;font-weight:600}.id{font-family:ui-monospace,Menlo,Consolas,monospace;color:#777}
tr.new td{animation:flash 2s ease-out}@keyframes flash{from{background:#fff3b0}to{background:transparent}}
</style></head><body>
<h1>cristack traces</h1>
<form id=filters onsubmit="return false">
<label>service <select name=service><option value="">any</option></select></label>
<label>operation <input type=text name=operation size=22 placeholder="e.g. RunPodSandbox"></label>
<label>pod <input type=text name=pod size=16 placeholder="e.g. default/hello"></label>
<label><input type=checkbox name=standalone> standalone CRI calls (PLEG relists, status checks)</label>
<span id=status>loading…</span>
</form>
<noscript><p>The list needs JavaScript; the same data is at <a href="/ui/traces">/ui/traces</a>.</p></noscript>
<table><thead><tr><th>started</th><th>service</th><th>root span</th><th>pod</th><th>duration</th>
<th>spans</th><th>trace</th></tr></thead><tbody id=rows></tbody></table>
<script>
"use strict";
const form = document.getElementById("filters"), rows = document.getElementById("rows");
const statusLine = document.getElementById("status");
const seen = new Set();
let last = "", first = true, counts = "";
const params = new URLSearchParams(location.search);
for (const el of form.elements) {
  if (!el.name || !params.has(el.name)) continue;
  if (el.type === "checkbox") el.checked = params.get(el.name) === "1";
  else if (el.tagName === "SELECT") el.add(new Option(params.get(el.name), params.get(el.name), true, true));
  else el.value = params.get(el.name);
}
function query() {
  const q = new URLSearchParams();
  for (const el of form.elements) {
    if (!el.name) continue;
    if (el.type === "checkbox") { if (el.checked) q.set(el.name, "1"); }
    else if (el.value) q.set(el.name, el.value);
  }
  return q.toString();
}
function duration(us) {
  if (us >= 1e6) return (us / 1e6).toFixed(2) + "s";
  if (us >= 1e3) return (us / 1e3).toFixed(1) + "ms";
  return us + "µs";
}
function clock(us) {
  const d = new Date(us / 1000);
  return d.toTimeString().slice(0, 8) + "." + String(d.getMilliseconds()).padStart(3, "0");
}
function cell(tr, text, cls, title) {
  const td = tr.insertCell();
  td.textContent = text;
  if (cls) td.className = cls;
  if (title) td.title = title;
  return td;
}
function services(list) {
  const select = form.elements.service, chosen = select.value;
  const want = ["", ...list];
  if (chosen && !want.includes(chosen)) want.push(chosen);
  if ([...select.options].map(o => o.value).join() === want.join()) return;
  select.replaceChildren(...want.map(v => new Option(v || "any", v, false, v === chosen)));
}
function show(data) {
  services(data.services);
  const body = document.createElement("tbody");
  body.id = "rows";
  for (const t of data.traces) {
    const tr = body.insertRow();
    tr.dataset.traceId = t.traceID;
    if (!first && !seen.has(t.traceID)) tr.className = "new";
    seen.add(t.traceID);
    cell(tr, clock(t.start));
    cell(tr, t.service, "svc " + t.service);
    const root = tr.insertCell();
    const a = document.createElement("a");
    a.href = "/trace/" + t.traceID;
    a.textContent = t.root;
    a.title = t.rootFull;
    root.append(a);
    if (t.errors) {
      const mark = document.createElement("span");
      mark.className = "err";
      mark.textContent = " \\u2716 " + t.errors + (t.errors > 1 ? " errors" : " error");
      root.append(mark);
    }
    cell(tr, t.pod);
    cell(tr, duration(t.duration), "num");
    cell(tr, t.spans, "num");
    cell(tr, t.traceID.slice(0, 12) + "…", "id", t.traceID);
  }
  document.getElementById("rows").replaceWith(body);
  const hidden = data.total - data.traces.length;
  counts = `${data.traces.length} of ${data.total} traces` + (hidden ? ` (${hidden} filtered out)` : "");
  first = false;
}
async function refresh() {
  const q = query();
  history.replaceState(null, "", q ? "?" + q : location.pathname);
  try {
    const resp = await fetch("/ui/traces?" + q, {cache: "no-store"});
    const text = await resp.text();
    if (text !== last) { last = text; show(JSON.parse(text)); }
    statusLine.textContent = counts + " · live, checked " + new Date().toTimeString().slice(0, 8);
  } catch (err) {
    statusLine.textContent = "the sink does not answer (" + err.message + "); retrying";
  }
}
form.addEventListener("input", () => { last = ""; refresh(); });
refresh();
setInterval(() => { if (!document.hidden) refresh(); }, 1000);
</script></body></html>
"""
