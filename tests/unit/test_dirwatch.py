"""The static pod directory's watch (cristack.dirwatch): started before the kubelet's first listing, whatever
changes after that listing wakes the next wait, a directory that did not exist yet included."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from cristack.dirwatch import DirWatch

TIMEOUT_S = 20.0  # a hang guard: each wait below has its cause before it starts


def _first_wait(path: Path, change) -> tuple[bool, float]:  # noqa: ANN001 - what happens after the listing
    async def scenario() -> tuple[bool, float]:
        watch = DirWatch(path)
        watch.start()  # as the kubelet does, then it lists the directory
        try:
            change()
            started = time.monotonic()
            woke = await watch.wait(TIMEOUT_S)
            return woke, time.monotonic() - started
        finally:
            watch.close()

    return asyncio.run(scenario())


def test_a_directory_made_after_the_first_listing_wakes_the_first_wait(tmp_path: Path) -> None:
    later = tmp_path / "later"

    def appear() -> None:
        later.mkdir()
        (later / "late.yaml").write_text("kind: Pod\n")

    woke, took = _first_wait(later, appear)
    assert woke and took < TIMEOUT_S  # it used to wait out the whole period, the file unseen


def test_a_manifest_written_after_the_first_listing_wakes_the_first_wait(tmp_path: Path) -> None:
    woke, took = _first_wait(tmp_path, lambda: (tmp_path / "added.yaml").write_text("kind: Pod\n"))
    assert woke and took < TIMEOUT_S
