"""One way for a view to fetch an object the user may see, or answer 404."""

from __future__ import annotations

from typing import TypeVar

from django.http import Http404

T = TypeVar("T")


def or_404(found: T | None, message: str) -> T:
    """``found``, or a 404 saying ``message`` ("No such cluster."), the same words whether the object
    does not exist or is not the user's to see."""
    if found is None:
        raise Http404(message)
    return found
