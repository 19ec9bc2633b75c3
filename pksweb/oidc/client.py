"""pksweb's OpenID Connect client: Authlib's, configured from ``settings.PKSWEB_OIDC``.

Authlib does the protocol: discovery from the issuer, the authorization request with ``state``, ``nonce``
and PKCE (S256), the code exchange, and the ID token's checks (signature against the provider's JWKS,
fetched again when a token names a key it has not seen — key rotation —, issuer, audience, expiry, nonce).
"""

from __future__ import annotations

import threading
import time
from typing import Any

import requests
from authlib.integrations.django_client import OAuth
from django.conf import settings

from pksweb.oidc.config import OidcSettings

TIMEOUT = 5  # seconds for any call to the provider
STATUS_TTL = 30  # a provider found reachable is not asked again for this long (the login page asks)

_apps: dict[tuple[str, ...], Any] = {}
_reachable: dict[str, float] = {}
_lock = threading.Lock()


def config() -> OidcSettings:
    return getattr(settings, "PKSWEB_OIDC", None) or OidcSettings()


def app(oidc: OidcSettings) -> Any:
    """The Authlib client for these settings (one per process: it caches the provider's metadata and keys)."""
    key = (oidc.issuer, oidc.client_id, oidc.client_secret, oidc.scopes)
    with _lock:
        if key not in _apps:
            _apps[key] = OAuth().register(
                name="pksweb", client_id=oidc.client_id, client_secret=oidc.client_secret or None,
                server_metadata_url=oidc.discovery_url,
                client_kwargs={"scope": oidc.scopes, "code_challenge_method": "S256", "default_timeout": TIMEOUT},
            )
        return _apps[key]


def claims_options(oidc: OidcSettings) -> dict[str, Any]:
    """The ID token's issuer must be the configured one (which discovery must also name) and its audience must
    include pksweb's client id. Authlib checks only the issuer by default, and the audience only through ``azp``:
    a token for another client that names pksweb in ``azp`` would pass."""
    issuer = app(oidc).load_server_metadata().get("issuer")
    if issuer != oidc.issuer:
        raise ValueError(f"the provider's discovery document names issuer {issuer!r}, not {oidc.issuer!r}")
    return {"iss": {"essential": True, "value": oidc.issuer}, "aud": {"essential": True, "value": oidc.client_id}}


def provider_problem(oidc: OidcSettings) -> str:
    """Why the provider cannot sign anyone in right now ("" when its discovery document answers)."""
    if time.monotonic() - _reachable.get(oidc.issuer, -STATUS_TTL) < STATUS_TTL:
        return ""
    try:
        answer = requests.get(oidc.discovery_url, timeout=2)
        answer.raise_for_status()
        answer.json()["authorization_endpoint"]
    except (requests.RequestException, ValueError, KeyError, TypeError) as error:
        return f"The identity provider at {oidc.issuer} does not answer ({type(error).__name__})."
    _reachable[oidc.issuer] = time.monotonic()
    return ""


def forget_reachable() -> None:
    """Ask the provider again at the next login page (tests stop and start it)."""
    _reachable.clear()
