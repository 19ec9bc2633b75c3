"""Verify the audit trail's hash chain (exit status 1 when it is broken)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from pksweb.audit import audit_seal, audit_verify


class Command(BaseCommand):
    help = "Check that no sealed event was edited, removed or inserted (seals settled events first)."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--no-seal", action="store_true", help="only verify; do not seal settled events first")

    def handle(self, *args: Any, **options: Any) -> None:
        if not options["no_seal"]:
            audit_seal()
        result = audit_verify()
        for problem in result.problems:
            self.stderr.write(problem)
        if not result.ok:
            raise CommandError(f"The audit chain is broken ({len(result.problems)} problem(s)) over {result.sealed} sealed events.")
        self.stdout.write(f"The audit chain holds: {result.sealed} events sealed, {result.unsealed} too recent to seal yet.")
