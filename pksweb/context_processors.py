"""Navigation by role, computed once per page from the policy."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest
from django.urls import reverse

from pksweb import policy


def navigation(request: HttpRequest) -> dict[str, Any]:
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {"nav": []}
    nav = [("Fleet", reverse("clusters:fleet")), ("Upgrades", reverse("upgrades:list"))] if policy.is_platform(user) else []
    nav.append(("Activity", reverse("activity")))
    nav.append(("Tenants" if policy.is_platform(user) else "My tenants", reverse("tenants:list")))
    nav.append(("Notifications", reverse("notifications:index" if policy.is_operator(user) else "notifications:profile")))
    nav.append(("API", reverse("api:docs")))
    return {"nav": nav}
