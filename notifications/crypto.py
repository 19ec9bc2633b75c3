"""Channel URLs sealed at rest with the cluster credentials' keys (PKSWEB_CREDENTIAL_KEYS), and what is shown
instead of them: a URL carries webhook tokens and passwords, so pages and the API show only its scheme and host."""

from __future__ import annotations

from urllib.parse import urlsplit

from clusters.crypto import reseal, seal, unseal
from notifications.models import Channel


def channel_seal(url: str) -> str:
    return seal({"url": url})


def channel_url(channel: Channel) -> str:
    return str(unseal(channel.sealed_url).get("url", ""))


def channel_reseal(channel: Channel) -> None:
    channel.sealed_url = reseal(channel.sealed_url)


def url_hint(url: str) -> str:
    """``scheme://host/…``: enough to tell channels apart, nothing that lets someone post to it."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
    except ValueError:
        return "(unreadable)"
    return f"{parts.scheme}://{host}/…" if host else f"{parts.scheme}://…"
