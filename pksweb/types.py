"""Names for the types every app passes around, written once."""

from __future__ import annotations

from typing import TYPE_CHECKING, TypeAlias

if TYPE_CHECKING:
    from django.contrib.auth.models import AnonymousUser

    from pksweb.models import User

# Whoever a request carries: a signed-in user, or nobody.
AnyUser: TypeAlias = "User | AnonymousUser"
# Who made a change: a person, or ``None`` for pksweb itself (commands, seeds, tasks).
Actor: TypeAlias = "User | None"
