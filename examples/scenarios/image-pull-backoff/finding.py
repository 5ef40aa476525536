"""The image-pull-backoff scenario's finding: what its exercise asks an attendee to find, checked on the spans of
its runs. ``cristack.harness.scenarios`` loads ``find`` from this file (a scenario is its folder)."""

from __future__ import annotations

from cristack.harness.scenarios import Finding, Run, sync_rows


def find(runs: list[Run]) -> Finding:
    r = runs[0]
    failed = [s for s in r.spans() if s.service == "kubelet" and s.name == "runtime.v1.ImageService/PullImage"
              and s.status == "ERROR"]
    # CRI-O logs nothing at info level for a failed pull: the registry's message is the crio
    # SERVER span's status (gRPC UNKNOWN), and the kubelet's CLIENT span's. containerd's SERVER span says it too,
    # logs it (an error-level event), and its otelhttp CLIENT span to the registry failed with the lookup's error.
    registry_events = [s for s in r.spans() if s.service == r.runtime and s.name == "runtime.v1.ImageService/PullImage"
                       and s.status == "ERROR"]
    requests = [s for s in r.spans() if s.service == "containerd" and s.name == "remotes.docker.resolver.HTTPRequest"
                and s.status == "ERROR" and "no such host" in s.status_message]
    timeline = sync_rows(r, "app")
    pull_errors = [row for row in timeline if row.error == "ErrImagePull"]
    backoff_syncs = [row for row in timeline if row.error == "ImagePullBackOff"]
    fixed = [row for row in timeline if row.update_type == "create" and "StartContainer" in row.calls]
    message = registry_events[0].status_message if registry_events else ""
    # Between pulls the kubelet waits the back-off, counted from the failed pull: the next PullImage comes no sooner.
    pulls = sorted(failed, key=lambda s: s.start)
    waits = [(b.start - a.end) / 1e9 for a, b in zip(pulls, pulls[1:], strict=False)]
    ok = (bool(failed) and "no such host" in message and bool(backoff_syncs) and bool(fixed)
          and not any("PullImage" in c for row in backoff_syncs for c in row.calls)
          and (r.runtime != "containerd" or len(requests) >= len(failed)))
    return Finding(ok, f"{len(failed)} ERROR PullImage span(s), the registry said '…{message[-40:]}'; "
                       f"{len(backoff_syncs)} ImagePullBackOff sync(s) without a PullImage; waits between pulls "
                       f"{', '.join(f'{w:.1f}s' for w in waits)}; after the fix a new pod started"
                       + (f"; {len(requests)} failed HTTPRequest span(s) to the registry" if requests else ""),
                   [row.trace_id for row in pull_errors[:1] + backoff_syncs[:1] + fixed[:1]],
                   {"registry_message": message, "failed_pulls": len(failed), "backoffs": len(backoff_syncs),
                    "pull_waits": waits}, timeline)
