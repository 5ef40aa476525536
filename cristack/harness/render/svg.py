"""A static SVG waterfall of one trace, for documentation (docs/img/pod-start.svg):
``python -m cristack.harness.render.svg OUT.svg`` runs the hello pod and draws its syncPod trace."""

from __future__ import annotations

import html
import sys
from pathlib import Path

from cristack.harness.expectations import role
from cristack.harness.render.escape import visible
from cristack.harness.render.html import COLOURS
from cristack.harness.render.model import TraceView, build, fmt_duration
from cristack.harness.render.terminal import display_name

ROW, LABEL, BAR, PAD = 18, 430, 520, 10


def render(view: TraceView, title: str) -> str:
    nodes = list(view.walk())
    height = PAD * 2 + 30 + ROW * len(nodes)
    width = PAD * 2 + LABEL + 70 + BAR
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'font-family="DejaVu Sans, Arial, sans-serif" font-size="11">',
           '<rect width="100%" height="100%" fill="#ffffff"/>',
           f'<text x="{PAD}" y="{PAD + 14}" font-size="14" font-weight="bold">{html.escape(visible(title))}</text>']
    for i, node in enumerate(nodes):
        s = node.span
        y = PAD + 30 + i * ROW
        colour = COLOURS.get(role(s.service), "#7f7f7f")
        a, b = view.offsets(s)
        x0 = PAD + LABEL + 70
        if i % 2:
            out.append(f'<rect x="{PAD}" y="{y - 12}" width="{width - 2 * PAD}" height="{ROW}" fill="#f6f7fa"/>')
        out.append(f'<text x="{PAD + node.depth * 10}" y="{y}"><tspan fill="{colour}" font-weight="bold">'
                   f'{html.escape(visible(s.service))}</tspan> {html.escape(visible(display_name(s.name)))}</text>')
        out.append(f'<text x="{PAD + LABEL + 62}" y="{y}" text-anchor="end" fill="#444">'
                   f'{fmt_duration(s.duration_ns)}</text>')
        out.append(f'<rect x="{x0 + a * BAR:.1f}" y="{y - 9}" width="{max(1.5, (b - a) * BAR):.1f}" height="10" '
                   f'rx="2" fill="{colour}"/>')
    out.append("</svg>")
    return "\n".join(out)


def main() -> None:
    from cristack.harness.demo import start_traces
    from cristack.harness.sink.receiver import Sink
    from cristack.harness.stack import Stack, StackOptions, example

    out = Path(sys.argv[1] if len(sys.argv) > 1 else "pod-start.svg")
    import tempfile

    sink = Sink()
    addrs = sink.start()
    with tempfile.TemporaryDirectory() as tmp:
        stack = Stack(Path(tmp), StackOptions(otlp_endpoint=addrs.otlp_endpoint, relist_period="0.2s"))
        stack.add_manifest(example("pods", "hello.yaml"))
        stack.start_runtime()
        stack.start_kubelet(runonce=True).popen.wait(60)
        stack.stop()
    sink.store.wait(lambda st: bool(start_traces(st)), 5)
    trace = start_traces(sink.store)[0]
    out.write_text(render(build(trace), "syncPod default/hello: one pod start across kubelet, crio and conmonrs"))
    sink.stop()
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
