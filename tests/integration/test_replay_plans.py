"""On PostgreSQL, a reconnecting page's replay walks an index newest first and stops after a replay's worth
of rows, whatever the table holds (SQLite's plans are checked in tests/pksweb/test_selectors.py)."""

from __future__ import annotations

import json

import pytest

from tests.support.stack import Stack

pytestmark = pytest.mark.integration

EXPLAIN = r'''
import json, random
from django.db import connection
from django.test.utils import CaptureQueriesContext
from pksweb import selectors
from pksweb.models import Event, User
from tenants.models import Tenant, TenantMembership

tenants = [Tenant.objects.create(name=f"plan-{i}", display_name=f"Plan {i}") for i in range(20)]
pick = random.Random(7)
Event.objects.bulk_create([
    Event(kind="k", message="m", subject_type=pick.choice(["cluster", "rollout", "namespace"]),
          subject_id=str(pick.randrange(300)), tenant=pick.choice([None, None, *tenants]))
    for _ in range(60_000)], batch_size=5_000)
operator = User.objects.create(username="plan-op", role="operator")
admin = User.objects.create(username="plan-admin", role="tenant_admin")
TenantMembership.objects.create(tenant=tenants[0], user=admin, role="admin")
with connection.cursor() as cursor:
    cursor.execute("ANALYZE")
last = Event.objects.order_by("-id").values_list("id", flat=True).first()
plans = {}
for name, user, groups, after in [
    ("fleet", operator, ["fleet"], last - 2_000), ("fleet from the start", operator, ["fleet"], 0),
    ("cluster", operator, ["cluster.7"], 0), ("rollout", operator, ["rollout.7"], last - 2_000),
    ("tenant", operator, [f"tenant.{tenants[3].pk}"], 0),
    ("tenant admin, activity", admin, [f"tenant.{tenants[0].pk}"], 0),
    ("tenant admin, cluster", admin, ["cluster.7"], 0),
]:
    with CaptureQueriesContext(connection) as captured:
        selectors.event_replay(user=user, groups=groups, after=after)
    sqls = [q["sql"] for q in captured.captured_queries if "pksweb_event" in q["sql"]]
    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN (ANALYZE, FORMAT JSON) " + sqls[-1])
        plans[name] = {"queries": len(sqls), "plan": cursor.fetchone()[0][0]["Plan"]}
print(json.dumps(plans))
'''


def _nodes(plan: dict):
    yield plan
    for child in plan.get("Plans", []):
        yield from _nodes(child)


def test_every_replay_query_is_an_index_scan_that_stops_early(stack: Stack):
    plans = json.loads(stack.manage("shell", "-c", EXPLAIN).strip().splitlines()[-1])
    for name, found in plans.items():
        assert found["queries"] == 1, name
        nodes = list(_nodes(found["plan"]))
        on_events = [node for node in nodes if node.get("Relation Name") == "pksweb_event"]
        # An index scan (in index order, or a bitmap of the subject's or tenant's rows): never the whole table.
        assert on_events and all(node["Node Type"] in ("Index Scan", "Index Only Scan", "Bitmap Heap Scan")
                                 for node in on_events), (name, found["plan"])
        # However many events the table holds, a replay takes about its limit's worth (501) from the index. (The
        # planner may walk the primary key newest first and filter a tenant's rows there rather than use
        # event_tenant_id: the ids follow the table's order, so it judges that cheaper; it still stops at the limit.)
        assert sum(node["Actual Rows"] for node in on_events) <= 3_000, (name, found["plan"])
        assert sum(node.get("Rows Removed by Filter", 0) for node in on_events) < 30_000, (name, found["plan"])
