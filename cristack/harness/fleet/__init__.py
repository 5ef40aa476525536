"""``cristack fleet``: the traces of N nodes from one process, re-issued from captures of the live stack.

- ``episodes``: what a capture (and the live side of the fidelity tests) runs on a real node: the idle node,
  and each pod kind's episode (pod added, running, removed) with its manifest and runtime settings.
- ``live``: live nodes of a runtime (``LIVE_RUNTIMES``) and an in-process receiver keeping every span as sent.
- ``capture``: runs those on the three real components and writes the catalogue (``catalogue/<runtime>.jsonl``,
  package data): every span with its ids made references, its concrete names made markers and its times made
  offsets from an anchor.
- ``catalogue``: reads a catalogue back (the kinds, their rates and their span templates).
- ``wire``: compiles span templates into OTLP protobuf bytes with holes, and fills the holes per issue.
- ``nodes``: the simulated nodes (name, pod CIDR, pods) and the seeded schedule of what each emits when.
- ``export``: the bounded, never-blocking OTLP/gRPC export of raw request bytes, drops counted by reason.
- ``run``: the command: progress, summary, signals.
- ``fidelity``: the fleet's traces beside live ones, kind by kind (``cristack diff``), for the tests and the bench.
"""
