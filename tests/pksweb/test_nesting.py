"""Measuring how deep JSON and YAML nest, without recursing, before anything parses them."""

from __future__ import annotations

import json

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from pksweb import nesting

# Text that looks like structure: brackets, quotes and backslashes inside strings must not count.
TRICKY = st.text(alphabet=st.sampled_from('[]{}"\\,: aé\n\t\u2028') | st.characters(), max_size=12)
SCALARS = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | TRICKY
VALUES = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(TRICKY, inner, max_size=4),
                      max_leaves=25)


def depth_of(value) -> int:
    if isinstance(value, list):
        return 1 + max((depth_of(v) for v in value), default=0)
    if isinstance(value, dict):
        return 1 + max((depth_of(v) for v in value.values()), default=0)
    return 0


def wrapped(value, wrappers: list[str], key: str):
    for kind in reversed(wrappers):
        value = [value] if kind == "array" else {key: value}
    return value


@given(value=VALUES, wrappers=st.lists(st.sampled_from(["array", "object"]), max_size=150), key=TRICKY,
       indent=st.sampled_from([None, 0, 2]), ensure_ascii=st.booleans())
def test_json_depth_is_the_depth_of_the_parsed_value(value, wrappers, key, indent, ensure_ascii):
    value = wrapped(value, wrappers, key)
    text = json.dumps(value, indent=indent, ensure_ascii=ensure_ascii)
    assert nesting.json_depth(text) == depth_of(json.loads(text)) == depth_of(value)


@given(st.text())
def test_any_text_is_measured_and_json_exactly(text):
    depth = nesting.json_depth(text)
    assert depth >= 0
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):
        return
    assert depth == depth_of(value)


@pytest.mark.parametrize(("text", "depth"), [
    ("[" * 100_000 + "]" * 100_000, 100_000),
    ('{"a":' * 100_000 + "1" + "}" * 100_000, 100_000),
    ('[{"k[":' * 50_000 + '"]]]"' + "}]" * 50_000, 100_000),
    ("[" * 100_000, 100_000),  # never closed: still as deep as a parser would go
    ('"' + "[" * 100_000, 0),  # all inside a string that never ends
    ('["\\"[[[", "\\\\", {"]": "["}]', 2),
])
def test_depths_that_make_the_parser_recurse_out_are_measured(text, depth):
    """Depths at which ``json`` raises RecursionError (not ValueError) are measured exactly, without recursing."""
    assert nesting.json_depth(text) == depth


def test_the_refusal_says_how_deep_and_what_is_accepted():
    nesting.check_json(json.dumps(wrapped(1, ["array"] * 64, "k")))
    with pytest.raises(nesting.TooDeep) as refused:
        nesting.check_json("[" * 10_000 + "]" * 10_000)
    assert str(refused.value) == "The JSON is nested 10000 levels deep; pksweb accepts at most 64."
    with pytest.raises(nesting.TooDeep, match="nested 65 levels deep"):
        nesting.check_json(json.dumps(wrapped(1, ["object"] * 65, "k")))


@given(depth=st.integers(min_value=1, max_value=200), flow=st.sampled_from([True, False, None]),
       kinds=st.lists(st.sampled_from(["array", "object"]), min_size=1, max_size=3), key=TRICKY)
def test_yaml_deeper_than_the_limit_is_refused_however_it_is_written(depth, flow, kinds, key):
    value = wrapped("leaf", [kinds[i % len(kinds)] for i in range(depth)], key)
    text = yaml.safe_dump(value, default_flow_style=flow, width=10**9)
    assert depth_of(yaml.safe_load(text)) == depth
    if depth > nesting.MAX_DEPTH:
        with pytest.raises(nesting.TooDeep, match="nested more than 64 levels deep; pksweb accepts at most 64"):
            nesting.check_yaml(text, what="kubeconfig")
    else:
        nesting.check_yaml(text, what="kubeconfig")


@pytest.mark.parametrize("text", ["[" * 100_000 + "]" * 100_000, "- " * 100_000 + "x", "{a: " * 100_000, "[{a: " * 50_000])
def test_yaml_the_loader_cannot_compose_is_refused_quickly(text):
    import time

    began = time.monotonic()
    with pytest.raises(nesting.TooDeep):
        nesting.check_yaml(text)
    assert time.monotonic() - began < 2


def test_text_that_is_not_yaml_is_left_to_the_loader_to_explain():
    nesting.check_yaml("a: [b\nc: ]]")
