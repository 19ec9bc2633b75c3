"""``manage.py importclusters FILE [--context C ...] [--all] [--name NAME]``: register clusters from a kubeconfig."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from clusters.kube import KubeConfigError, kubeconfig_contexts, parse_kubeconfig
from clusters.services import cluster_register


def cluster_name(context: str) -> str:
    """A DNS-1123 label from a context name (``arn:aws:eks:…/prod`` → ``prod``)."""
    name = re.sub(r"[^a-z0-9-]+", "-", context.rsplit("/", 1)[-1].lower()).strip("-")
    return name[:63].rstrip("-") or "cluster"


class Command(BaseCommand):
    help = "Register the clusters of a kubeconfig file (connects to each first; saves nothing that fails)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file")
        parser.add_argument("--context", action="append", default=[], help="context to import (repeat; default: the current one)")
        parser.add_argument("--all", action="store_true", help="import every context")
        parser.add_argument("--name", help="cluster name in pksweb (one context only; default: from the context)")

    def handle(self, *args: Any, **opts: Any) -> None:
        path = Path(opts["file"])
        try:
            text = path.read_bytes()
        except FileNotFoundError:
            raise CommandError(f"{path}: no such file.") from None
        except OSError as exc:
            raise CommandError(f"{path}: {exc.strerror}.") from None
        try:
            names, current = kubeconfig_contexts(text)
        except KubeConfigError as exc:
            raise CommandError(exc.message) from None
        wanted = names if opts["all"] else opts["context"] or [current or (names[0] if len(names) == 1 else "")]
        if wanted == [""]:
            raise CommandError(f"The kubeconfig has {len(names)} contexts and no current-context: pass --context or --all "
                               f"({', '.join(names)}).")
        if opts["name"] and len(wanted) > 1:
            raise CommandError("--name works with one context only.")
        failures = []
        for context in wanted:
            name = opts["name"] or cluster_name(context)
            try:
                chosen, credential = parse_kubeconfig(text, context)
                cluster = cluster_register(name=name, credential=credential, context=chosen, created_by=None)
            except KubeConfigError as exc:
                failures.append(f"{context}: {exc.message}")
            except ValidationError as exc:
                failures.append(f"{context}: {' '.join(exc.messages)}")
            else:
                self.stdout.write(f"imported {cluster.name} ({credential.server}, Kubernetes {cluster.version})")
        if failures:
            raise CommandError("not imported:\n  " + "\n  ".join(failures))
