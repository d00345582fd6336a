"""The safe JSONPath subset of ``{result=NAME:PATH}`` references: compile a path, walk it.

jsonpath-ng's base parser reads a path, and only names, indices, wildcards, slices and one
recursive descent are accepted (no filters, regular expressions, named operators, unions or
extensions). An accepted path is evaluated lazily, a match at a time, so memory holds no more
than the value being built, and the paths of one batch may visit at most WALK_LIMIT values
of the responses (the walk budget, ``Walk``).
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import cache, lru_cache
from typing import Any

from batch_requests.limits import cut

#: Values of the responses that the paths of one batch may visit, all references together
#: (a recursive descent visits every value under where it starts; a wildcard every child;
#: encoding a matched object or array visits its values again): ~1 s of CPU at most.
WALK_LIMIT = 1_000_000
SUBSET = ("references accept names ($.a, $['a']), indices ([0], [-1]), wildcards (.*, [*]), "
          "slices ([1:3]) and one recursive descent ($..a)")
# Tokens of jsonpath-ng's lexer that the subset refuses, checked before parsing (the parser
# would warn that "|" and "&" are deprecated).
REFUSED_TOKENS = {
    "|": "unions '|' are not supported", "&": "intersections '&' are not supported",
    "WHERE": "'where' is not supported", "WHERENOT": "'wherenot' is not supported",
    "NAMED_OPERATOR": "named operators such as `this`, `parent` or `sub(...)` are not supported",
}


@lru_cache(maxsize=512)
def compile_path(path: str) -> tuple[Any, str | None]:
    """``(tree, None)``: jsonpath-ng's syntax tree of an accepted path; or ``(None, why)``.

    Both answers are cached: a refused path costs nothing the second time. The caller has
    checked the length of ``path`` (MAX_REFERENCE_PATH_LENGTH) first.
    """
    # Imported on first use: jsonpath-ng takes ~20 ms to import, and most batches never
    # hold a reference. The base parser: the extended one adds filters, regular expressions
    # (sub(/.../), =~) and arithmetic, run on response text.
    from jsonpath_ng.lexer import JsonPathLexer
    from jsonpath_ng.parser import JsonPathParser

    try:
        tokens = list(JsonPathLexer().tokenize(path))
        for token in tokens:
            if token.type in REFUSED_TOKENS:
                return None, REFUSED_TOKENS[token.type]
        tree = JsonPathParser().parse_token_stream(iter(tokens))
    except Exception as exc:  # noqa: BLE001 - jsonpath-ng's lexer and parser raise several types
        return None, (f"not a supported JSONPath: {cut(str(exc), 80)}; filters, regular "
                      "expressions and extensions are not supported")
    return (None, problem) if (problem := _tree_problem(tree)) else (tree, None)


def _tree_problem(tree: Any) -> str | None:
    """Why a parsed path falls outside the subset, or None (checked node by node)."""
    from jsonpath_ng.jsonpath import Child, Descendants, Fields, Index, Root, Slice

    wildcard = _wildcard_class()
    descents = 0
    stack = [(tree, True)]  # (node, whether it is the path's first step)
    while stack:
        node, first = stack.pop()
        kind = type(node)
        if kind is Child or kind is Descendants:
            if kind is Descendants:
                descents += 1
                if descents > 1:
                    return ("a path may hold one recursive descent '..', not several: each "
                            "one walks all of the response")
            stack += [(node.left, first), (node.right, False)]
        elif kind is Root:
            if not first:
                return "'$' may only start the path"
        elif first:
            return "the path must start with '$'"
        elif kind is Slice:
            if node.step == 0:
                return "a slice's step may not be 0"
        elif kind not in (Fields, Index) and kind is not wildcard:
            return f"{kind.__name__} is not supported"
    return None


@cache
def _wildcard_class() -> type | None:
    """jsonpath-ng's ``Wildcard`` node; 1.8 and older (the newest release on Python 3.10)
    have none: they parse ``.*`` as ``Fields('*')`` and ``[*]`` as an open ``Slice()``."""
    from jsonpath_ng import jsonpath

    return getattr(jsonpath, "Wildcard", None)


def _is_wildcard(node: Any) -> bool:
    kind = type(node).__name__
    if kind == "Wildcard":
        return True
    if _wildcard_class() is not None:
        return False
    # Older jsonpath-ng: ``.*`` and ``[*]`` mean what Wildcard means in newer releases.
    if kind == "Fields":
        return node.fields == ("*",)
    return kind == "Slice" and node.start is None and node.end is None and node.step is None


class TooFar(Exception):
    """The paths of the batch visited more than WALK_LIMIT values."""


class Walk:
    """What the paths of one batch may still visit of the responses."""

    __slots__ = ("left",)

    def __init__(self) -> None:
        self.left = WALK_LIMIT

    def spend(self, count: int = 1) -> None:
        self.left -= count
        if self.left < 0:
            raise TooFar


def select(node: Any, value: Any, walk: Walk) -> Iterator[Any]:
    """The matches of an accepted path (a jsonpath-ng tree) in ``value``, a match at a time.

    The same matches in the same order as jsonpath-ng's ``find``, which would build them all
    first, each wrapped with its context: hundreds of bytes a value on a large response.
    """
    kind = type(node).__name__  # only the classes _tree_problem accepts
    if kind == "Child":
        for found in select(node.left, value, walk):
            yield from select(node.right, found, walk)
    elif kind == "Descendants":
        for found in select(node.left, value, walk):
            for inner in _preorder(found, walk):
                yield from select(node.right, inner, walk)
    elif kind == "Root":  # only ever the first step: ``value`` is the response
        yield value
    elif _is_wildcard(node):
        for child in value if isinstance(value, list) else (
                value.values() if isinstance(value, dict) else ()):
            walk.spend()
            yield child
    elif kind == "Fields":
        if isinstance(value, dict):
            walk.spend(len(node.fields))
            yield from (value[name] for name in node.fields if name in value)
    elif kind == "Index":
        if isinstance(value, list):
            walk.spend(len(node.indices))
            yield from (value[i] for i in node.indices if -len(value) <= i < len(value))
    elif kind == "Slice":
        if isinstance(value, list):
            for i in range(len(value))[node.start:node.end:node.step]:
                walk.spend()
                yield value[i]
    else:  # pragma: no cover - _tree_problem refuses every other node
        raise TypeError(kind)


def _preorder(value: Any, walk: Walk) -> Iterator[Any]:
    """``value`` and every value under it, parents before children (without recursion)."""
    stack = [iter((value,))]
    while stack:
        for value in stack[-1]:
            walk.spend()
            yield value
            if isinstance(value, (dict, list)):
                stack.append(iter(value.values() if isinstance(value, dict) else value))
                break
        else:
            stack.pop()
