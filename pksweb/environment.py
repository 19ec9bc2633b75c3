"""Reading pksweb's settings from the environment: each helper either returns a usable value or stops start-up with
``ImproperlyConfigured`` naming the variable and how to fix it (never repeating a secret). ``pksweb/settings.py``
is the one place that uses them."""

from __future__ import annotations

import os
from typing import Any

from django.core.exceptions import ImproperlyConfigured

_REQUIRED_HINTS = {
    "PKSWEB_SECRET_KEY": "a long random string, e.g. from `python -c 'import secrets; print(secrets.token_urlsafe(50))'`",
    "DATABASE_URL": "e.g. postgresql://pksweb@db.example:5432/pksweb",
    "REDIS_URL": "e.g. redis://redis.example:6379/0",
    "ALLOWED_HOSTS": "the host names the dashboard is served under, comma-separated",
    "PKSWEB_CREDENTIAL_KEYS": "one or more Fernet keys, comma-separated, newest first (make one with "
    "`python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())'`)",
}


def _env(name: str, default: str = "") -> str:
    return os.environ.get(name, default).strip()


def _required(name: str) -> str:
    value = _env(name)
    if not value:
        raise ImproperlyConfigured(
            f"{name} is required when PKSWEB_MODE=production: set it to {_REQUIRED_HINTS[name]}."
        )
    return value


def _flag(name: str, default: bool = False) -> bool:
    value = _env(name)
    if not value:
        return default
    if value.lower() in ("1", "true", "yes", "on"):
        return True
    if value.lower() in ("0", "false", "no", "off"):
        return False
    raise ImproperlyConfigured(f"{name}={value!r} is not a yes/no value: use 1 or 0.")


def _csv(value: str) -> list[str]:
    return [part.strip() for part in value.split(",") if part.strip()]


def _number(name: str, default: str, kind: type[float] | type[int] = float) -> Any:
    """A number from the environment; a value that is not one stops start-up naming the variable."""
    value = _env(name, default)
    try:
        number = kind(value)
    except ValueError:
        raise ImproperlyConfigured(
            f"{name}={value!r} is not {'a whole number' if kind is int else 'a number'}: use e.g. {default}."
        ) from None
    if number < 0 or number != number or number in (float("inf"), float("-inf")):
        raise ImproperlyConfigured(f"{name}={value!r} must be a finite number, 0 or more: use e.g. {default}.")
    return number


def _fernet_keys(keys: list[str]) -> list[str]:
    """The credential keys, each checked now: a malformed one would otherwise surface as a 500 on the first cluster
    registered. The message never repeats a key."""
    from cryptography.fernet import Fernet

    for number, key in enumerate(keys, start=1):
        try:
            Fernet(key)
        except (ValueError, TypeError):
            raise ImproperlyConfigured(
                f"PKSWEB_CREDENTIAL_KEYS: key {number} of {len(keys)} is not a Fernet key (32 bytes, URL-safe base64): "
                f"{_REQUIRED_HINTS['PKSWEB_CREDENTIAL_KEYS']}."
            ) from None
    return keys
