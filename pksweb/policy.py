"""The one authorization policy: who may see or do what.

Views, the REST API and websocket consumers all ask this module, never the user's
role directly:

- ``can(user, action, obj)`` answers one question about one object (or, for
  actions such as ``create``, about a model class);
- ``restrict(user, queryset, action)`` scopes a queryset to what the user may see.

Each model's rules live in an access class (``<app>/access.py``) registered here
with ``@register(Model)``; their docstrings state the rules in plain words.
Anonymous and inactive users may do nothing.
"""

from __future__ import annotations

from typing import Any, ClassVar, TypeVar

from django.db.models import Model, QuerySet

ACTIONS = frozenset({"view", "create", "operate", "manage", "approve"})

M = TypeVar("M", bound=Model)


class Access:
    """Rules for one model. Subclasses override ``can_<action>`` and ``restrict_view``."""

    model: ClassVar[type[Model]]

    def can(self, user: Any, action: str, obj: Any) -> bool:
        check = getattr(self, f"can_{action}", None)
        return bool(check(user, obj)) if check else False

    def restrict(self, user: Any, queryset: QuerySet[M], action: str) -> QuerySet[M]:
        if action != "view":
            raise ValueError(f"only 'view' scoping is defined for {self.model.__name__}, not {action!r}")
        return self.restrict_view(user, queryset)

    def restrict_view(self, user: Any, queryset: QuerySet[M]) -> QuerySet[M]:
        return queryset.none()


_registry: dict[type[Model], Access] = {}


def register(model: type[Model]):  # type: ignore[no-untyped-def]
    def decorate(cls: type[Access]) -> type[Access]:
        cls.model = model
        _registry[model] = cls()
        return cls

    return decorate


def access_for(obj: Any) -> Access:
    model = obj if isinstance(obj, type) else type(obj)
    for klass in model.__mro__:
        if klass in _registry:
            return _registry[klass]
    raise LookupError(f"no access rules registered for {model.__name__}")


def _signed_in(user: Any) -> bool:
    return bool(user is not None and user.is_authenticated and user.is_active)


def can(user: Any, action: str, obj: Any) -> bool:
    """May ``user`` do ``action`` on ``obj`` (an instance, or a model class for ``create``)?"""
    if action not in ACTIONS:
        raise ValueError(f"unknown action {action!r}; known: {', '.join(sorted(ACTIONS))}")
    if not _signed_in(user):
        return False
    return access_for(obj).can(user, action, obj)


def restrict(user: Any, queryset: QuerySet[M], action: str = "view") -> QuerySet[M]:
    """``queryset`` narrowed to the rows ``user`` may ``action``."""
    if not _signed_in(user):
        return queryset.none()
    return access_for(queryset.model).restrict(user, queryset, action)


def tenant_ids(user: Any) -> frozenset[int]:
    """Ids of the tenants ``user`` is a member of (cached on the user object)."""
    if not _signed_in(user):
        return frozenset()
    cached = getattr(user, "_pksweb_tenant_ids", None)
    if cached is None:
        from tenants.models import TenantMembership

        cached = frozenset(
            TenantMembership.objects.filter(user=user).values_list("tenant_id", flat=True)
        )
        user._pksweb_tenant_ids = cached
    return cached


def tenant_ids_prime(user: Any, *, member_of: Any, admin_of: Any) -> None:
    """Set what ``tenant_ids`` and ``admin_tenant_ids`` answer for ``user``, read elsewhere in bulk."""
    user._pksweb_tenant_ids = frozenset(member_of)
    user._pksweb_admin_tenant_ids = frozenset(admin_of)


def tenant_ids_forget(user: Any) -> None:
    """Drop the cached tenant ids of ``user`` (its memberships changed)."""
    user.__dict__.pop("_pksweb_tenant_ids", None)
    user.__dict__.pop("_pksweb_admin_tenant_ids", None)


def is_platform(user: Any) -> bool:
    """Operators, approvers and viewers see the whole fleet."""
    return _signed_in(user) and bool(user.is_platform)


def is_operator(user: Any) -> bool:
    from pksweb.choices import Role

    return _signed_in(user) and user.role == Role.OPERATOR


def admin_tenant_ids(user: Any) -> frozenset[int]:
    """Ids of the tenants ``user`` administers (member with role admin)."""
    if not _signed_in(user):
        return frozenset()
    cached = getattr(user, "_pksweb_admin_tenant_ids", None)
    if cached is None:
        from tenants.models import TenantMembership

        cached = frozenset(
            TenantMembership.objects.filter(user=user, role="admin").values_list("tenant_id", flat=True)
        )
        user._pksweb_admin_tenant_ids = cached
    return cached
