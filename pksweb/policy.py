"""The one authorization policy: who may see or do what.

Views, the REST API and websocket consumers all ask this module, never the user's
role directly:

- ``can(user, action, obj)`` answers one question about one object (or, for
  actions such as ``create``, about a model class);
- ``restrict(user, queryset, action)`` scopes a queryset to what the user may see.

Each model's rules live in an access class (``<app>/access.py``) registered here
with ``@register(Model)``; their docstrings state the rules in plain words.
Anonymous and inactive users may do nothing.

The core knows nothing of tenants: the tenants app tells it who is a member of what
(``memberships_from``), in its ``AppConfig.ready()``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar, Generic, TypeVar

from django.core.exceptions import PermissionDenied
from django.db.models import Model, QuerySet

from pksweb.choices import Role
from pksweb.types import AnyUser

ACTIONS = frozenset({"view", "create", "update", "delete", "operate", "manage", "approve"})

M = TypeVar("M", bound=Model)


class Access(Generic[M]):
    """Rules for one model ``M``. Subclasses define ``can_<action>(user, obj)`` and ``restrict_view``."""

    model: ClassVar[type[Model]]

    def can(self, user: AnyUser, action: str, obj: Any) -> bool:
        check = getattr(self, f"can_{action}", None)
        return bool(check(user, obj)) if check else False

    def restrict(self, user: AnyUser, queryset: QuerySet[M], action: str) -> QuerySet[M]:
        if action != "view":
            raise ValueError(f"only 'view' scoping is defined for {self.model.__name__}, not {action!r}")
        return self.restrict_view(user, queryset)

    def restrict_view(self, user: AnyUser, queryset: QuerySet[M]) -> QuerySet[M]:
        return queryset.none()


_registry: dict[type[Model], Access[Any]] = {}

A = TypeVar("A", bound=Access[Any])


def register(model: type[Model]) -> Callable[[type[A]], type[A]]:
    def decorate(cls: type[A]) -> type[A]:
        cls.model = model
        _registry[model] = cls()
        return cls

    return decorate


def access_for(obj: Any) -> Access[Any]:
    model = obj if isinstance(obj, type) else type(obj)
    for klass in model.__mro__:
        if klass in _registry:
            return _registry[klass]
    raise LookupError(f"no access rules registered for {model.__name__}")


def _signed_in(user: Any) -> bool:
    return bool(user is not None and user.is_authenticated and user.is_active)


def can(user: AnyUser | None, action: str, obj: Any) -> bool:
    """May ``user`` do ``action`` on ``obj`` (an instance, or a model class for ``create``)?"""
    if action not in ACTIONS:
        raise ValueError(f"unknown action {action!r}; known: {', '.join(sorted(ACTIONS))}")
    if not _signed_in(user):
        return False
    return access_for(obj).can(user, action, obj)


def require(user: AnyUser | None, action: str, obj: Any, message: str) -> None:
    """Raise ``PermissionDenied(message)`` unless ``user`` may ``action`` ``obj``.

    Services call it first; ``user=None`` is pksweb itself (commands, seeds, tasks), which may do anything.
    """
    if user is not None and not can(user, action, obj):
        raise PermissionDenied(message)


def restrict(user: AnyUser | None, queryset: QuerySet[M], action: str = "view") -> QuerySet[M]:
    """``queryset`` narrowed to the rows ``user`` may ``action``."""
    if not _signed_in(user):
        return queryset.none()
    return access_for(queryset.model).restrict(user, queryset, action)


Memberships = Callable[[Any, bool], frozenset[int]]
_memberships: list[Memberships] = []


def memberships_from(source: Memberships) -> Memberships:
    """Where tenant memberships come from: ``source(user, admin_only)`` answers the ids of the tenants
    ``user`` belongs to (administers, when ``admin_only``). Registered by the tenants app."""
    _memberships[:] = [source]
    return source


def _member_of(user: Any, admin_only: bool) -> frozenset[int]:
    return _memberships[0](user, admin_only) if _memberships else frozenset()


def tenant_ids(user: Any) -> frozenset[int]:
    """Ids of the tenants ``user`` is a member of (cached on the user object)."""
    if not _signed_in(user):
        return frozenset()
    cached = user.__dict__.get("_pksweb_tenant_ids")
    if cached is None:
        cached = user.__dict__["_pksweb_tenant_ids"] = _member_of(user, False)
    return frozenset(cached)


def tenant_ids_prime(user: Any, *, member_of: Any, admin_of: Any) -> None:
    """Set what ``tenant_ids`` and ``admin_tenant_ids`` answer for ``user``, read elsewhere in bulk."""
    user.__dict__["_pksweb_tenant_ids"] = frozenset(member_of)
    user.__dict__["_pksweb_admin_tenant_ids"] = frozenset(admin_of)


def tenant_ids_forget(user: Any) -> None:
    """Drop the cached tenant ids of ``user`` (its memberships changed)."""
    user.__dict__.pop("_pksweb_tenant_ids", None)
    user.__dict__.pop("_pksweb_admin_tenant_ids", None)


def is_platform(user: Any) -> bool:
    """Operators, approvers and viewers see the whole fleet."""
    return _signed_in(user) and bool(user.is_platform)


def is_operator(user: Any) -> bool:
    return _signed_in(user) and user.role == Role.OPERATOR


def admin_tenant_ids(user: Any) -> frozenset[int]:
    """Ids of the tenants ``user`` administers (member with role admin)."""
    if not _signed_in(user):
        return frozenset()
    cached = user.__dict__.get("_pksweb_admin_tenant_ids")
    if cached is None:
        cached = user.__dict__["_pksweb_admin_tenant_ids"] = _member_of(user, True)
    return frozenset(cached)
