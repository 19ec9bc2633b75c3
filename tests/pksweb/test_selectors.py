"""What a reconnecting page is replayed: its own groups' newest events, in few queries along an index."""

from __future__ import annotations

import pytest
from django.db import connection

from pksweb import selectors
from pksweb.models import Event

pytestmark = pytest.mark.django_db


def events(count: int, **fields) -> list[Event]:
    return Event.objects.bulk_create([Event(kind="cluster.status_changed", message=f"#{i}", **fields) for i in range(count)])


def ids(replay: selectors.Replay) -> list[int]:
    return [event.pk for event in replay.events]


def test_each_group_is_replayed_its_own_events(operator, tenant, other_tenant):
    cluster_7 = events(3, subject_type="cluster", subject_id="7")
    events(3, subject_type="cluster", subject_id="8")
    rollout_7 = events(2, subject_type="rollout", subject_id="7")
    acme = events(2, tenant=tenant)
    globex = events(2, tenant=other_tenant)
    everything = sorted(e.pk for e in Event.objects.all())

    def replayed(*groups: str) -> list[int]:
        return ids(selectors.event_replay(user=operator, groups=groups, after=0))

    assert replayed("cluster.7") == [e.pk for e in cluster_7]
    assert replayed("rollout.7") == [e.pk for e in rollout_7]
    assert replayed(f"tenant.{tenant.pk}") == [e.pk for e in acme]
    assert replayed(f"tenant.{tenant.pk}", f"tenant.{other_tenant.pk}") == sorted(e.pk for e in acme + globex)
    assert replayed("fleet") == replayed("fleet", "cluster.7") == everything
    assert replayed("cluster.7", "rollout.7") == sorted(e.pk for e in cluster_7 + rollout_7)


def test_the_newest_are_replayed_oldest_first_and_a_longer_gap_is_called_incomplete(operator):
    noise = events(50, subject_type="cluster", subject_id="8")
    mine = events(12, subject_type="cluster", subject_id="7")
    after = noise[0].pk
    complete = selectors.event_replay(user=operator, groups=["cluster.7"], after=after, limit=12)
    assert complete.complete and ids(complete) == [e.pk for e in mine]
    partial = selectors.event_replay(user=operator, groups=["cluster.7"], after=after, limit=5)
    assert not partial.complete and ids(partial) == [e.pk for e in mine[-5:]]
    assert selectors.event_replay(user=operator, groups=["cluster.7"], after=mine[-1].pk).events == []


def test_the_policy_scopes_every_group(tenant_admin, tenant, other_tenant):
    events(2, tenant=other_tenant, subject_type="cluster", subject_id="7")
    fleet_level = events(2, subject_type="cluster", subject_id="7")
    acme = events(2, tenant=tenant, subject_type="cluster", subject_id="7")
    for groups in (["cluster.7"], [f"tenant.{tenant.pk}", f"tenant.{other_tenant.pk}"], ["fleet"]):
        assert ids(selectors.event_replay(user=tenant_admin, groups=groups, after=0)) == [e.pk for e in acme]
    assert fleet_level  # visible to the platform team only


@pytest.mark.parametrize(("groups", "queries"), [
    (["fleet"], 1), (["cluster.7"], 1), (["rollout.3"], 1), (["tenant.1"], 1), (["tenant.1", "tenant.2"], 2),
    (["fleet", "tenant.1", "cluster.7"], 1),
])
def test_one_query_per_group_however_many_events(operator, django_assert_num_queries, groups, queries):
    events(30, subject_type="cluster", subject_id="7")
    events(30, subject_type="rollout", subject_id="3")
    with django_assert_num_queries(queries):
        replay = selectors.event_replay(user=operator, groups=groups, after=0, limit=20)
        [event.tenant for event in replay.events]  # the tenant comes with the event


@pytest.mark.parametrize(("groups", "index"), [
    (["cluster.7"], "event_subject_id"),
    (["rollout.3"], "event_subject_id"),
    (["tenant.1"], "event_tenant_id"),
    (["fleet"], "INTEGER PRIMARY KEY"),
])
def test_every_replay_query_walks_an_index_newest_first(operator, groups, index):
    """SQLite's plan: a search of the index, no table scan, no sort (the order is the index's)."""
    from django.test.utils import CaptureQueriesContext

    events(30, subject_type="cluster", subject_id="7")
    with CaptureQueriesContext(connection) as captured:
        selectors.event_replay(user=operator, groups=groups, after=5)
    (query,) = captured.captured_queries
    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN QUERY PLAN " + query["sql"])
        plan = " / ".join(row[-1] for row in cursor.fetchall())
    assert f"SEARCH pksweb_event USING {index}" in plan or f"SEARCH pksweb_event USING INDEX {index}" in plan, plan
    assert "SCAN pksweb_event" not in plan and "TEMP B-TREE" not in plan, plan


def test_a_group_that_names_no_events_is_a_mistake(operator):
    with pytest.raises(ValueError, match="not a channel group"):
        selectors.event_replay(user=operator, groups=["fleets"], after=0)
