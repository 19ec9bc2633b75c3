"""The rollouts' figures for ``/metrics``, read from the database at each scrape (``pksweb.metrics.collect_from``).

How many rollouts are in each state, and for each rollout not finished (running, paused or halted: the ones
someone watches) its nodes done and in all. Two queries, whatever the number of rollouts.
"""

from __future__ import annotations

from collections.abc import Iterator

from django.db.models import Count, Q
from prometheus_client.core import GaugeMetricFamily, Metric

from upgrades.choices import ACTIVE_ROLLOUT, RolloutState, StepPhase
from upgrades.models import Rollout, RolloutStep

WATCHED = (*ACTIVE_ROLLOUT, RolloutState.HALTED)


def rollout_figures() -> Iterator[Metric]:
    by_state = GaugeMetricFamily("pksweb_rollouts", "Rollouts in each state.", labels=["state"])
    counts = dict(Rollout.objects.order_by().values_list("state").annotate(n=Count("id")).values_list("state", "n"))
    for state in RolloutState:
        by_state.add_metric([state.value], counts.get(state.value, 0))
    done = GaugeMetricFamily("pksweb_rollout_nodes_done", "Nodes a rollout not yet finished has upgraded.",
                             labels=["rollout", "plan", "state"])
    total = GaugeMetricFamily("pksweb_rollout_nodes", "Nodes a rollout not yet finished upgrades in all.",
                              labels=["rollout", "plan", "state"])
    rows = (RolloutStep.objects.filter(rollout__state__in=WATCHED).order_by("rollout_id")
            .values("rollout_id", "rollout__plan__name", "rollout__state")
            .annotate(nodes=Count("id"), finished=Count("id", filter=Q(phase=StepPhase.DONE))))
    for row in rows:
        labels = [str(row["rollout_id"]), row["rollout__plan__name"], row["rollout__state"]]
        done.add_metric(labels, row["finished"])
        total.add_metric(labels, row["nodes"])
    yield from (by_state, done, total)
