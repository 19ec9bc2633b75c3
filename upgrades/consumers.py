"""The live rollout page (see pksweb.consumers for the stream mechanics)."""

from __future__ import annotations

from django.template.loader import render_to_string

from pksweb import policy
from pksweb.consumers import EventStreamConsumer
from pksweb.events import subject_group
from pksweb.models import Event
from pksweb.types import AnyUser
from upgrades import selectors
from upgrades.live import rollout_context
from upgrades.models import Rollout, RolloutStep


class RolloutConsumer(EventStreamConsumer):
    """One rollout: the header (state, current step and its log) and the changed node's row follow its events."""

    rollout_id: int = 0

    def watch_groups(self, user: AnyUser) -> list[str] | None:
        self.rollout_id = int(self.scope["url_route"]["kwargs"]["rollout_id"])
        if not policy.is_platform(user) or selectors.rollout_get(user=user, pk=self.rollout_id) is None:
            return None
        return [subject_group("rollout", self.rollout_id)]

    def page_key(self) -> str:
        return str(self.rollout_id)

    def replay_select(self, events: list[Event]) -> list[Event]:
        return events[-1:]  # the page shows current state: the newest event renders all of it (a replay is this rollout's)

    def _step_row(self, event: Event, steps: list[RolloutStep]) -> list[str]:
        step_id = (event.payload or {}).get("step")
        step = next((s for s in steps if s.pk == step_id), None)
        return [render_to_string("upgrades/_step_row.html", {"step": step, "oob": True})] if step is not None else []

    def _rollout(self, event: Event) -> Rollout | None:
        """This page's rollout, if ``event`` is about it and the user may still see it."""
        if event.subject_type != "rollout" or event.subject_id != str(self.rollout_id):
            return None
        return selectors.rollout_get(user=self.scope["user"], pk=self.rollout_id)

    def render(self, event: Event) -> str | list[str]:
        rollout = self._rollout(event)
        if rollout is None:
            return ""
        context = {**rollout_context(self.scope["user"], rollout), "oob": True}
        return self._step_row(event, context["steps"]) + [render_to_string("upgrades/rollout.html#header", context)
                                                          + render_to_string("pksweb/_event_oob.html", {"event": event})]

    def render_superseded(self, event: Event) -> str | list[str]:
        """Its node's row and its line; the newest event redoes the header."""
        rollout = self._rollout(event)
        if rollout is None:
            return ""
        return self._step_row(event, list(selectors.rollout_steps(rollout=rollout))) + \
            [render_to_string("pksweb/_event_oob.html", {"event": event})]
