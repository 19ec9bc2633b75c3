"""Websocket consumers: live event streams rendered as htmx fragments.

One socket per page. At connect a consumer rejects anonymous users, asks the
policy which groups this user may join for this page (refusing the connection
when the page's subject is not theirs), joins them, then replays from the database
every event after the id the page last saw (``?after=<id>``), so a page that
reconnects misses nothing. Live events arrive as ids, are loaded through the
user's scoped selector (so the policy is asked per event too) and sent as HTML
that htmx swaps out-of-band.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs

from asgiref.sync import async_to_sync
from channels.generic.websocket import WebsocketConsumer
from django.template.loader import render_to_string

from pksweb import policy, selectors
from pksweb.events import FLEET_GROUP, tenant_group
from pksweb.models import Event

CLOSE_UNAUTHENTICATED = 4401
CLOSE_FORBIDDEN = 4403
# Ids already sent on this socket, so an event that arrives both by replay and
# live (or through two groups) is sent once. Bounded: old ids cannot recur.
SENT_MEMORY = 2000


class EventStreamConsumer(WebsocketConsumer):
    """Base: subclasses say which groups a user may watch and which events belong."""

    tenant_id: int | None = None

    def watch_groups(self, user: Any) -> list[str] | None:
        """Groups to join for ``user``, or None to refuse the connection.

        The base refuses everyone: a stream must say what it shows and to whom.
        """
        return None

    def connect(self) -> None:
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            self.close(code=CLOSE_UNAUTHENTICATED)
            return
        groups = self.watch_groups(user)
        if groups is None:
            self.close(code=CLOSE_FORBIDDEN)
            return
        self.accept()
        self.joined: list[str] = []
        self.sent: dict[int, None] = {}
        self.cursor = 0
        for group in groups:
            async_to_sync(self.channel_layer.group_add)(group, self.channel_name)
            self.joined.append(group)
        # Join first, replay second: an event committed in between arrives both
        # ways and is sent once; none falls in the gap.
        self.replay(selectors.event_replay(user=user, after=self._after(), tenant_id=self.tenant_id))

    def disconnect(self, code: int) -> None:
        for group in getattr(self, "joined", []):
            async_to_sync(self.channel_layer.group_discard)(group, self.channel_name)

    def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        """Pages only listen; anything they send is ignored."""

    def event_message(self, message: dict[str, Any]) -> None:
        event = selectors.event_get_visible(user=self.scope["user"], event_id=message["id"])
        if event is None or (self.tenant_id is not None and event.tenant_id != self.tenant_id):
            return
        self._send_event(event)

    def replay(self, events: list[Event]) -> None:
        """Send what a reconnecting page missed (pages showing current state may coalesce)."""
        for event in events:
            self._send_event(event)

    def render(self, event: Event) -> str | list[str]:
        """The HTML this page swaps in for ``event`` ('' to send nothing but the cursor).

        A list is sent as one message each: the browser parses each message on its own,
        and table rows parse only where a table part comes first.
        """
        return render_to_string("pksweb/_event_oob.html", {"event": event})

    def _after(self) -> int:
        raw = parse_qs(self.scope.get("query_string", b"").decode()).get("after", ["0"])[0]
        return int(raw) if raw.isdigit() else 0

    def _send_event(self, event: Event) -> None:
        if event.pk in self.sent:
            return
        self.sent[event.pk] = None
        if len(self.sent) > SENT_MEMORY:
            self.sent.pop(next(iter(self.sent)))
        self.cursor = max(self.cursor, event.pk)
        rendered = self.render(event)
        messages = rendered if isinstance(rendered, list) else [rendered]
        cursor = f'<span id="event-cursor" data-last="{self.cursor}" hx-swap-oob="true" hidden></span>'
        for message in messages[:-1]:
            self.send(text_data=message)
        self.send(text_data=messages[-1] + cursor)


class ActivityConsumer(EventStreamConsumer):
    """Everything the user may see: the fleet for the platform team, their tenants otherwise."""

    def watch_groups(self, user: Any) -> list[str]:
        if policy.is_platform(user):
            return [FLEET_GROUP]
        return [tenant_group(tenant_id) for tenant_id in sorted(policy.tenant_ids(user))]
