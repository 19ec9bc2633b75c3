"""How deep JSON and YAML from outside may nest, checked before anything parses it.

Python's ``json`` and PyYAML's composer recurse once per level: a body of 100,000
``[`` (100 kB) makes them raise ``RecursionError`` from inside the parser, which no
caller expects (an API request answered 500). The checks here walk the text without
recursion and refuse anything nested deeper than ``MAX_DEPTH``, saying how deep it was.
Nothing pksweb takes from a person needs more than a handful of levels.
"""

from __future__ import annotations

import re
from itertools import accumulate

import yaml

MAX_DEPTH = 64

# A JSON string, to its closing quote or, unclosed, to the end of the text (possessive
# repeats: no backtracking, one pass), and anything that is not a bracket.
_JSON_STRING = re.compile(r'"(?:[^"\\]++|\\.)*+"?', re.DOTALL)
_NOT_BRACKET = re.compile(r"[^\[\]{}]++")
_STEP = {ord("["): 1, ord("{"): 1, ord("]"): -1, ord("}"): -1}


class TooDeep(ValueError):
    """Text nested deeper than pksweb accepts; the message says how deep, in words."""

    def __init__(self, what: str, depth: int, limit: int, *, at_least: bool = False) -> None:
        self.what, self.depth, self.limit = what, depth, limit
        how_deep = f"more than {limit}" if at_least else str(depth)
        super().__init__(f"The {what} is nested {how_deep} levels deep; pksweb accepts at most {limit}.")


def json_depth(text: str) -> int:
    """How many arrays and objects deep ``text`` nests at its deepest; brackets inside strings do not count.

    Any text is measured, JSON or not: the most any prefix of it opens (opening brackets
    less closing ones), which for JSON is its depth and for anything else bounds how deep
    a parser gets before it finds what else is wrong. The work is done by ``re`` and
    ``itertools`` in C, without recursion: about 0.1 s per MB.
    """
    brackets = _NOT_BRACKET.sub("", _JSON_STRING.sub("", text))
    return max(0, max(accumulate(map(_STEP.__getitem__, brackets.encode("ascii"))), default=0))


def check_json(text: str, *, what: str = "JSON", limit: int = MAX_DEPTH) -> None:
    """Raise ``TooDeep`` when ``text`` nests deeper than ``limit``."""
    depth = json_depth(text)
    if depth > limit:
        raise TooDeep(what, depth, limit)


_OPEN = (yaml.MappingStartEvent, yaml.SequenceStartEvent)
_CLOSE = (yaml.MappingEndEvent, yaml.SequenceEndEvent)


def check_yaml(text: str, *, what: str = "YAML", limit: int = MAX_DEPTH) -> None:
    """Raise ``TooDeep`` when the YAML ``text`` nests deeper than ``limit``.

    YAML nests in more ways than brackets (``- - - x`` is three lists deep), so this reads
    PyYAML's event stream (its parser is a loop; only the composer recurses) and stops at
    the first level past the limit: the exact depth would cost a full scan. Text that is
    not YAML passes here; the loader then says what is wrong with it.
    """
    depth = 0
    try:
        for event in yaml.parse(text, Loader=yaml.SafeLoader):
            if isinstance(event, _OPEN):
                depth += 1
                if depth > limit:
                    raise TooDeep(what, depth, limit, at_least=True)
            elif isinstance(event, _CLOSE):
                depth -= 1
    except yaml.YAMLError:
        return
