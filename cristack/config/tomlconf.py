"""Layered TOML configuration: a main file plus drop-ins merged in lexical order, with the
file that set each key remembered so that an error can name it."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

from cristack.files import ReadLimitReached, read_config
from cristack.wire.errors import ConfigError
from cristack.wording import cut


def read_toml(path: Path) -> dict[str, Any]:
    """A TOML file as a dict; ConfigError naming the file when it is missing, too large (``read_config``) or
    malformed, nesting too deep included (tomllib recurses: a few hundred nested arrays raised RecursionError
    through to a traceback)."""
    try:
        return tomllib.loads(read_config(path).decode())
    except FileNotFoundError:
        raise ConfigError(str(path), "", "no such file") from None
    except (OSError, UnicodeDecodeError, ReadLimitReached) as err:
        raise ConfigError(str(path), "", f"cannot read: {cut(str(err), 200)}") from None
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(str(path), "", f"invalid TOML: {cut(str(err), 200)}") from None
    except RecursionError:
        raise ConfigError(str(path), "", "invalid TOML: arrays or tables nested too deeply") from None


@dataclass
class Layered:
    """Flattened ``dotted.key -> value`` with the source file of each key."""

    values: dict[str, Any] = field(default_factory=dict)
    sources: dict[str, str] = field(default_factory=dict)

    def merge_file(self, path: Path) -> None:
        self._merge(read_toml(path), "", str(path))

    def _merge(self, table: dict[str, Any], prefix: str, source: str) -> None:
        for key, value in table.items():
            dotted = f"{prefix}{key}"
            if isinstance(value, dict):
                self._merge(value, dotted + ".", source)
            else:
                self.values[dotted] = value
                self.sources[dotted] = source

    def source(self, key: str, default: str = "<flags>") -> str:
        return self.sources.get(key, default)

    def get(self, key: str, kind: type | tuple[type, ...], default: Any = None) -> Any:
        """The value at ``key`` checked against ``kind``; ConfigError naming the file if wrong."""
        if key not in self.values:
            return default
        value = self.values[key]
        kinds = kind if isinstance(kind, tuple) else (kind,)
        # TOML booleans are not numbers, whatever Python thinks.
        if isinstance(value, bool) and bool not in kinds or not isinstance(value, kinds):
            names = " or ".join(k.__name__ for k in kinds)
            raise ConfigError(self.source(key), key, f"expected {names}, got {type(value).__name__} {value!r}")
        return value

    def tables_under(self, prefix: str) -> list[str]:
        """Names of the sub-tables directly under ``prefix`` (e.g. runtime handler names)."""
        names: list[str] = []
        for key in self.values:
            if key.startswith(prefix + "."):
                name = key[len(prefix) + 1:].split(".", 1)[0]
                if name not in names:
                    names.append(name)
        return names


def load_layers(main: Path | None, drop_in_dir: Path | None) -> Layered:
    """Merges the main file and then every ``*.conf`` in ``drop_in_dir`` in lexical order."""
    layered = Layered()
    if main is not None:
        layered.merge_file(main)
    if drop_in_dir is not None:
        if not drop_in_dir.is_dir():
            raise ConfigError(str(drop_in_dir), "", "config directory does not exist")
        for path in sorted(drop_in_dir.glob("*.conf")):
            layered.merge_file(path)
    return layered
