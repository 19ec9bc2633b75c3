"""DRF permissions that ask the one policy module."""

from __future__ import annotations

from django.core.exceptions import ImproperlyConfigured
from django.db.models import Model
from rest_framework.permissions import BasePermission
from rest_framework.request import Request
from rest_framework.views import APIView

from pksweb import policy

# What each write asks the policy of a view's model: a view that takes every write sets ``policy_actions = WRITES``.
WRITES = {"POST": "create", "PUT": "update", "PATCH": "update", "DELETE": "delete"}


class PolicyPermission(BasePermission):
    """Signed in, and for writes ``policy.can(user, view.policy_actions[method], view.policy_model)``.

    Reads are scoped by the view's selector; objects are checked with ``view``.
    """

    message = "You do not have permission to do this."

    def has_permission(self, request: Request, view: APIView) -> bool:
        if not (request.user and request.user.is_authenticated):
            return False
        actions: dict[str, str] = getattr(view, "policy_actions", {})
        action = actions.get(request.method or "")
        if action is None:
            return True
        model: type[Model] | None = getattr(view, "policy_model", None)
        if model is None:
            raise ImproperlyConfigured(f"{type(view).__name__} has policy_actions but no policy_model to ask about")
        return policy.can(request.user, action, model)

    def has_object_permission(self, request: Request, view: APIView, obj: Model) -> bool:
        return policy.can(request.user, "view", obj)
