"""Which role and which tenant memberships a person's groups at the identity provider give.

The rules come from ``PKSWEB_OIDC_GROUP_MAP``, one rule per line or separated by ``;``::

    platform-ops = operator
    change-board = approver
    k8s-*-readers = viewer
    k8s-tenant-{tenant}-admins = admin:{tenant}
    k8s-tenant-{tenant}-viewers = viewer:{tenant}
    auditors = viewer:acme-bank

A pattern is the group's whole name: ``*`` stands for any run of characters, ``{tenant}`` for a
tenant's name (a DNS label) that the target reuses. Matching is exact and case-sensitive: a group that
matches no pattern gives nothing. Several platform roles rank operator > approver > viewer; a person
with no platform role but a tenant membership is a tenant admin (of the tenants that made them one, or
a read-only member). Nothing matched: no access at all.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from pksweb.choices import Role

PLATFORM_RANK = {Role.VIEWER.value: 1, Role.APPROVER.value: 2, Role.OPERATOR.value: 3}
MEMBER_ROLES = ("admin", "viewer")  # tenants.choices.MemberRole's values; the core does not import the app
TENANT_NAME = r"[a-z0-9](?:[-a-z0-9]{0,61}[a-z0-9])?"
PLACEHOLDER = "{tenant}"
MAX_GROUPS = 2000  # a token with more groups than this is refused rather than matched slowly


class MappingError(ValueError):
    """A rule that cannot be read; the message names it."""


@dataclass(frozen=True)
class Rule:
    pattern: str
    regex: re.Pattern[str]
    role: str = ""  # a platform role, or "" for a tenant membership
    tenant: str = ""  # a tenant's name, or "{tenant}" taken from the group
    member_role: str = ""


@dataclass(frozen=True)
class Grant:
    """What a person's groups give: a platform role (or ""), and tenant name -> member role."""

    role: str = ""
    memberships: dict[str, str] = field(default_factory=dict)
    matched: tuple[str, ...] = ()

    @property
    def any(self) -> bool:
        return bool(self.role or self.memberships)

    @property
    def user_role(self) -> str:
        """The ``User.role`` this grant stands for ("" when it gives nothing)."""
        if self.role:
            return self.role
        return Role.TENANT_ADMIN.value if self.memberships else ""


def _compile(pattern: str) -> re.Pattern[str]:
    if pattern.count(PLACEHOLDER) > 1:
        raise MappingError(f"group pattern {pattern!r} names {PLACEHOLDER} more than once")
    parts = []
    for piece in re.split(r"(\{tenant\}|\*)", pattern):
        if piece == PLACEHOLDER:
            parts.append(f"(?P<tenant>{TENANT_NAME})")
        elif piece == "*":
            parts.append(".*")
        else:
            parts.append(re.escape(piece))
    return re.compile("".join(parts))


def parse_rule(text: str) -> Rule:
    """One ``pattern = target`` rule; MappingError saying what is wrong otherwise."""
    pattern, sep, target = text.partition("=")
    pattern, target = pattern.strip(), target.strip()
    if not sep or not pattern or not target:
        raise MappingError(f"group rule {text.strip()!r} is not 'GROUP = ROLE' (e.g. 'platform-ops = operator')")
    if target in PLATFORM_RANK:
        return Rule(pattern, _compile(pattern), role=target)
    member_role, colon, tenant = target.partition(":")
    if not colon or member_role not in MEMBER_ROLES:
        raise MappingError(f"group rule {text.strip()!r}: the target must be operator, approver, viewer, "
                           "admin:TENANT or viewer:TENANT")
    if tenant == PLACEHOLDER:
        if PLACEHOLDER not in pattern:
            raise MappingError(f"group rule {text.strip()!r} uses {PLACEHOLDER} but its pattern does not name it")
    elif not re.fullmatch(TENANT_NAME, tenant):
        raise MappingError(f"group rule {text.strip()!r}: {tenant!r} is not a tenant name")
    return Rule(pattern, _compile(pattern), tenant=tenant, member_role=member_role)


def parse_rules(text: str) -> tuple[Rule, ...]:
    """Every rule of ``PKSWEB_OIDC_GROUP_MAP`` (blank lines and ``#`` comments skipped)."""
    rules = []
    for line in re.split(r"[;\n]", text):
        line = line.split("#", 1)[0].strip()
        if line:
            rules.append(parse_rule(line))
    return tuple(rules)


def resolve(groups: Iterable[object], rules: Iterable[Rule]) -> Grant:
    """The grant ``groups`` earn under ``rules``. Groups that are not strings are ignored; an admin
    membership wins over a viewer one for the same tenant; the highest platform role wins."""
    names = [g for g in groups if isinstance(g, str)][:MAX_GROUPS]
    role, memberships, matched = "", dict[str, str](), list[str]()
    for rule in rules:
        for group in names:
            found = rule.regex.fullmatch(group)
            if found is None:
                continue
            matched.append(group)
            if rule.role:
                if PLATFORM_RANK[rule.role] > PLATFORM_RANK.get(role, 0):
                    role = rule.role
                continue
            tenant = found.group("tenant") if rule.tenant == PLACEHOLDER else rule.tenant
            if memberships.get(tenant) != "admin":
                memberships[tenant] = rule.member_role
    return Grant(role=role, memberships=dict(sorted(memberships.items())), matched=tuple(sorted(set(matched))))
