"""The releases cristack reproduces (its traces are checked against recordings of exactly these, see
tests/data/real/), in one place: what the components report as their versions comes from here."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from cristack import __version__

CRIO_VERSION = "1.36.3"
CONMONRS_VERSION = "0.8.0"
CONMONRS_COMMIT = "c07e5214eeef082e83661ff7b610bac38f08401c"
KUBERNETES_VERSION = "v1.36.3"
CRICTL_VERSION = "v1.36.0"
CONTAINERD_VERSION = "v2.4.2"
CONTAINERD_REVISION = "v2.4.2-gomodproxy"  # what the recorded build reports (VERSIONS.txt)


def version_flag(parser: argparse.ArgumentParser, text: str, *flags: str) -> None:
    """``--version``: prints ``text`` (what the real component prints, then ours) as it is, unwrapped."""

    class _Print(argparse.Action):
        def __call__(self, p: argparse.ArgumentParser, ns: Any, values: Any, option: str | None = None) -> None:
            sys.stdout.write(f"{text}\n(cristack {parser.prog} {__version__}: reproduces this release's traces)\n")
            p.exit()

    parser.add_argument(*(flags or ("--version",)), nargs=0, action=_Print, help="print the version and exit")
