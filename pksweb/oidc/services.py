"""Writes of single sign-on: a person signed in by the provider, refused, or the break-glass account used.

Every sign-in, every refusal and every role or membership the provider's groups change is an event, so
it is in the audit chain (``pksweb.audit``).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from django.db import transaction
from django.utils import timezone

from pksweb import tenancy
from pksweb.choices import Role, SubjectType
from pksweb.events import publish
from pksweb.models import SignInIdentity, User
from pksweb.oidc.config import OidcSettings
from pksweb.oidc.mapping import Grant, resolve
from pksweb.text import bound

SIGNED_IN = "auth.sso_sign_in"
REFUSED = "auth.sso_refused"
ROLE_CHANGED = "auth.sso_role_changed"
BREAK_GLASS = "auth.break_glass"
USERNAME_CHARS = re.compile(r"[^\w.@+-]")


@dataclass(frozen=True)
class SignIn:
    """A sign-in's outcome: the user to let in, or why nobody is (for the person, on the login page).

    Not an exception: a refusal commits what it changed (a deactivated user, memberships removed, the event)."""

    user: User | None
    refusal: str = ""


def groups_of(claims: Mapping[str, Any], claim: str) -> list[str]:
    """The groups in ``claim``: a list of names (non-strings dropped) or one name."""
    value = claims.get(claim)
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [g for g in value if isinstance(g, str)]
    return []


def _username_for(claims: Mapping[str, Any], issuer: str, subject: str) -> str:
    """A free user name from ``preferred_username`` (or email, or sub); suffixed when taken, never reused."""
    wanted = next((str(claims[c]) for c in ("preferred_username", "email", "sub") if claims.get(c)), subject)
    base = USERNAME_CHARS.sub("-", wanted)[:120] or "sso-user"
    if not User.objects.filter(username__iexact=base).exists():
        return base
    return f"{base}-{hashlib.sha256(f'{issuer} {subject}'.encode()).hexdigest()[:8]}"


def _changes(before: tuple[str, bool], user: User, memberships: list[str]) -> list[str]:
    changes = [f"role {before[0] or 'none'} → {user.role}"] if before[0] != user.role else []
    if before[1] != user.is_active:
        changes.append("active" if user.is_active else "deactivated")
    return changes + memberships


@transaction.atomic
def sso_sign_in(*, config: OidcSettings, claims: Mapping[str, Any]) -> SignIn:
    """Let in the person whose checked ID token carries ``claims``, with the role and tenant memberships their
    groups give now (``PKSWEB_OIDC_GROUP_MAP``): what their groups no longer give is taken away here.

    Found by issuer and ``sub`` (``SignInIdentity``), never by user name. Groups that give nothing refuse the
    sign-in and deactivate a person who had access, which ends their sessions and sockets."""
    issuer, subject = str(claims.get("iss", "")), str(claims.get("sub", ""))
    if not issuer or not subject:
        return SignIn(None, "The identity provider's token names nobody (no iss or sub).")
    groups = groups_of(claims, config.groups_claim)
    grant: Grant = resolve(groups, config.rules)
    identity = SignInIdentity.objects.select_for_update().select_related("user").filter(issuer=issuer, subject=subject).first()
    user = identity.user if identity is not None else None
    before = (user.role, user.is_active) if user is not None else ("", False)
    if not grant.any:
        memberships: list[str] = []
        if user is not None:
            user.is_active = False
            user.save(update_fields=["is_active"])
            memberships = tenancy.memberships_sync(user=user, wanted={})
        _refused_event(claims, groups, f"no group of theirs gives access to pksweb ({len(groups)} groups)",
                       changes=_changes(before, user, memberships) if user is not None else [])
        return SignIn(None, "Your groups at the identity provider give you no access to pksweb: ask for one of "
                            "the groups the platform team maps to a role.")
    if user is None:
        user = User(username=_username_for(claims, issuer, subject))
        user.set_unusable_password()
        identity = SignInIdentity(user=user, issuer=issuer, subject=subject)
    assert identity is not None
    user.role, user.is_active = grant.user_role, True
    user.email = bound(str(claims.get("email") or user.email), 254)
    user.save()
    identity.user = user
    identity.groups, identity.last_sign_in_at = [bound(g, 200) for g in groups[:200]], timezone.now()
    identity.save()
    wanted = grant.memberships if user.role == Role.TENANT_ADMIN else {}
    changes = _changes(before, user, tenancy.memberships_sync(user=user, wanted=wanted))
    if changes:
        publish(kind=ROLE_CHANGED, message=f"{user.get_username()}'s access changed by the identity provider's groups: "
                f"{'; '.join(changes)}", actor=user, subject_type=SubjectType.USER, subject_id=user.pk,
                subject_label=user.get_username(), payload={"changes": changes, "role": user.role, "tenants": wanted})
    publish(kind=SIGNED_IN, message=f"{user.get_username()} signed in through the identity provider as {user.role}",
            actor=user, subject_type=SubjectType.USER, subject_id=user.pk, subject_label=user.get_username(),
            payload={"issuer": issuer, "subject": subject, "matched_groups": list(grant.matched)[:100], "role": user.role})
    return SignIn(user)


def _refused_event(claims: Mapping[str, Any], groups: list[str], reason: str, changes: list[str]) -> None:
    who = str(claims.get("preferred_username") or claims.get("sub") or "someone")
    publish(kind=REFUSED, message=f"Single sign-on refused for {who}: {reason}", subject_type=SubjectType.USER,
            subject_label=bound(who, 150), payload={"reason": reason, "groups": groups[:100], "changes": changes,
                                                   "subject": str(claims.get("sub", ""))})


@transaction.atomic
def sso_failure_record(*, reason: str) -> None:
    """A sign-in through the provider that failed before anyone was known (a refused ID token, a wrong state,
    the provider unreachable): the reason, for the audit trail."""
    publish(kind=REFUSED, message=f"Single sign-on failed: {reason}", subject_type=SubjectType.USER,
            payload={"reason": reason})


@transaction.atomic
def break_glass_record(*, user: User, address: str) -> None:
    """The break-glass local account signed in with its password: always audited."""
    publish(kind=BREAK_GLASS, message=f"Break-glass account {user.get_username()} signed in with its password from "
            f"{address or 'an unknown address'}", actor=user, subject_type=SubjectType.USER, subject_id=user.pk,
            subject_label=user.get_username(), payload={"address": address})
