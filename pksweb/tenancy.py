"""What the core knows of tenants, without importing the app that defines them.

An event may belong to a tenant (``Event.tenant``), so the core knows the tenant *model* through that
relation: announcements name one. Who is a member of which tenant the policy asks
(``pksweb.policy.memberships_from``). Which tenant a tenant's person lands on when they sign in, and the
names of a person's tenants, the tenants app answers (``tenancy_from``). The tenants app registers both in
its ``AppConfig.ready()``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from django.db.models import Model

from pksweb.models import Event
from pksweb.types import AnyUser

if TYPE_CHECKING:
    from pksweb.models import User


class Landing(Protocol):
    def __call__(self, *, user: AnyUser) -> Model | None: ...


class Names(Protocol):
    def __call__(self, *, user: User) -> list[str]: ...


@dataclass(frozen=True)
class _Answers:
    landing: Landing
    names: Names


_answers: list[_Answers] = []


def tenant_model() -> type[Model]:
    """The model ``Event.tenant`` points to: the tenant."""
    model = Event._meta.get_field("tenant").related_model
    if not isinstance(model, type):
        raise LookupError("Event.tenant points to no model: is the tenants app installed?")
    return model


def tenancy_from(*, landing: Landing, names: Names) -> None:
    """Who answers: ``landing(user=)`` the tenant a person who is not of the platform team lands on (or None),
    ``names(user=)`` the sorted names of the tenants a user is a member of."""
    _answers[:] = [_Answers(landing, names)]


def landing_tenant(user: AnyUser) -> Model | None:
    """The tenant ``user`` lands on when they sign in, if any."""
    return _answers[0].landing(user=user) if _answers else None


def tenant_names(user: User) -> list[str]:
    """The names of the tenants ``user`` is a member of, sorted."""
    return _answers[0].names(user=user) if _answers else []


class MembershipSync(Protocol):
    def __call__(self, *, user: User, wanted: dict[str, str]) -> list[str]: ...


_sync: list[MembershipSync] = []


def memberships_sync_from(sync: MembershipSync) -> None:
    """Who sets a user's tenant memberships to ``wanted`` (tenant name -> admin or viewer) and says what changed."""
    _sync[:] = [sync]


def memberships_sync(*, user: User, wanted: dict[str, str]) -> list[str]:
    """Set ``user``'s memberships to ``wanted`` (single sign-on, at each sign-in); the changes in words."""
    if not _sync:
        raise LookupError("nobody sets tenant memberships: is the tenants app installed?")
    return _sync[0](user=user, wanted=wanted)
