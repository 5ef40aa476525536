"""``cristack demo --scenario NAME`` (or ``all``): workshop scenarios run through the whole stack, with what to find in
their traces (``cristack.harness.scenarios`` runs them and checks their findings; this module shows them)."""

from __future__ import annotations

import re
import textwrap

from rich.console import Console

from cristack.harness.demo import DemoOptions
from cristack.harness.render import html as html_render
from cristack.harness.render.model import TraceView, build
from cristack.harness.render.terminal import PIPE_WIDTH, make_console, print_trace
from cristack.otel import otlpjson
from cristack.wording import plural

OUTPUT_LINES = 12  # per container in a scenario's output; the rest is counted, never dropped silently


def run_scenarios(names: list[str], opts: DemoOptions, console: Console | None = None) -> int:
    """``cristack demo --scenario NAME`` (or ``all``): run workshop scenarios and show what to
    find in their traces; with ``all``, one line per scenario."""
    from cristack.harness import scenarios

    summary = len(names) > 1
    if console is None:
        # One line per scenario stays one line in a pipe or a log: 80 columns there, unless $COLUMNS says otherwise.
        console = make_console(pipe_width=80 if summary else PIPE_WIDTH)
    failed = 0
    views: list[tuple[str, TraceView]] = []
    request = None
    runtime = opts.runtimes[0] if opts.runtimes else None  # None: each scenario on its own runtime
    for name in names:
        scenario = scenarios.load(name)
        try:
            scenario.check_runtime(runtime or scenario.runtimes[0])
        except scenarios.NotForRuntime as err:
            if not summary:
                Console(stderr=True).print(f"cristack demo: {err}", markup=False, highlight=False, soft_wrap=True)
                return 2
            why = str(err).split(": ", 1)[1]
            console.print(f"[dim]n/a[/dim]     {name:18s} not for {err.runtime}: {why}", highlight=False,
                          no_wrap=True, overflow="ellipsis")
            continue
        if not summary and not opts.quiet:
            on = f" (on {runtime})" if runtime and runtime != scenario.runtimes[0] else ""
            console.print(f"[bold]cristack demo --scenario {name}[/bold]{on}: {scenario.title}")
        say = (lambda _m: None) if summary or opts.quiet else (lambda m: console.print(m, highlight=False))
        runs, finding = scenarios.run_scenario(name, say, runtime)
        failed += not finding.ok
        scenario_views = _finding_views(name, runs, finding)
        views += scenario_views
        for run in runs:
            if request is None:
                request = run.store.export_request()
            else:
                request.resource_spans.extend(run.store.export_request().resource_spans)
        if summary:
            # The trace ids would name traces in a sink that is gone: --html/--json keep them (below).
            mark = "[green]OK[/green]     " if finding.ok else "[red]MISSING[/red]" if finding.checked else \
                "[red]UNCHECKED[/red]"
            console.print(f"{mark} {name:18s} {finding.summary}", highlight=False, no_wrap=True, overflow="ellipsis")
            continue
        for run in runs:
            for key, lines in run.pod_logs.items():
                for line in lines[:OUTPUT_LINES]:
                    console.print(f"[{key}] {line}", markup=False, highlight=False)
                if len(lines) > OUTPUT_LINES:
                    console.print(f"[{key}] … {len(lines) - OUTPUT_LINES} more lines", markup=False,
                                  highlight=False)
        if not opts.quiet:
            if finding.timeline:
                print_timeline(console, finding.timeline)
            console.rule("what to look at")
            for title, view in scenario_views:
                if view.trace_id in finding.trace_ids:
                    print_trace(console, view, title, wide=opts.wide)
        # One logical line (the terminal wraps it): a pipe or a log keeps the finding whole for grep.
        said = "finding: " if finding.ok else "finding NOT seen: " if finding.checked else "no finding: "
        console.print(said + finding.summary, highlight=False, soft_wrap=True)
    if summary and not (opts.html_out or opts.json_out):
        console.print("(the traces behind each line: --html FILE or --json FILE, or one scenario at a time)",
                      highlight=False, no_wrap=True, overflow="ellipsis")
    write_scenario_outputs(request, views, opts, console)
    return 1 if failed else 0


def _finding_views(name: str, runs: list, finding) -> list[tuple[str, TraceView]]:  # noqa: ANN001
    """The traces a finding needs, as (title, view) in start order: its trees, then every sync on its timeline."""
    wanted = list(dict.fromkeys([*finding.trace_ids, *(row.trace_id for row in finding.timeline)]))
    out = []
    for run in runs:
        for trace_id in wanted:
            spans = run.store.trace(trace_id)
            if spans:
                root = min(spans, key=lambda sp: sp.start)
                label = f" ({root.attributes['k8s.pod.update_type']})" if "k8s.pod.update_type" in root.attributes \
                    else ""
                out.append((f"{name} · {root.service}: {root.name}{label} · trace {trace_id}", build(spans)))
    return sorted(out, key=lambda tv: tv[1].start)


def print_timeline(console: Console, rows: list) -> None:  # noqa: ANN001 - scenarios.SyncRow
    """One line per syncPod trace of the exercise's pod: when (from the first), the start of its trace id, the
    update type, and what the kubelet did (the error it stopped at, its CRI calls)."""
    console.rule(f"every syncPod of pod {rows[0].pod}")
    t0 = rows[0].start
    uids = list(dict.fromkeys(row.uid for row in rows))
    for row in rows:
        what = f"✗ {row.error}" if row.error else "ok"
        backoff = re.search(r"back-off (\S+)", row.message)
        if backoff and row.error == "CrashLoopBackOff":
            what += f" ({backoff.group(0)})"
        pod = f" pod #{uids.index(row.uid) + 1}" if len(uids) > 1 else ""
        calls = ", ".join(_squeeze(row.calls)) or "no CRI calls"
        head = f"+{(row.start - t0) / 1e9:6.2f}s {row.trace_id[:8]} {row.update_type:6s}"
        # Wrapped under the decision, never cut: the calls are the answer to "what did this sync do".
        for line in textwrap.wrap(f"{head}{pod} {what}: {calls}", width=max(console.width, 40),
                                  subsequent_indent=" " * (len(head) + 2), break_on_hyphens=False):
            console.print(line, highlight=False, markup=False, no_wrap=True, overflow="ellipsis")


def _squeeze(calls: list[str]) -> list[str]:
    """Repeated neighbours counted: [ImageStatus, ImageStatus] -> [ImageStatus ×2]."""
    out: list[str] = []
    count = 0
    for i, call in enumerate(calls):
        count += 1
        if i + 1 == len(calls) or calls[i + 1] != call:
            out.append(call if count == 1 else f"{call} ×{count}")
            count = 0
    return out


def write_scenario_outputs(request, views: list[tuple[str, TraceView]], opts: DemoOptions,  # noqa: ANN001
                           console: Console) -> None:
    """--json: every span the scenarios' runs received; --html: the traces each finding needs."""
    if opts.json_out is not None and request is not None:
        opts.json_out.write_text(otlpjson.dumps(request, indent=1))
        spans = sum(len(ss.spans) for rs in request.resource_spans for ss in rs.scope_spans)
        console.print(f"wrote {opts.json_out} (OTLP JSON, {plural(spans, 'span')})", highlight=False)
    if opts.html_out is not None:
        opts.html_out.write_text(html_render.render(views, "cristack demo --scenario"))
        console.print(f"wrote {opts.html_out} (self-contained HTML, {plural(len(views), 'trace')})", highlight=False)
