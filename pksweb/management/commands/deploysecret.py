"""``manage.py deploysecret``: print the Namespace and the Secret ``pksweb-secrets`` for the Kubernetes manifests.

The secret is never in git (deploy/ holds none): this makes one with fresh keys, for
``| kubectl create -f -``. ``create`` rather than ``apply`` on purpose: a second run must not replace the
keys, since the credential keys decrypt the stored cluster credentials and the trial database keeps the
password it was initialised with; ``create`` refuses with AlreadyExists instead.

- ``--trial``: the URLs of the trial overlay's PostgreSQL and Redis (Services ``postgres`` and ``redis``
  in the namespace), with generated passwords the two StatefulSets read from the same Secret.
- otherwise ``--database-url`` and ``--redis-url`` name the production services.

The Namespace comes first, labelled as deploy/base/namespace.yaml labels it (a test keeps them equal),
so the Secret can be created before ``kubectl apply -k`` runs.
"""

from __future__ import annotations

import secrets
from typing import Any
from urllib.parse import urlsplit

import yaml
from cryptography.fernet import Fernet
from django.core.management.base import BaseCommand, CommandError, CommandParser

SECRET_NAME = "pksweb-secrets"
DEFAULT_NAMESPACE = "pksweb"
# The namespace enforces Pod Security "restricted" (deploy/base/namespace.yaml says why).
NAMESPACE_LABELS = {
    "app.kubernetes.io/part-of": "pksweb",
    **{f"pod-security.kubernetes.io/{mode}": "restricted" for mode in ("enforce", "audit", "warn")},
    **{f"pod-security.kubernetes.io/{mode}-version": "latest" for mode in ("enforce", "audit", "warn")},
}
TRIAL_DATABASE = "postgresql://pksweb:{password}@postgres:5432/pksweb"
TRIAL_REDIS = "redis://:{password}@redis:6379/0"
SCHEMES = {"--database-url": ("postgres", "postgresql"), "--redis-url": ("redis", "rediss")}


def _checked_url(option: str, url: str) -> str:
    """The URL, or a CommandError saying what a valid one looks like."""
    parts = urlsplit(url)
    if parts.scheme not in SCHEMES[option] or not parts.hostname:
        example = "postgresql://USER:PASSWORD@HOST:5432/pksweb" if option == "--database-url" else "redis://:PASSWORD@HOST:6379/0"
        raise CommandError(f"{option} {url!r} is not a {SCHEMES[option][0]} URL with a host, e.g. {example}.")
    return url


def secret_values(*, trial: bool, database_url: str = "", redis_url: str = "") -> dict[str, str]:
    """Fresh keys and the services' URLs: what the Secret holds."""
    values = {
        "PKSWEB_SECRET_KEY": secrets.token_urlsafe(50),
        "PKSWEB_CREDENTIAL_KEYS": Fernet.generate_key().decode(),
        # /metrics answers only with this bearer token (the Ingress forwards every path).
        "PKSWEB_METRICS_TOKEN": secrets.token_urlsafe(32),
    }
    if trial:
        postgres_password, redis_password = secrets.token_hex(24), secrets.token_hex(24)
        values |= {
            "DATABASE_URL": TRIAL_DATABASE.format(password=postgres_password),
            "REDIS_URL": TRIAL_REDIS.format(password=redis_password),
            "POSTGRES_PASSWORD": postgres_password,
            "REDIS_PASSWORD": redis_password,
        }
    else:
        values |= {"DATABASE_URL": _checked_url("--database-url", database_url),
                   "REDIS_URL": _checked_url("--redis-url", redis_url)}
    return values


def manifests(*, namespace: str, values: dict[str, str], with_namespace: bool = True) -> list[dict[str, Any]]:
    """The Namespace (unless left out) and the Secret, as Kubernetes objects."""
    labels = {"app.kubernetes.io/name": "pksweb", "app.kubernetes.io/part-of": "pksweb"}
    secret = {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
              "metadata": {"name": SECRET_NAME, "namespace": namespace, "labels": labels},
              "stringData": values}
    ns = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace, "labels": dict(NAMESPACE_LABELS)}}
    return [ns, secret] if with_namespace else [secret]


class Command(BaseCommand):
    help = ("Print the Namespace and a Secret pksweb-secrets with fresh keys for deploy/ "
            "(`... | kubectl create -f -`): --trial for the trial overlay, or --database-url and --redis-url.")
    requires_migrations_checks = False
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--trial", action="store_true",
                            help="URLs and passwords for the trial overlay's PostgreSQL and Redis")
        parser.add_argument("--database-url", default="", help="production: postgresql://USER:PASSWORD@HOST:5432/DB")
        parser.add_argument("--redis-url", default="", help="production: redis://:PASSWORD@HOST:6379/0")
        parser.add_argument("--namespace", default=DEFAULT_NAMESPACE,
                            help=f"the namespace of the overlay ({DEFAULT_NAMESPACE}, as deploy/base sets it)")
        parser.add_argument("--without-namespace", action="store_true",
                            help="print the Secret only (the Namespace exists already)")

    def handle(self, *args: Any, trial: bool, database_url: str, redis_url: str, namespace: str,
               without_namespace: bool, **opts: Any) -> None:
        if trial and (database_url or redis_url):
            raise CommandError("--trial makes its own URLs for the trial's PostgreSQL and Redis; "
                               "give --database-url and --redis-url without --trial.")
        if not trial and not (database_url and redis_url):
            raise CommandError("give --database-url and --redis-url (production), or --trial.")
        values = secret_values(trial=trial, database_url=database_url, redis_url=redis_url)
        objects = manifests(namespace=namespace, values=values, with_namespace=not without_namespace)
        self.stdout.write(yaml.safe_dump_all(objects, sort_keys=False, explicit_start=True), ending="")
