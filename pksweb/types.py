"""Names for the types every app passes around, written once."""

from __future__ import annotations

from typing import TYPE_CHECKING, TypeAlias

from django.http import HttpRequest
from django_htmx.middleware import HtmxDetails

if TYPE_CHECKING:
    from django.contrib.auth.models import AnonymousUser

    from pksweb.models import User

# Whoever a request carries: a signed-in user, or nobody.
AnyUser: TypeAlias = "User | AnonymousUser"
# Who made a change: a person, or ``None`` for pksweb itself (commands, seeds, tasks).
Actor: TypeAlias = "User | None"


class SignedInRequest(HttpRequest):
    """What a page view behind ``login_required`` is handed: a signed-in user, and what django-htmx's
    middleware tells of the request (``htmx``). For annotations only: Django makes the requests."""

    user: User  # narrower than HttpRequest's: login_required lets only a signed-in user through
    htmx: HtmxDetails
