"""What the rollout page shows, built once for the page and for its live updates."""

from __future__ import annotations

from typing import Any

from pksweb import policy
from pksweb import selectors as event_selectors
from pksweb.types import AnyUser
from upgrades import selectors
from upgrades.models import Rollout


def rollout_context(user: AnyUser, rollout: Rollout) -> dict[str, Any]:
    steps = list(selectors.rollout_steps(rollout=rollout))
    events = list(event_selectors.event_list(user=user).filter(subject_type="rollout", subject_id=str(rollout.pk))[:30])
    in_flight = [s for s in steps if s.phase not in ("done", "pending", "failed")]
    done = sum(1 for s in steps if s.phase == "done")
    return {"rollout": rollout, "plan": rollout.plan, "steps": steps, "in_flight": in_flight, "done": done, "events": events,
            "cursor": events[0].pk if events else 0, "ws_path": f"/ws/rollouts/{rollout.pk}/",
            "can_operate": policy.can(user, "operate", rollout)}
