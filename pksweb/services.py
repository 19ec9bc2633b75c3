"""Writes of the pksweb core: users, API tokens, announcements, heartbeats."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils import timezone
from rest_framework.authtoken.models import Token

from pksweb import policy
from pksweb.choices import Role, SubjectType
from pksweb.events import ANNOUNCEMENT, publish
from pksweb.models import Event, User, WorkerHeartbeat
from pksweb.text import article

ROLE_NAMES = [choice.value for choice in Role]


def role_parse(name: str) -> Role:
    """The role called ``name``, or a ValidationError listing the real ones."""
    try:
        return Role(name.strip().lower())
    except ValueError:
        raise ValidationError(
            {"role": f"{name!r} is not a role: choose one of {', '.join(ROLE_NAMES)}."}
        ) from None


@transaction.atomic
def user_create(
    *,
    username: str,
    role: Role,
    password: str | None,
    tenants: Iterable[Any] = (),
    email: str = "",
    check_password: bool = True,
    created_by: Any = None,
) -> User:
    """Create a user with a role; tenant admins become admins of ``tenants``.

    A tenant admin needs at least one tenant; other roles take none. The password
    is checked against the configured validators unless ``check_password`` is off
    (demo seeds). ``password=None`` makes an account that cannot sign in with a
    password (API token only).
    """
    from tenants.services import membership_add

    tenants = list(tenants)
    if role == Role.TENANT_ADMIN and not tenants:
        raise ValidationError({"tenant": "A tenant admin needs at least one tenant: pass --tenant NAME."})
    if role != Role.TENANT_ADMIN and tenants:
        raise ValidationError({"tenant": f"Only tenant admins belong to tenants; {article(role.label.lower())} sees the whole fleet."})
    if User.objects.filter(username__iexact=username).exists():
        raise ValidationError({"username": f"A user called {username!r} already exists."})
    user = User(username=username, role=role, email=email)
    if password is None:
        user.set_unusable_password()
    else:
        if check_password:
            validate_password(password, user)
        user.set_password(password)
    user.full_clean()
    user.save()
    for tenant in tenants:
        membership_add(tenant=tenant, user=user, role="admin")
    publish(
        kind="user.created",
        message=f"User {username} created with role {role.label.lower()}",
        actor=created_by,
        subject_type=SubjectType.USER,
        subject_id=user.pk,
        subject_label=username,
        payload={"role": role.value, "tenants": [t.name for t in tenants]},
    )
    return user


def api_token_get_or_create(*, user: User) -> str:
    """The user's API token key, made on first use (``Authorization: Token <key>``)."""
    token, _ = Token.objects.get_or_create(user=user)
    return token.key


@transaction.atomic
def announcement_post(*, author: Any, message: str, tenant: Any = None) -> Event:
    """An operator tells everyone watching (or one tenant's people) something.

    The message is stripped and must not be empty; a tenant, when given, must be
    one the author may see.
    """
    if not policy.can(author, "create", Event):
        raise PermissionDenied("Only operators can post announcements.")
    text = (message or "").strip()
    if not text:
        raise ValidationError({"message": "Write the announcement: it cannot be empty."})
    if len(text) > 500:
        raise ValidationError({"message": f"Keep it to 500 characters (this one has {len(text)})."})
    if tenant is not None and not policy.can(author, "view", tenant):
        raise ValidationError({"tenant": "No such tenant."})
    return publish(
        kind=ANNOUNCEMENT,
        message=text,
        actor=author,
        subject_type=SubjectType.TENANT if tenant is not None else SubjectType.SYSTEM,
        subject_id=tenant.pk if tenant is not None else "",
        subject_label=tenant.name if tenant is not None else "",
        tenant=tenant,
    )


def worker_heartbeat_record(*, worker: str) -> WorkerHeartbeat:
    """Note that ``worker`` is alive now (the beat-scheduled heartbeat)."""
    beat, _ = WorkerHeartbeat.objects.update_or_create(worker=worker, defaults={"seen_at": timezone.now()})
    return beat
