"""Where container logs may go: the sandbox's ``log_directory`` and the container's ``log_path``.

CRI-O writes logs wherever the request says (the kubelet names /var/log/pods/NS_NAME_UID; critest
and crictl's examples name directories under /tmp), so fake-crio accepts any absolute
``log_directory`` too. The trust boundary sits *below* that directory: a ``log_path`` is joined
under it and refused if ``..`` or a symlink would take it out, and the file itself is opened with
O_NOFOLLOW (cristack.containers.crilog), so a link planted later cannot redirect it either. An operator who
wants every log under one tree sets ``--pod-logs-root`` (or ``[cristack] pod_logs_root``); only
then are log directories confined to it, and only then may a ``log_directory`` be relative (taken
below that root: ours). Without it a relative one is refused as CRI-O refuses it
(server/sandbox_run_linux.go: "requested logDir for sbuilder ID ... is a relative path"), instead of
landing under the host's /var/log/pods.

Refusals are InvalidArgument with the whole message (the caller's ``except ValueError`` does not see
them): a path from a request is cut in the message (cristack.wording.cut), never echoed whole.
"""

from __future__ import annotations

import os
from pathlib import Path

from cristack.files import confine
from cristack.wire.errors import InvalidArgument
from cristack.wording import cut

PATH_MAX = 4096  # Linux: a longer path cannot be opened (ENAMETOOLONG), so it is refused up front
NAME_MAX = 255


def _check_length(what: str, value: str) -> None:
    encoded = os.fsencode(value)
    if len(encoded) >= PATH_MAX or any(len(part) > NAME_MAX for part in encoded.split(b"/")):
        raise InvalidArgument(f"{what} {cut(value)!r} is too long: a path has fewer than {PATH_MAX} bytes and each "
                              f"of its names at most {NAME_MAX}")


def log_directory(requested: str, root: Path, confined: bool, sandbox_id: str = "") -> Path:
    """The directory a sandbox's logs go to; InvalidArgument naming the reason for a refusal."""
    shown = cut(requested)
    where = f" (--pod-logs-root confines logs under {root})" if confined else ""
    _check_length("log_directory", requested)
    if "\x00" in requested:
        raise InvalidArgument(f"log_directory {shown!r} refused: path contains a NUL byte{where}")
    if ".." in Path(requested).parts:
        raise InvalidArgument(f"log_directory {shown!r} refused: '..' is not allowed in a log directory{where}")
    if not confined and not Path(requested).is_absolute():
        sandbox = f" for sbuilder ID {sandbox_id}" if sandbox_id else ""
        raise InvalidArgument(f"requested logDir{sandbox} is a relative path: {shown} (relative log directories are "
                              "taken below --pod-logs-root when one is set)")
    if confined or not Path(requested).is_absolute():
        try:
            return confine(root, requested)
        except ValueError as err:
            raise InvalidArgument(f"log_directory {shown!r} refused: {cut(str(err), 200)}{where}") from None
    return Path(requested).resolve()


def log_file(directory: str, log_path: str, root: Path, confined: bool) -> Path:
    """The log file of a container, below its sandbox's log directory (never outside it, never a directory)."""
    shown = cut(log_path)
    _check_length("log_path", log_path)
    try:
        path = confine(Path(directory), log_path)
        if confined:
            confine(root, str(path))
    except ValueError as err:
        raise InvalidArgument(f"log_path {shown!r} refused: {cut(str(err), 200)}") from None
    # CRI-O joins the two (internal/factory/container LogPath) and conmon then fails to open a directory; a
    # path that names the log directory itself ('.', 'x/..') or one below it is the caller's mistake.
    if path == Path(directory).resolve() or path.is_dir():
        raise InvalidArgument(f"log_path {shown!r} refused: it names a directory ({cut(str(path), 200)}), "
                              "not a file below log_directory")
    return path
