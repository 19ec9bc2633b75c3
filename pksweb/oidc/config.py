"""Single sign-on's settings, read from the environment when settings load (a mistake stops start-up
in one line naming the variable).

- ``PKSWEB_OIDC_ISSUER``: the provider's issuer URL; its ``/.well-known/openid-configuration`` is
  read for the endpoints and keys. Unset: no single sign-on (local passwords only, as before).
- ``PKSWEB_OIDC_CLIENT_ID``, ``PKSWEB_OIDC_CLIENT_SECRET``: pksweb's client at the provider.
- ``PKSWEB_OIDC_GROUPS_CLAIM``: the ID token's claim that lists the person's groups (``groups``).
- ``PKSWEB_OIDC_GROUP_MAP``: groups to roles and tenant memberships (``pksweb.oidc.mapping``).
- ``PKSWEB_OIDC_SCOPES``: ``openid profile email groups`` by default.
- ``PKSWEB_LOCAL_LOGIN``: ``0`` switches local password sign-in off, except for the break-glass
  account ``PKSWEB_BREAK_GLASS_USER`` (``break-glass``), whose every use is audited.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from django.core.exceptions import ImproperlyConfigured

from pksweb.oidc.mapping import MappingError, Rule, parse_rules


@dataclass(frozen=True)
class OidcSettings:
    issuer: str = ""
    client_id: str = ""
    client_secret: str = ""
    groups_claim: str = "groups"
    scopes: str = "openid profile email groups"
    rules: tuple[Rule, ...] = ()
    local_login: bool = True
    break_glass_user: str = "break-glass"

    @property
    def enabled(self) -> bool:
        return bool(self.issuer)

    @property
    def origins(self) -> list[str]:
        """The provider's origin, where sign-out's form may lead (its end-session endpoint): the pages' CSP
        ``form-action`` lists it."""
        parts = urlsplit(self.issuer)
        return [f"{parts.scheme}://{parts.netloc}"] if self.enabled else []

    @property
    def discovery_url(self) -> str:
        return self.issuer.rstrip("/") + "/.well-known/openid-configuration"


def oidc_settings(env: Mapping[str, str]) -> OidcSettings:
    """The settings from ``env``; ImproperlyConfigured naming the variable that is wrong."""
    def get(name: str, default: str = "") -> str:
        return env.get(name, default).strip()

    local = get("PKSWEB_LOCAL_LOGIN", "1").lower()
    if local not in ("0", "1", "true", "false", "yes", "no", "on", "off"):
        raise ImproperlyConfigured(f"PKSWEB_LOCAL_LOGIN={local!r}: use 1 (password sign-in for everyone) or 0 "
                                   "(only the break-glass account)")
    try:
        rules = parse_rules(env.get("PKSWEB_OIDC_GROUP_MAP", ""))
    except MappingError as error:
        raise ImproperlyConfigured(f"PKSWEB_OIDC_GROUP_MAP: {error}") from None
    found = OidcSettings(
        issuer=get("PKSWEB_OIDC_ISSUER"), client_id=get("PKSWEB_OIDC_CLIENT_ID"),
        client_secret=get("PKSWEB_OIDC_CLIENT_SECRET"), groups_claim=get("PKSWEB_OIDC_GROUPS_CLAIM", "groups") or "groups",
        scopes=get("PKSWEB_OIDC_SCOPES", "openid profile email groups"), rules=rules,
        local_login=local in ("1", "true", "yes", "on"), break_glass_user=get("PKSWEB_BREAK_GLASS_USER", "break-glass"),
    )
    if found.enabled:
        if not found.issuer.startswith(("https://", "http://")):
            raise ImproperlyConfigured(f"PKSWEB_OIDC_ISSUER={found.issuer!r} is not a URL (https://idp.example/realms/x)")
        if not found.client_id:
            raise ImproperlyConfigured("PKSWEB_OIDC_CLIENT_ID is required when PKSWEB_OIDC_ISSUER is set")
        if "openid" not in found.scopes.split():
            raise ImproperlyConfigured("PKSWEB_OIDC_SCOPES must include openid")
    elif not found.local_login:
        raise ImproperlyConfigured("PKSWEB_LOCAL_LOGIN=0 needs PKSWEB_OIDC_ISSUER: without single sign-on only the "
                                   "break-glass account could sign in")
    return found
