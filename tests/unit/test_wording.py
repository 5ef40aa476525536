from cristack.wording import cut, plural


def test_plural_says_one_thing_or_many() -> None:
    assert [plural(n, "trace") for n in (0, 1, 2)] == ["0 traces", "1 trace", "2 traces"]
    assert plural(1, "sandbox", "sandboxes") == "1 sandbox" and plural(3, "sandbox", "sandboxes") == "3 sandboxes"


def test_cut_keeps_short_text_and_cuts_long_text_saying_how_long_it_was() -> None:
    assert cut("Host: x", 40) == "Host: x"
    short = cut("y" * 100_000, 40)
    assert short.startswith("y" * 40) and short.endswith("(100,000 characters)") and len(short) < 80


def test_each_pods_start_trace_comes_first_and_the_others_are_labelled() -> None:
    from cristack.harness.demo import trace_id_lines

    a, b, c = "a" * 32, "b" * 32, "c" * 32
    syncs = [("syncPod", a), ("syncPod", c), ("syncTerminatingPod", b), ("syncTerminatedPod", b)]
    pods = [{"pod": "default/hello", "syncs": [{"function": f, "traceId": t} for f, t in syncs]}]
    assert trace_id_lines(pods) == [f"default/hello start: {a}",
                                    f"other syncs (running, stopping, cleanup): {c}, {b}"]
