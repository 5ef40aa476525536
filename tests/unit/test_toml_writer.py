"""``dumps_toml``: the configs the harness writes per run (a containerd config.toml) read back as written."""

from __future__ import annotations

import string
import sys

from hypothesis import given
from hypothesis import strategies as st

from cristack.config.tomlconf import dumps_toml
from cristack.harness.stack import example

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

KEYS = st.text(string.ascii_letters + string.digits + "._-' \"\\é", min_size=1, max_size=12)
TEXT = st.text(st.characters(exclude_categories=("Cs",)), max_size=20)  # no lone surrogates: not UTF-8 at all
SCALARS = st.one_of(TEXT, st.booleans(), st.integers(-2**63, 2**63 - 1),
                    st.floats(allow_nan=False, allow_infinity=False))
VALUES = st.one_of(SCALARS, st.lists(SCALARS, max_size=4))
DOCS = st.recursive(st.dictionaries(KEYS, VALUES, max_size=4),
                    lambda tables: st.dictionaries(KEYS, st.one_of(VALUES, tables), max_size=4), max_leaves=12)


@given(DOCS)
def test_any_document_reads_back_equal(doc: dict) -> None:
    assert tomllib.loads(dumps_toml(doc)) == doc


def test_the_shipped_containerd_config_reads_back_equal() -> None:
    doc = tomllib.loads(example("containerd", "config.toml").read_text())
    text = dumps_toml(doc)
    assert tomllib.loads(text) == doc
    assert '[plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc]' in text
