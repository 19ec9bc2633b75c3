"""Credentials encrypted at rest with Fernet (the ``cryptography`` package).

Keys come from ``settings.PKSWEB_CREDENTIAL_KEYS``: the first encrypts, all of them
decrypt, so a new key is added in front and ``manage.py rotatekeys`` re-encrypts
every stored credential with it before old keys are removed.
"""

from __future__ import annotations

import json
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured


def _fernet() -> MultiFernet:
    keys = settings.PKSWEB_CREDENTIAL_KEYS
    if not keys:
        raise ImproperlyConfigured("PKSWEB_CREDENTIAL_KEYS is empty: set one or more Fernet keys (comma-separated).")
    try:
        return MultiFernet([Fernet(k) for k in keys])
    except ValueError:
        raise ImproperlyConfigured("PKSWEB_CREDENTIAL_KEYS holds a value that is not a Fernet key "
                                   "(32 url-safe base64-encoded bytes; make one with "
                                   "`python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())'`).") from None


def seal(data: dict[str, Any]) -> str:
    return _fernet().encrypt(json.dumps(data, separators=(",", ":")).encode()).decode()


def unseal(token: str) -> dict[str, Any]:
    try:
        data: dict[str, Any] = json.loads(_fernet().decrypt(token.encode()))
    except InvalidToken:
        raise ImproperlyConfigured("A stored credential cannot be decrypted with any key in PKSWEB_CREDENTIAL_KEYS: "
                                   "a key it was sealed with is missing.") from None
    return data


def reseal(token: str) -> str:
    """The same secret encrypted with the newest key."""
    return _fernet().rotate(token.encode()).decode()
