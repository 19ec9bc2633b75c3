"""Writes of the pksweb core: users, API tokens, announcements, heartbeats."""

from __future__ import annotations

from collections.abc import Callable
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
from pksweb.types import Actor, AnyUser

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
    email: str = "",
    check_password: bool = True,
    created_by: Actor = None,
    join: Callable[[User], list[str]] | None = None,
) -> User:
    """Create a user with a role.

    The password is checked against the configured validators unless ``check_password`` is off
    (demo seeds). ``password=None`` makes an account that cannot sign in with a password (API
    token only). ``join(user)``, when given, makes the new user a member of what it belongs to
    and answers the names, which the event records (the tenants app's
    ``tenants.services.user_create_in_tenants`` passes it).
    """
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
    joined = join(user) if join is not None else []
    publish(
        kind="user.created",
        message=f"User {username} created with role {role.label.lower()}",
        actor=created_by,
        subject_type=SubjectType.USER,
        subject_id=user.pk,
        subject_label=username,
        payload={"role": role.value, "tenants": joined},
    )
    return user


def api_token_get_or_create(*, user: User) -> str:
    """The user's API token key, made on first use (``Authorization: Token <key>``)."""
    token, _ = Token.objects.get_or_create(user=user)
    return str(token.key)


@transaction.atomic
def announcement_post(*, author: AnyUser, message: str, tenant: Any = None) -> Event:
    """An operator tells everyone watching (or one tenant's people) something: ``tenant``, when given, is
    one of the model ``Event.tenant`` points to.

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
