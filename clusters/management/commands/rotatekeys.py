"""``manage.py rotatekeys``: re-encrypt every stored credential with the newest key.

Put the new Fernet key first in PKSWEB_CREDENTIAL_KEYS (keep the old ones after
it), run this, then remove the old keys.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from clusters.services import credential_keys_rotate
from notifications.services import channel_keys_rotate


class Command(BaseCommand):
    help = "Re-encrypt every cluster credential and notification channel URL with the first key in PKSWEB_CREDENTIAL_KEYS."

    def handle(self, *args: Any, **opts: Any) -> None:
        count = credential_keys_rotate()
        self.stdout.write(f"re-encrypted {count} credential(s) with the newest key")
        channels = channel_keys_rotate()  # notification channel URLs are sealed with the same keys
        self.stdout.write(f"re-encrypted {channels} notification channel URL(s) with the newest key")
