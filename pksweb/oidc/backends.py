"""Password sign-in for local accounts, which ``PKSWEB_LOCAL_LOGIN=0`` narrows to the break-glass account."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.backends import ModelBackend
from django.http import HttpRequest

from pksweb.models import User
from pksweb.oidc.client import config
from pksweb.oidc.services import break_glass_record


class LocalPasswordBackend(ModelBackend):
    """Django's password check, with two rules of single sign-on: when local sign-in is off only the
    break-glass account (``PKSWEB_BREAK_GLASS_USER``) may use a password, and its every use is audited."""

    def authenticate(self, request: HttpRequest | None, username: str | None = None, password: str | None = None,
                     **kwargs: Any) -> User | None:
        oidc = config()
        glass = username is not None and username == oidc.break_glass_user
        if not oidc.local_login and not glass:
            return None
        user = super().authenticate(request, username=username, password=password, **kwargs)
        if user is not None and glass:
            address = request.META.get("REMOTE_ADDR", "") if request is not None else ""
            break_glass_record(user=user, address=str(address))
        return user
