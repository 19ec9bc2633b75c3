"""Settings of notifications (part of pksweb.settings, which imports them all; a module of their own because
settings.py is at its 500 lines). Numbers that are not numbers stop start-up naming the variable, as there.

- ``PKSWEB_NOTIFY_DEBOUNCE`` (300): at most one message per subject and kind on a channel in that many seconds;
- ``PKSWEB_NOTIFY_TIMEOUT`` (5): seconds one send may take (connect, then read) before it counts as failed;
- ``PKSWEB_NOTIFY_ATTEMPTS`` (4) and ``PKSWEB_NOTIFY_BACKOFF`` (2): a failed send is tried again after 2, 4, 8 s…;
- ``PKSWEB_PUBLIC_URL``: the address people browse to, which every message links back to; by default the first of
  ``CSRF_TRUSTED_ORIGINS`` (set behind a proxy anyway), else the embedded server's ``http://127.0.0.1:$PORT``.
"""

from __future__ import annotations

import math
import os

from django.core.exceptions import ImproperlyConfigured

__all__ = ["PKSWEB_NOTIFY_DEBOUNCE", "PKSWEB_NOTIFY_TIMEOUT", "PKSWEB_NOTIFY_ATTEMPTS", "PKSWEB_NOTIFY_BACKOFF", "PKSWEB_PUBLIC_URL"]


def _number(name: str, default: str, kind: type[float] | type[int] = float) -> float:
    value = os.environ.get(name, "").strip() or default
    try:
        number = kind(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={value!r} is not {'a whole number' if kind is int else 'a number'}: "
                                   f"use e.g. {default}.") from None
    if number < 0 or not math.isfinite(number):
        raise ImproperlyConfigured(f"{name}={value!r} must be a finite number, 0 or more: use e.g. {default}.")
    return number


PKSWEB_NOTIFY_DEBOUNCE = _number("PKSWEB_NOTIFY_DEBOUNCE", "300")
PKSWEB_NOTIFY_TIMEOUT = _number("PKSWEB_NOTIFY_TIMEOUT", "5")
PKSWEB_NOTIFY_ATTEMPTS = int(_number("PKSWEB_NOTIFY_ATTEMPTS", "4", int)) or 1
PKSWEB_NOTIFY_BACKOFF = _number("PKSWEB_NOTIFY_BACKOFF", "2")
_origins = [o.strip() for o in os.environ.get("CSRF_TRUSTED_ORIGINS", "").split(",") if o.strip()]
PKSWEB_PUBLIC_URL = (os.environ.get("PKSWEB_PUBLIC_URL", "").strip() or (_origins[0] if _origins else "")
                     or f"http://127.0.0.1:{os.environ.get('PORT', '').strip() or '8000'}").rstrip("/")
