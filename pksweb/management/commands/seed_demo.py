"""``manage.py seed_demo``: demo tenants and users (idempotent), then print the logins."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from pksweb.seed import DEMO_USERS, demo_seed


class Command(BaseCommand):
    help = "Create the demo tenants and one user per role, if missing; print the demo logins."

    def handle(self, *args: Any, **opts: Any) -> None:
        created = demo_seed()
        self.stdout.write("Demo data: " + (", ".join(created) if created else "already there"))
        self.stdout.write("Demo logins (user / password / role):")
        for username, password, role, tenants in DEMO_USERS:
            scope = f" of {', '.join(tenants)}" if tenants else ""
            self.stdout.write(f"  {username:<11} {password:<16} {role.label.lower()}{scope}")
