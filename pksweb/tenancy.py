"""What the core knows of tenants, without importing the app that defines them.

An event may belong to a tenant (``Event.tenant``), so the core knows the tenant *model* through that
relation: announcements name one. Who is a member of which tenant the policy asks
(``pksweb.policy.memberships_from``); which tenant a tenant's person lands on when they sign in the
tenants app answers (``landing_from``). The tenants app registers both in its ``AppConfig.ready()``.
"""

from __future__ import annotations

from typing import Protocol

from django.db.models import Model

from pksweb.models import Event
from pksweb.types import AnyUser


class Landing(Protocol):
    def __call__(self, *, user: AnyUser) -> Model | None: ...


_landing: list[Landing] = []


def tenant_model() -> type[Model]:
    """The model ``Event.tenant`` points to: the tenant."""
    model = Event._meta.get_field("tenant").related_model
    if not isinstance(model, type):
        raise LookupError("Event.tenant points to no model: is the tenants app installed?")
    return model


def landing_from(source: Landing) -> None:
    """Where a person who is not of the platform team lands: ``source(user=user)`` answers their tenant, or None."""
    _landing[:] = [source]


def landing_tenant(user: AnyUser) -> Model | None:
    """The tenant ``user`` lands on when they sign in, if any."""
    return _landing[0](user=user) if _landing else None
