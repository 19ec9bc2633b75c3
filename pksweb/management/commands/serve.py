"""``manage.py serve``: the dashboard on an ASGI server (what ``make run`` runs).

In embedded mode it also starts the Celery worker and beat inside the process.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

import uvicorn
from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser

if TYPE_CHECKING:
    from sandbox import Sandbox


class Command(BaseCommand):
    help = "Serve pksweb over HTTP and websockets (embedded: with Celery worker and beat inside)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--host", default=os.environ.get("HOST") or "127.0.0.1")
        parser.add_argument("--port", type=int, default=int(os.environ.get("PORT") or 8000))

    def handle(self, *args: Any, host: str, port: int, **options: Any) -> None:
        if settings.PKSWEB_EMBEDDED_CELERY:
            from pksweb.embedded import start_embedded_celery

            start_embedded_celery()
        if settings.PKSWEB_SANDBOX_CLUSTERS:
            self._start_sandbox(settings.PKSWEB_SANDBOX_CLUSTERS, settings.PKSWEB_SANDBOX_PORT)
        shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
        self.stdout.write(self.style.SUCCESS(f"pksweb is serving on http://{shown}:{port}/ (Ctrl-C stops it)"))
        uvicorn.run("pksweb.asgi:application", host=host, port=port, lifespan="off", log_level="info")

    def _start_sandbox(self, count: int, port: int) -> Sandbox | None:
        """A demo fleet of simulated clusters in this process, registered so the fleet page is live.

        A taken ``port`` (PKSWEB_SANDBOX_PORT) moves the fleet to a free port, saying so; if even that fails the
        dashboard serves without it. The server never stops for its demo fleet.
        """
        from clusters.services import sandbox_fleet_register
        from clusters.tasks import health_sweep
        from sandbox import Sandbox

        sandbox = Sandbox("127.0.0.1", port, seed=1)
        versions = ["1.30.4", "1.30.4", "1.31.2"]
        for i in range(1, count + 1):
            sandbox.add_cluster(f"sandbox-{i}", version=versions[(i - 1) % len(versions)], nodes=5, pods_per_node=3)
        try:
            sandbox.start()
        except OSError as error:
            self.stdout.write(self.style.WARNING(
                f"Port {port} for the sandbox fleet is not free ({error.strerror or error}); serving the fleet on another port "
                "instead (PKSWEB_SANDBOX_PORT chooses one)."))
            sandbox.port = 0
            try:
                sandbox.start()
            except OSError as again:
                self.stdout.write(self.style.WARNING(f"The sandbox fleet cannot listen ({again.strerror or again}); serving "
                                                     "without it."))
                return None
        sandbox.write_kubeconfigs(settings.DATA_DIR / "sandbox")
        clusters = sandbox_fleet_register(kubeconfigs={name: sandbox.kubeconfig(name) for name in sandbox.clusters})
        from pksweb.seed import demo_attach_clusters

        demo_attach_clusters(clusters)
        health_sweep.delay()
        self.stdout.write(f"sandbox fleet: {count} clusters on {sandbox.url}/c/<name> "
                          f"(kubeconfigs in {settings.DATA_DIR / 'sandbox'})")
        return sandbox
