"""YAML (static pod manifests, the KubeletConfiguration) read with the limits the real kubelet's decoder has.

The kubelet turns a manifest into JSON with sigs.k8s.io/yaml, which decodes with go-yaml v2
(go.yaml.in/yaml/v2 v2.4.3). go-yaml refuses a document whose alias expansion dominates it
("document contains excessive aliasing", decode.go ``allowedAliasRatio``), an anchor that contains
itself, and nesting deeper than 10,000 (scannerc.go ``max_flow_level``/``max_indents``). PyYAML
refuses none of these by itself: a few hundred bytes of nested aliases under ``kind:`` expand to a
structure whose rendering in an error message took 70 MB. Here the composed node graph is walked
as go-yaml's decoder walks it, counting decode operations and those reached through an alias, and
refused on go-yaml's ratio before anything is constructed. libyaml (PyYAML's C loader, used when
present) refuses nesting deeper than 1,000 by itself; the pure-Python fallback's RecursionError is
turned into the same refusal.

Error messages follow go-yaml's ``yaml: line N: problem``: no excerpt of the input, since a
manifest may be a link to a file that is not a manifest at all.
"""

from __future__ import annotations

from typing import Any

import yaml

from cristack.wording import cut

_Loader: type = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

# go-yaml v2.4.3 decode.go: up to 400,000 decode operations, 99% may come from aliases; from 4,000,000, 10%;
# linear in between. Below 1,000 operations (or 100 through aliases) nothing is refused.
ALIAS_RATIO_RANGE_LOW = 400_000
ALIAS_RATIO_RANGE_HIGH = 4_000_000


class YamlError(ValueError):
    """A document the kubelet's decoder would refuse; the message is go-yaml's shape, bounded."""


def allowed_alias_ratio(decode_count: int) -> float:
    """go-yaml's ``allowedAliasRatio``."""
    if decode_count <= ALIAS_RATIO_RANGE_LOW:
        return 0.99
    if decode_count >= ALIAS_RATIO_RANGE_HIGH:
        return 0.10
    span = ALIAS_RATIO_RANGE_HIGH - ALIAS_RATIO_RANGE_LOW
    return 0.99 - 0.89 * ((decode_count - ALIAS_RATIO_RANGE_LOW) / span)


def check_aliases(root: yaml.Node) -> None:
    """Walks ``root`` as go-yaml's decoder would (every alias expanded, in document order) and raises
    YamlError as soon as the expansion is excessive or an anchor is reached from inside itself.

    PyYAML resolves an alias to the anchored node itself, so the second meeting of a node is an alias:
    it counts once for the alias and then as alias-driven decodes for all it expands to. The stack is two
    flat lists rather than a list of tuples: a tuple per node is an allocation the cyclic collector counts,
    and its full collections over a large document's nodes stalled the process for a second."""
    decodes = via_alias = 0
    met: set[int] = set()
    path: set[int] = set()  # the collections being expanded right now (a cycle comes back to one)
    nodes: list[yaml.Node | int] = [root]  # an int is an exit marker: the id of a collection left
    depths: list[int] = [0]  # how many aliases deep each pending node is
    while nodes:
        node, depth = nodes.pop(), depths.pop()
        if isinstance(node, int):
            path.discard(node)
            continue
        key = id(node)
        if key in met:
            if key in path:
                raise YamlError("yaml: anchor value contains itself")
            decodes += 1
            via_alias += depth > 0
            depth += 1
        decodes += 1
        via_alias += depth > 0
        if via_alias > 100 and decodes > 1000 and via_alias / decodes > allowed_alias_ratio(decodes):
            raise YamlError("yaml: document contains excessive aliasing")
        met.add(key)
        if isinstance(node, yaml.SequenceNode):
            children = node.value[::-1]
        elif isinstance(node, yaml.MappingNode):
            children = [part for pair in reversed(node.value) for part in (pair[1], pair[0])]
        else:
            continue
        path.add(key)
        nodes.append(key)
        depths.append(depth)
        nodes.extend(children)
        depths.extend([depth] * len(children))


def _message(err: yaml.YAMLError) -> str:
    if isinstance(err, yaml.MarkedYAMLError):
        mark = err.problem_mark or err.context_mark
        problem = ", ".join(part for part in (err.context, err.problem) if part) or "invalid YAML"
        where = f"line {mark.line + 1}: " if mark is not None else ""
        return f"yaml: {where}{cut(problem, 200)}"
    return f"yaml: {cut(str(err).splitlines()[0] if str(err) else 'invalid YAML', 200)}"


def load(content: bytes) -> Any:
    """The single document in ``content``, or YamlError. Aliases are checked before construction, so a
    document that would expand without bound is refused having cost no more than its own size."""
    loader = _Loader(content)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        check_aliases(node)  # one walk of the node graph: a document without aliases meets no node twice
        return loader.construct_document(node)
    except yaml.YAMLError as err:
        raise YamlError(_message(err)) from None
    except RecursionError:
        raise YamlError("yaml: exceeded max depth") from None
    finally:
        loader.dispose()
