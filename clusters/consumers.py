"""Live fleet and cluster pages (see pksweb.consumers for the stream mechanics)."""

from __future__ import annotations

from django.template.loader import render_to_string

from clusters import live, selectors
from pksweb import policy
from pksweb.consumers import EventStreamConsumer, Missed
from pksweb.events import FLEET_GROUP, subject_group
from pksweb.models import Event
from pksweb.types import AnyUser


class FleetConsumer(EventStreamConsumer):
    """The fleet page: a cluster event re-renders that cluster's row and the counts.

    For the platform team only. A reconnect coalesces: each cluster that changed is
    rendered once, in its current state, however many events it missed; so do live
    bursts (see EventStreamConsumer.coalesce_seconds).
    """

    def watch_groups(self, user: AnyUser) -> list[str] | None:
        return [FLEET_GROUP] if policy.is_platform(user) else None

    def render(self, event: Event) -> str | list[str]:
        return self._row(event, new=event.kind == "cluster.registered")

    def render_replayed(self, event: Event, missed: Missed) -> str | list[str]:
        """A cluster registered while the page was away is a new row, whatever its latest event."""
        return self._row(event, new=missed.happened("cluster", event.subject_id, "cluster.registered"))

    def _row(self, event: Event, new: bool) -> str | list[str]:
        if event.subject_type != "cluster" or not (event.subject_id.isascii() and event.subject_id.isdigit()):
            return ""
        return live.fleet_fragments(int(event.subject_id), self.scope["user"], new=new)

    def render_superseded(self, event: Event) -> str | list[str]:
        return ""  # the newer event re-renders the same row in its current state

    def replay_select(self, events: list[Event]) -> list[Event]:
        latest: dict[str, Event] = {}
        for event in events:
            if event.subject_type == "cluster":
                latest[event.subject_id] = event
        return list(latest.values())


class ClusterConsumer(EventStreamConsumer):
    """One cluster's page: status card, nodes and operations follow its events."""

    cluster_id: int = 0

    def watch_groups(self, user: AnyUser) -> list[str] | None:
        self.cluster_id = int(self.scope["url_route"]["kwargs"]["cluster_id"])
        if selectors.cluster_get(user=user, pk=self.cluster_id) is None:
            return None
        return [subject_group("cluster", self.cluster_id)]

    def page_key(self) -> str:
        return str(self.cluster_id)

    def render_superseded(self, event: Event) -> str:
        return render_to_string("pksweb/_event_oob.html", {"event": event})  # its line; the newer event redoes the sections

    def render(self, event: Event) -> str:
        if event.subject_type != "cluster" or event.subject_id != str(self.cluster_id):
            return ""
        return live.cluster_fragments(event, self.cluster_id, self.scope["user"])
