"""A component's ``main`` reading its configuration: the one way a config mistake reaches a user."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Protocol, TypeVar

from cristack.otel import logs
from cristack.wire.errors import ConfigError, exit_config_error


class Leveled(Protocol):
    log_level: int


C = TypeVar("C", bound=Leveled)


def load_config(prog: str, load: Callable[[list[str] | None], C], argv: list[str] | None) -> C:
    """Reads ``prog``'s files and flags with ``load``: what it logs meanwhile at info, a ConfigError as one line
    naming the file and key and exit status 2, then the log at the level the configuration asks for."""
    logs.setup(prog, logging.INFO)
    try:
        cfg = load(argv)
    except ConfigError as err:
        exit_config_error(prog, err)
    logs.setup(prog, cfg.log_level)
    return cfg
