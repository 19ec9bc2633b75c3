"""``manage.py createuser NAME --role ROLE [--tenant T ...] [--password-stdin]``."""

from __future__ import annotations

import getpass
import sys
from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from pksweb import services
from tenants.selectors import tenant_get_by_name
from tenants.services import user_create_in_tenants


def _messages(exc: ValidationError) -> str:
    if hasattr(exc, "error_dict"):
        return "; ".join(f"{field}: {' '.join(errs)}" for field, errs in exc.message_dict.items())
    return " ".join(exc.messages)


class Command(BaseCommand):
    help = "Create a user with a role (operator, approver, tenant-admin, viewer)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username")
        parser.add_argument("--role", required=True, help=f"one of: {', '.join(services.ROLE_NAMES)}")
        parser.add_argument("--tenant", action="append", default=[], metavar="T",
                            help="tenant name (tenant admins; repeat for several)")
        parser.add_argument("--email", default="")
        parser.add_argument("--password-stdin", action="store_true",
                            help="read the password from standard input instead of prompting")
        parser.add_argument("--no-password", action="store_true",
                            help="no password sign-in (API token only)")

    def handle(self, *args: Any, **opts: Any) -> None:
        try:
            role = services.role_parse(opts["role"])
        except ValidationError as exc:
            raise CommandError(_messages(exc)) from None
        tenants = []
        for name in opts["tenant"]:
            tenant = tenant_get_by_name(name=name)
            if tenant is None:
                raise CommandError(f"tenant: no tenant is called {name!r}.")
            tenants.append(tenant)
        password = None if opts["no_password"] else self._password(opts["password_stdin"])
        try:
            user = user_create_in_tenants(
                username=opts["username"], role=role, password=password, tenants=tenants, email=opts["email"]
            )
        except ValidationError as exc:
            raise CommandError(_messages(exc)) from None
        self.stdout.write(f"Created {user.username} ({role.label.lower()}).")

    def _password(self, from_stdin: bool) -> str:
        if from_stdin:
            password = sys.stdin.readline().rstrip("\r\n")
        else:
            password = getpass.getpass("Password: ")
            if password != getpass.getpass("Password (again): "):
                raise CommandError("The two passwords differ; nothing was created.")
        if not password:
            raise CommandError("The password is empty; nothing was created.")
        return password
