"""``manage.py serve``: the dashboard on an ASGI server (what ``make run`` runs).

In embedded mode it also starts the Celery worker and beat inside the process.
"""

from __future__ import annotations

import os
from typing import Any

import uvicorn
from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser


class Command(BaseCommand):
    help = "Serve pksweb over HTTP and websockets (embedded: with Celery worker and beat inside)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--host", default=os.environ.get("HOST") or "127.0.0.1")
        parser.add_argument("--port", type=int, default=int(os.environ.get("PORT") or 8000))

    def handle(self, *args: Any, host: str, port: int, **options: Any) -> None:
        if settings.PKSWEB_EMBEDDED_CELERY:
            from pksweb.embedded import start_embedded_celery

            start_embedded_celery()
        shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
        self.stdout.write(self.style.SUCCESS(f"pksweb is serving on http://{shown}:{port}/ (Ctrl-C stops it)"))
        uvicorn.run("pksweb.asgi:application", host=host, port=port, lifespan="off", log_level="info")
