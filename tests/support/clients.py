"""REST clients in the test process, signed in by API token."""

from __future__ import annotations

from rest_framework.test import APIClient

from pksweb import services as core_services
from pksweb.models import User


def api_for(user: User) -> APIClient:
    """A DRF test client carrying ``user``'s API token (as a script would)."""
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {core_services.api_token_get_or_create(user=user)}")
    return client
