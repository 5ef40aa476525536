"""The structural trace diff: what it reports, what it masks, and how the allowlist and detach work."""

from __future__ import annotations

from pathlib import Path

import pytest

from cristack.otel.tracediff import Allowlist, SpanRecord, diff, load_jsonl, save_jsonl

REAL = Path(__file__).resolve().parents[1] / "data" / "real"


def span(name: str, sid: str, parent: str | None = None, service: str = "crio", **kw) -> SpanRecord:
    kw.setdefault("kind", "INTERNAL")
    kw.setdefault("scope", "crio")
    return SpanRecord(service=service, name=name, span_id=sid, parent_id=parent, **kw)


def trace(**child_kw) -> list[SpanRecord]:
    return [span("root", "a", attributes={"rpc.method": "runtime.v1.RuntimeService/Version", "container_id": "1"}),
            span("child", "b", "a", **child_kw)]


def lines(result) -> list[str]:
    return [d.line() for d in result.differences]


def test_a_recording_against_itself_has_no_differences() -> None:
    real = load_jsonl(REAL / "crio" / "spans-lifecycle-info.jsonl")
    result = diff(real, real)
    assert result.ok and result.reproduced == result.real_shapes == 432 and result.extra == 0


def test_each_kind_of_difference_is_one_line_with_the_span_path() -> None:
    real = trace(events=(("log", {"log.severity": "INFO"}),), status="UNSET")
    ours = [span("root", "x", attributes={"rpc.method": "Version", "container_id": "2", "rpc.service": "s"}),
            span("child", "y", "x", kind="CLIENT", scope="", events=(("log", {"log.message": "m"}),),
                 status="ERROR"),
            span("other", "z", "x")]
    got = lines(diff(real, ours))
    assert any(ln.startswith("attr-value") and "crio:root ::" in ln and "rpc.method" in ln for ln in got)
    assert any(ln.startswith("attr-extra") and ln.endswith("rpc.service") for ln in got)
    assert not any("container_id" in ln for ln in got), "ids are masked"
    for kind in ("kind", "scope", "event-attr-missing", "event-attr-extra", "status"):
        assert any(ln.startswith(kind) and "crio:root > crio:child ::" in ln for ln in got), (kind, got)
    assert any(ln.startswith("extra-span") and "crio:root > crio:other" in ln for ln in got)


def test_counted_mode_counts_spans_and_distinct_mode_does_not() -> None:
    real = trace()
    ours = [*trace(), span("child", "c", "a")]
    assert [d.type for d in diff(real, ours).differences] == ["count"]
    assert diff(real, ours, mode="distinct").ok


def test_allowlist_keeps_differences_with_their_reason_and_detach_cuts_a_service_loose(tmp_path: Path) -> None:
    conf = tmp_path / "allow.toml"
    conf.write_text('[[difference]]\ntype = "attr-extra"\npath = "*child"\nreason = "ours says more"\n'
                    '[[detach]]\nservice = "conmonrs"\nreason = "0.8.0 never joins the trace"\n')
    allow = Allowlist.load(conf)
    real = [*trace(), span("create_container", "m", "gone", service="conmonrs")]
    ours = [*trace(attributes={"extra": 1}), span("create_container", "n", "b", service="conmonrs")]
    result = diff(real, ours, allow=allow)
    assert result.ok, result.report()
    assert [a.reason for _, a in result.allowed] == ["ours says more"]
    assert not diff(real, ours).ok


def test_allowlist_errors_name_the_file_and_entry(tmp_path: Path) -> None:
    conf = tmp_path / "allow.toml"
    conf.write_text('[[difference]]\ntype = "kind"\npath = "*"\n')
    with pytest.raises(ValueError, match=r"allow.toml: difference\[0\]: reason is required"):
        Allowlist.load(conf)


def test_saved_spans_read_back_the_same(tmp_path: Path) -> None:
    real = load_jsonl(REAL / "kubelet" / "spans-kubelet-run1.jsonl")
    save_jsonl(real, tmp_path / "x.jsonl")
    assert diff(real, load_jsonl(tmp_path / "x.jsonl")).ok


def test_the_docs_list_every_deliberate_difference() -> None:
    doc = (REAL.parents[2] / "docs" / "trace-anatomy.md").read_text()
    start, end = "<!-- deliberate-differences: generated from tests/data/real/deliberate-differences.toml -->\n", \
        "<!-- /deliberate-differences -->"
    shown = doc[doc.index(start) + len(start):doc.index(end)]
    assert shown == Allowlist.load(REAL / "deliberate-differences.toml").markdown(), (
        "docs/trace-anatomy.md is out of date; regenerate its table with Allowlist.load(...).markdown()")


def test_a_service_named_after_an_id_is_compared_by_its_shape() -> None:
    # containerd's shims are containerd-shim-<sandbox id>: the same shim of two runs has two names.
    shim = "containerd-shim-" + "1" * 64
    real = [span("root", "a", service="containerd"), span("Task/Create", "b", "a", service=shim)]
    other = "containerd-shim-" + "2" * 64
    ours = [span("root", "x", service="containerd"), span("Task/Create", "y", "x", service=other)]
    assert diff(real, ours).ok
    assert lines(diff(real, [span("root", "x", service="containerd")])) == [
        "missing-span       containerd:root > containerd-shim-<id>:Task/Create :: real 1, ours 0"]
