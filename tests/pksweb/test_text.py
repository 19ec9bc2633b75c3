"""The one helper that bounds text from outside: whatever it is given, it fits and says it was cut."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from pksweb.text import bound, bound_list, bound_payload, bound_tail

texts = st.one_of(st.text(max_size=3000), st.text(alphabet=st.characters(codec="utf-8"), min_size=400, max_size=6000),
                  st.integers(0, 50_000).map(lambda n: "x" * n), st.none(), st.integers(), st.binary(max_size=50))
limits = st.integers(min_value=40, max_value=5000)


@given(texts, limits)
def test_bound_fits_and_marks_the_cut(text, limit):
    value = bound(text, limit)
    assert isinstance(value, str) and len(value) <= limit
    original = text if isinstance(text, str) else ("" if text is None else str(text))
    if len(original) > limit:
        kept, _, said = value.rpartition(" …[")
        assert said == f"{len(original) - len(kept):,} more characters cut]"
    else:
        assert len(value) == len(original)
    assert "\x00" not in value
    value.encode("utf-8")  # storable: no lone surrogates


@given(texts, limits)
def test_bound_tail_keeps_the_end(text, limit):
    value = bound_tail(text, limit)
    assert len(value) <= limit
    original = text if isinstance(text, str) else ("" if text is None else str(text))
    if len(original) > limit and original.isprintable():
        assert value.startswith("[") and original.endswith(value.split("… ", 1)[1])


def test_the_marker_says_how_much_was_cut():
    value = bound("a" * 1000, 100)
    kept = value.split(" …[")[0]
    assert value == kept + f" …[{1000 - len(kept):,} more characters cut]" and len(value) == 100
    assert bound("short", 100) == "short"
    assert bound("nul\x00byte", 100) == "nul\ufffdbyte"


@given(st.lists(st.text(max_size=2000), max_size=60), st.integers(2, 30), st.integers(40, 500))
def test_bound_list(items, limit, each):
    values = bound_list(items, limit, each=each)
    assert len(values) <= limit and all(len(v) <= each for v in values[:-1])
    if len(items) > limit:
        assert values[-1] == f"…and {len(items) - limit + 1:,} more"


json_values = st.recursive(st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=6000)),
                           lambda inner: st.one_of(st.lists(inner, max_size=5), st.dictionaries(st.text(max_size=300), inner, max_size=5)),
                           max_leaves=20)


@given(json_values)
def test_bound_payload_bounds_every_string(value):
    def strings(v):
        if isinstance(v, str):
            yield v
        elif isinstance(v, dict):
            for k, item in v.items():
                yield k
                yield from strings(item)
        elif isinstance(v, list):
            for item in v:
                yield from strings(item)

    assert all(len(s) <= 4000 for s in strings(bound_payload(value)))


@given(texts, st.integers(min_value=0, max_value=60))
def test_a_short_bound_keeps_the_start_and_ends_with_an_ellipsis(text, limit):
    """A limit too small for the marker still reads as the start of the text (it showed the marker's tail)."""
    value, tail = bound(text, limit), bound_tail(text, limit)
    original = bound(text, 10**9)  # cleaned of control characters, uncut
    assert len(value) <= limit and len(tail) <= limit
    if len(original) <= limit:
        assert value == original == tail
    elif limit:
        kept = value.rpartition(" …[")[0] or value[:-1]
        assert original.startswith(kept) and (value.endswith("…") or value.endswith("characters cut]")), value
        assert tail.startswith(("…", "[")), tail


def test_article():
    from pksweb.text import article

    assert [article(w) for w in ("approver", "operator", "viewer", "tenant admin")] == [
        "an approver", "an operator", "a viewer", "a tenant admin"]


@given(st.floats(min_value=0, max_value=10**7, allow_nan=False))
def test_a_duration_reads_in_words(seconds):
    from pksweb.templatetags.pksweb_extras import duration_words

    words = duration_words(seconds)
    assert words and "PT" not in words and words.split()[-1] in ("s", "min", "h")
    total = sum(int(n) * {"h": 3600, "min": 60, "s": 1}[unit] for n, unit in zip(words.split()[::2], words.split()[1::2], strict=True))
    assert (0 <= round(seconds) - total < 60) if "h" in words.split() else total == round(seconds)  # hours drop the seconds
