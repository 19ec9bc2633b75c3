"""DRF permissions that ask the one policy module."""

from __future__ import annotations

from typing import Any

from rest_framework.permissions import BasePermission
from rest_framework.request import Request

from pksweb import policy


class PolicyPermission(BasePermission):
    """Signed in, and for writes ``policy.can(user, view.policy_action, view.policy_model)``.

    Reads are scoped by the view's selector; objects are checked with ``view``.
    """

    message = "You do not have permission to do this."

    def has_permission(self, request: Request, view: Any) -> bool:
        if not (request.user and request.user.is_authenticated):
            return False
        action = getattr(view, "policy_actions", {}).get(request.method)
        if action is None:
            return True
        return policy.can(request.user, action, view.policy_model)

    def has_object_permission(self, request: Request, view: Any, obj: Any) -> bool:
        return policy.can(request.user, "view", obj)
