"""Text from outside (clusters, commands, people), bounded where it is stored and shown.

The one helper for the rule in docs/architecture.md: whatever a cluster, a command or a
person sends may be of any length and script. It is cut with a visible marker to fit the
column or the line it goes into, so that a state change (a halt, a probe record, a finish)
never fails because of the words that explain it. The full text is kept where it helps
(an operation's report, a step's log), and bounded there too, only more generously.
"""

from __future__ import annotations

from typing import Any

# Generous bounds for the places that keep the whole story.
REPORT_LIMIT = 100_000
LOG_LIMIT = 20_000
PAYLOAD_STRING_LIMIT = 4_000
PAYLOAD_ITEMS_LIMIT = 500


# Below this many characters of text besides the marker, a cut is marked with "…" alone.
SHORT = 4


def marker(cut: int) -> str:
    return f" …[{cut:,} more characters cut]"


def bound(text: Any, limit: int) -> str:
    """``text`` as a string of at most ``limit`` characters, cut at the end with a visible marker.

    Control characters other than newlines and tabs are replaced (a cluster's message may carry
    NULs, which PostgreSQL refuses in text columns).
    """
    value = _clean(text if isinstance(text, str) else ("" if text is None else str(text)))
    if len(value) <= limit:
        return value
    cut = len(value) - limit
    if limit < len(marker(cut)) + SHORT:  # too short to say how much: an ellipsis alone marks the cut
        return value[:limit - 1] + "…" if limit > 0 else ""
    while True:
        tail = marker(cut)
        keep = max(0, limit - len(tail))
        if len(value) - keep == cut:
            return value[:keep] + tail if keep else tail[-limit:]
        cut = len(value) - keep


def bound_tail(text: Any, limit: int) -> str:
    """Like ``bound`` but keeps the end (a log's latest lines), with the marker in front."""
    value = _clean(text if isinstance(text, str) else ("" if text is None else str(text)))
    if len(value) <= limit:
        return value
    cut = len(value) - limit
    if limit < len(f"[{cut:,} earlier characters cut]… ") + SHORT:
        return "…" + value[len(value) - limit + 1:] if limit > 0 else ""
    while True:
        head = f"[{cut:,} earlier characters cut]… "
        keep = max(0, limit - len(head))
        if len(value) - keep == cut:
            return head + value[len(value) - keep:] if keep else head[:limit]
        cut = len(value) - keep


def bound_list(items: Any, limit: int, *, each: int) -> list[str]:
    """At most ``limit`` strings of at most ``each`` characters; a last line says how many were left out."""
    values = [bound(item, each) for item in (items or [])]
    if len(values) <= limit:
        return values
    return values[:limit - 1] + [f"…and {len(values) - limit + 1:,} more"]


def bound_payload(value: Any, depth: int = 0) -> Any:
    """A JSON-able payload with every string, list and mapping bounded (for event payloads)."""
    if isinstance(value, str):
        return bound(value, PAYLOAD_STRING_LIMIT)
    if depth > 8:
        return bound(repr(value), PAYLOAD_STRING_LIMIT)
    if isinstance(value, dict):
        items = list(value.items())[:PAYLOAD_ITEMS_LIMIT]
        return {bound(k, 200): bound_payload(v, depth + 1) for k, v in items}
    if isinstance(value, (list, tuple)):
        return [bound_payload(v, depth + 1) for v in list(value)[:PAYLOAD_ITEMS_LIMIT]]
    return value


_CONTROL = {c: "\ufffd" for c in range(32) if c not in (9, 10, 13)}
_CONTROL[0x7F] = "\ufffd"


def _clean(value: str) -> str:
    if value.isprintable():
        return value
    # Lone surrogates cannot be encoded for the database either.
    return value.translate(_CONTROL).encode("utf-8", "replace").decode("utf-8")


# Letters by their Unicode category that show nothing: Hangul fillers, and the Khmer inherent vowels.
WORDLESS = frozenset("\u115f\u1160\u3164\uffa0\u17b4\u17b5")


def says_something(text: str) -> bool:
    """Whether ``text`` holds a visible letter or digit (a reason of blanks, marks, format characters,
    punctuation or fillers says nothing)."""
    return any(ch.isalnum() and ch not in WORDLESS for ch in text or "")


def article(noun: str) -> str:
    """``noun`` with its indefinite article: "an approver", "a viewer"."""
    return f"{'an' if noun[:1].lower() in 'aeiou' else 'a'} {noun}"
