"""Template filters of the core."""

from __future__ import annotations

from datetime import timedelta

from django import template

register = template.Library()


@register.filter
def duration_words(value: timedelta | float | int | None) -> str:
    """A duration as a person reads it: "42 s", "3 min 10 s", "15 min", "2 h 5 min" (never "PT15M")."""
    if value is None:
        return ""
    seconds = max(0, round(value.total_seconds() if isinstance(value, timedelta) else float(value)))
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    if minutes:
        return f"{minutes} min {seconds} s" if seconds else f"{minutes} min"
    return f"{seconds} s"
