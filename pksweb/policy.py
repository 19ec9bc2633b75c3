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

from collections.abc import Callable, Collection, Iterable
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeGuard, TypeVar

from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.db.models import Model, QuerySet

from pksweb.choices import Role
from pksweb.metrics import bearer_matches
from pksweb.types import AnyUser

if TYPE_CHECKING:
    from pksweb.models import User

ACTIONS = frozenset({"view", "create", "update", "delete", "operate", "manage", "approve"})

M = TypeVar("M", bound=Model)


class Access(Generic[M]):
    """Rules for one model ``M``. Subclasses define ``can_<action>(user, obj)`` and ``restrict_view``.

    The policy asks only about signed-in, active users: an access class never sees anyone else.
    """

    model: ClassVar[type[Model]]

    def can(self, user: User, action: str, obj: M | type[M]) -> bool:
        check: Callable[[User, M | type[M]], bool] | None = getattr(self, f"can_{action}", None)
        return bool(check(user, obj)) if check else False

    def restrict(self, user: User, queryset: QuerySet[M], action: str) -> QuerySet[M]:
        if action != "view":
            raise ValueError(f"only 'view' scoping is defined for {self.model.__name__}, not {action!r}")
        return self.restrict_view(user, queryset)

    def restrict_view(self, user: User, queryset: QuerySet[M]) -> QuerySet[M]:
        return queryset.none()


_registry: dict[type[Model], Access[Any]] = {}

A = TypeVar("A", bound=Access[Any])


def register(model: type[Model]) -> Callable[[type[A]], type[A]]:
    def decorate(cls: type[A]) -> type[A]:
        cls.model = model
        _registry[model] = cls()
        return cls

    return decorate


def access_for(obj: Model | type[Model]) -> Access[Any]:
    model = obj if isinstance(obj, type) else type(obj)
    for klass in model.__mro__:
        if klass in _registry:
            return _registry[klass]
    raise LookupError(f"no access rules registered for {model.__name__}")


def _signed_in(user: AnyUser | None) -> TypeGuard[User]:
    # An inactive user is "not signed in" here too: the policy grants them nothing.
    return user is not None and user.is_authenticated and user.is_active


def can(user: AnyUser | None, action: str, obj: Model | type[Model]) -> bool:
    """May ``user`` do ``action`` on ``obj`` (an instance, or a model class for ``create``)?"""
    if action not in ACTIONS:
        raise ValueError(f"unknown action {action!r}; known: {', '.join(sorted(ACTIONS))}")
    if not _signed_in(user):
        return False
    return access_for(obj).can(user, action, obj)


def require(user: AnyUser | None, action: str, obj: Model | type[Model], message: str) -> None:
    """Raise ``PermissionDenied(message)`` unless ``user`` may ``action`` ``obj``.

    Services call it first; ``user=None`` is pksweb itself (commands, seeds, tasks), which may do anything.
    """
    if user is not None and not can(user, action, obj):
        raise PermissionDenied(message)


def restrict(user: AnyUser | None, queryset: QuerySet[M], action: str = "view") -> QuerySet[M]:
    """``queryset`` narrowed to the rows ``user`` may ``action``."""
    if not _signed_in(user):
        return queryset.none()
    access: Access[M] = access_for(queryset.model)
    return access.restrict(user, queryset, action)


# ``source(user, admin_only)``: ids of the tenants ``user`` belongs to (administers, when ``admin_only``).
Memberships = Callable[["User", bool], frozenset[int]]
# ``rows(user_ids)``: (user id, tenant id, administers) for every membership of those users, in one query.
MembershipRows = Callable[[Collection[int]], Iterable[tuple[int, int, bool]]]
_memberships: list[tuple[Memberships, MembershipRows]] = []

_MEMBER_OF = "_pksweb_tenant_ids"
_ADMIN_OF = "_pksweb_admin_tenant_ids"


def memberships_from(source: Memberships, rows: MembershipRows) -> None:
    """Where tenant memberships come from, one user at a time (``source``) or many at once (``rows``).
    Registered by the tenants app."""
    _memberships[:] = [(source, rows)]


def _cached(user: User, key: str, admin_only: bool) -> frozenset[int]:
    cached: frozenset[int] | None = user.__dict__.get(key)
    if cached is None:
        cached = user.__dict__[key] = _memberships[0][0](user, admin_only) if _memberships else frozenset()
    return cached


def tenant_ids(user: AnyUser | None) -> frozenset[int]:
    """Ids of the tenants ``user`` is a member of (cached on the user object)."""
    if not _signed_in(user):
        return frozenset()
    return _cached(user, _MEMBER_OF, False)


def admin_tenant_ids(user: AnyUser | None) -> frozenset[int]:
    """Ids of the tenants ``user`` administers (member with role admin)."""
    if not _signed_in(user):
        return frozenset()
    return _cached(user, _ADMIN_OF, True)


def tenant_ids_prime(users: Collection[User]) -> None:
    """Read the memberships of ``users`` in one query and set what ``tenant_ids`` and ``admin_tenant_ids``
    answer for each (instead of two queries per user)."""
    member_of: dict[int, set[int]] = {user.pk: set() for user in users}
    admin_of: dict[int, set[int]] = {user.pk: set() for user in users}
    if _memberships and users:
        for user_id, tenant_id, administers in _memberships[0][1](list(member_of)):
            member_of[user_id].add(tenant_id)
            if administers:
                admin_of[user_id].add(tenant_id)
    for user in users:
        user.__dict__[_MEMBER_OF] = frozenset(member_of[user.pk])
        user.__dict__[_ADMIN_OF] = frozenset(admin_of[user.pk])


def tenant_ids_forget(user: AnyUser) -> None:
    """Drop the cached tenant ids of ``user`` (its memberships changed)."""
    user.__dict__.pop(_MEMBER_OF, None)
    user.__dict__.pop(_ADMIN_OF, None)


def is_platform(user: AnyUser | None) -> bool:
    """Operators, approvers and viewers see the whole fleet."""
    return _signed_in(user) and user.is_platform


def is_operator(user: AnyUser | None) -> bool:
    return _signed_in(user) and user.role == Role.OPERATOR


def may_scrape_metrics(user: AnyUser | None, authorization: str | None) -> bool:
    """Who may read ``/metrics``: a scrape that sends ``Authorization: Bearer <PKSWEB_METRICS_TOKEN>`` (compared in
    constant time), and people who see the whole fleet anyway (operators, approvers, viewers), in their browser. No
    one else, whether or not a token is set: the figures name every cluster and tenant, and the Ingress forwards
    /metrics like every path, so a tenant admin or a stranger must not read them (the network policy is a second
    fence, not the only one)."""
    # The token first: it needs no database (the user does, to read the session), so Prometheus still scrapes
    # pksweb's own figures while the database is down.
    return bearer_matches(authorization, settings.PKSWEB_METRICS_TOKEN) or is_platform(user)
