"""``manage.py apitoken USER``: print the user's API token (made on first use)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from pksweb import services
from pksweb.models import User


class Command(BaseCommand):
    help = "Print USER's API token, for `Authorization: Token <key>`."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username")

    def handle(self, *args: Any, username: str, **opts: Any) -> None:
        user = User.objects.filter(username=username).first()
        if user is None:
            raise CommandError(f"no user is called {username!r}; create one with `manage.py createuser`.")
        if not user.is_active:
            raise CommandError(f"{username} is deactivated; a token would not work.")
        self.stdout.write(services.api_token_get_or_create(user=user))
