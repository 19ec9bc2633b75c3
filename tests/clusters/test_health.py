"""The dial tone: probes, statuses, history, availability, the sweep, live updates."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from clusters import health
from clusters.kube import Credential, KubeError, NodeInfo, ProbeResult
from clusters.models import Cluster, HealthSpan
from clusters.services import cluster_register
from clusters.sweep import cluster_health_record, cluster_probe, fleet_sweep
from pksweb.models import Event
from tests.support.waits import wait_for

pytestmark = pytest.mark.django_db


def node(name, ready=True, **conditions):
    return NodeInfo(name=name, roles=["worker"], kubelet_version="v1.30.4", ready=ready,
                    conditions={"Ready": "True" if ready else "False", **conditions}, unschedulable=False, taints=[], labels={})


@pytest.mark.parametrize(
    ("result", "status", "reasons"),
    [
        (ProbeResult(version="1.30.4", ready=True, nodes=[node("a"), node("b")]), "healthy", []),
        (ProbeResult(ready=False, failed_checks=["etcd"], nodes=[node("a")]), "degraded", ["readyz failing: etcd"]),
        (ProbeResult(ready=True, nodes=[node("a"), node("b", ready=False)]), "degraded", ["1 of 2 nodes not Ready: b"]),
        (ProbeResult(ready=True, nodes=[node("a", MemoryPressure="True")]), "degraded", ["a: MemoryPressure"]),
        (ProbeResult(ready=True, nodes=[node("a")], system_problems=["coredns-x (Pending)"]), "degraded",
         ["kube-system pods not running/ready: coredns-x (Pending)"]),
        (ProbeResult(error=KubeError("timeout", "it timed out")), "unreachable", ["it timed out"]),
    ],
)
def test_assess(result, status, reasons):
    assert health.assess(result) == (status, reasons)


def test_availability_and_timeline():
    now = timezone.now()
    spans = [
        health.SpanLike("unknown", now - timedelta(hours=30), now - timedelta(hours=20)),
        health.SpanLike("healthy", now - timedelta(hours=20), now - timedelta(hours=2)),
        health.SpanLike("unreachable", now - timedelta(hours=2), now - timedelta(hours=1)),
        health.SpanLike("degraded", now - timedelta(hours=1), None),
    ]
    assert health.availability(spans, now=now, window=timedelta(days=1)) == pytest.approx(100 * 19 / 20, abs=0.01)
    assert health.availability([], now=now, window=timedelta(days=1)) is None
    svg = str(health.timeline_svg(spans, now=now, window=timedelta(days=1)))
    assert svg.startswith("<svg") and svg.count("<rect") == 5 and "#c8372d" in svg and "<title>unreachable" in svg


def test_probe_records_status_nodes_and_history(registered, sandbox_cluster):
    cluster = Cluster.objects.get(pk=registered.pk)
    assert cluster.status == "healthy" and cluster.reasons == [] and cluster.version == "1.30.4"
    assert (cluster.nodes_ready, cluster.nodes_total) == (4, 4)
    assert {n.name for n in cluster.nodes.all()} == {f"{sandbox_cluster.name}-cp-1"} | {f"{sandbox_cluster.name}-w-{i}" for i in (1, 2, 3)}
    assert [s.status for s in HealthSpan.objects.filter(cluster=cluster)] == ["unknown", "healthy"]
    assert Event.objects.filter(kind="cluster.status_changed", subject_id=str(cluster.pk)).count() == 1


def test_transitions_are_published_once(registered, sandbox_cluster, django_capture_on_commit_callbacks):
    node_name = f"{sandbox_cluster.name}-w-2"
    sandbox_cluster.faults.update({"stuck_nodes": [node_name]})
    sandbox_cluster.upgrade_node(node_name, "1.31.2", delay=0.01)
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        cluster = cluster_probe(cluster=registered)
    assert cluster.status == "degraded" and cluster.reasons[0] == f"1 of 4 nodes not Ready: {node_name}"
    assert cluster.reasons[1].startswith("kube-system pods not running/ready: ")  # the node's pods went down with it
    kinds = list(Event.objects.filter(subject_id=str(cluster.pk)).order_by("id").values_list("kind", flat=True))
    assert kinds[-2:] == ["cluster.status_changed", "cluster.node_ready_changed"]
    assert len(callbacks) == 2
    with django_capture_on_commit_callbacks(execute=True) as again:
        cluster_probe(cluster=registered)  # nothing changed: nothing published
    assert again == []


def test_unreachable_cluster_says_why(registered, sandbox_cluster):
    sandbox_cluster.faults.update({"unreachable": True})
    cluster = cluster_probe(cluster=registered)
    assert cluster.status == "unreachable"
    assert "dropped the connection without answering" in cluster.reasons[0]
    assert cluster.nodes_total == 4  # the last known nodes stay


def test_version_change_is_published(registered, sandbox_cluster):
    sandbox_cluster.upgrade_node(f"{sandbox_cluster.name}-cp-1", "1.31.2", delay=0.01)
    wait_for(lambda: sandbox_cluster.server_version == "1.31.2", what="control plane upgraded")
    cluster = cluster_probe(cluster=registered)
    assert cluster.version == "1.31.2"
    event = Event.objects.get(kind="cluster.version_changed")
    assert event.payload == {"old": "1.30.4", "new": "1.31.2"}


def test_sweep_isolates_slow_erroring_and_unreachable_clusters(sandbox, operator, settings, django_capture_on_commit_callbacks):
    kinds = {"fine-1": {}, "fine-2": {}, "cut": {"unreachable": True}, "slow": {"latency_ms": 3000}, "broken": {"error_rate": 1.0}}
    with django_capture_on_commit_callbacks(execute=False):
        for name, faults in kinds.items():
            cluster = sandbox.add_cluster(f"sweep-{name}", nodes=2, pods_per_node=1)
            cluster.faults.update(faults)
            cluster_register(name=f"sweep-{name}", created_by=operator, check=False, credential=Credential.from_dict(
                sandbox.credential(f"sweep-{name}")))
    try:
        report = fleet_sweep(workers=8, timeout=(1.0, 1.0))
    finally:
        for name in kinds:
            sandbox.remove_cluster(f"sweep-{name}")
    statuses = dict(Cluster.objects.values_list("name", "status"))
    assert statuses == {"sweep-fine-1": "healthy", "sweep-fine-2": "healthy", "sweep-cut": "unreachable",
                        "sweep-slow": "unreachable", "sweep-broken": "unreachable"}
    assert report.probed == 5 and report.failures == []
    reasons = dict(Cluster.objects.values_list("name", "reasons"))
    assert "did not answer in time" in reasons["sweep-slow"][0]
    assert "The API server failed (50" in reasons["sweep-broken"][0]


def test_only_one_sweep_at_a_time(registered):
    from pksweb.leases import lease_acquire, lease_release

    assert lease_acquire(name="clusters.health_sweep", holder="someone-else", seconds=60)
    try:
        assert fleet_sweep().skipped
    finally:
        lease_release(name="clusters.health_sweep", holder="someone-else")
    assert not fleet_sweep().skipped


def test_health_api(viewer_api, registered):
    body = viewer_api.get(f"/api/clusters/{registered.pk}/health/").json()
    assert body["cluster"]["status"] == "healthy" and body["availability_24h"] == 100.0
    assert [h["status"] for h in body["history"]] == ["unknown", "healthy"]
    nodes = viewer_api.get(f"/api/clusters/{registered.pk}/nodes/").json()
    assert len(nodes) == 4 and all(n["ready"] for n in nodes)


def test_probe_now_api(operator_api, viewer_api, registered, sandbox_cluster):
    sandbox_cluster.faults.update({"failing_checks": ["etcd"]})
    assert viewer_api.post(f"/api/clusters/{registered.pk}/probe/").status_code == 403
    response = operator_api.post(f"/api/clusters/{registered.pk}/probe/")
    assert response.status_code == 200 and response.json()["status"] == "degraded"
    assert response.json()["reasons"] == ["readyz failing: etcd"]


def test_health_record_survives_deleted_cluster(registered):
    Cluster.objects.all().delete()
    with pytest.raises(Cluster.DoesNotExist):
        cluster_health_record(cluster_id=registered.pk, result=ProbeResult())


def test_a_probe_stays_within_its_request_budget(registered, sandbox, sandbox_cluster, sandbox_http):
    """Per cluster and sweep: one /readyz, one /version, one node list from the cache, never a cluster-wide pod list."""
    url = f"{sandbox.server_url(sandbox_cluster.name)}/sandbox/stats"
    headers = {"Authorization": f"Bearer {sandbox_cluster.token}"}
    sandbox_http.delete(url, headers=headers)
    cluster_probe(cluster=registered)
    stats = sandbox_http.get(url, headers=headers).json()
    assert stats.get("readyz") == 1 and stats.get("version") == 1 and stats.get("node_list_rv0") == 1
    assert "node_list" not in stats and "pod_list_cluster_wide" not in stats


def test_two_schedulers_still_probe_each_cluster_once_per_interval(registered, sandbox_cluster, settings):
    """A second beat (or a redelivered sweep task) inside the interval finds the sweep's lease held."""
    import time as clock

    from pksweb.models import Lease

    settings.PKSWEB_HEALTH_INTERVAL = 30
    sandbox_cluster.stats.clear()
    first = fleet_sweep()
    second = fleet_sweep()
    assert not first.skipped and second.skipped
    assert sandbox_cluster.stats.get("readyz") == 1
    # Once most of the interval has passed, the next sweep runs.
    Lease.objects.filter(name="clusters.health_sweep").update(expires_at=timezone.now())
    clock.sleep(0.01)
    assert not fleet_sweep().skipped and sandbox_cluster.stats.get("readyz") == 2


def test_one_active_rollout_per_plan_is_a_database_constraint(db, operator):
    from django.db import IntegrityError, transaction

    from upgrades.models import Rollout, UpgradePlan

    plan = UpgradePlan.objects.create(name="p", target_version="1.31.2", waves=[])
    Rollout.objects.create(plan=plan, revision="r")
    with pytest.raises(IntegrityError), transaction.atomic():
        Rollout.objects.create(plan=plan, revision="r")  # what a redelivered start would try


def test_a_throttled_probe_waits_as_told_and_then_succeeds(registered, sandbox_cluster):
    """Two 429s with Retry-After: 1: the probe waits about a second each time, then the cluster is healthy."""
    import time as clock

    sandbox_cluster.faults.update({"fail_next": 2, "fail_status": 429, "retry_after": 1})
    started = clock.monotonic()
    cluster = cluster_probe(cluster=registered)
    assert cluster.status == "healthy", cluster.reasons
    assert clock.monotonic() - started >= 2.0
    assert sandbox_cluster.faults.fail_next == 0


@pytest.mark.parametrize("status", [500, 503])
def test_a_failing_read_is_retried_with_backoff(registered, sandbox_cluster, status):
    sandbox_cluster.faults.update({"fail_next": 2, "fail_status": status})
    cluster = cluster_probe(cluster=registered)
    assert cluster.status == "healthy", cluster.reasons


def test_a_cluster_that_keeps_throttling_says_so_and_how_often_it_was_tried(registered, sandbox_cluster):
    sandbox_cluster.faults.update({"throttle_rate": 1.0, "retry_after": 1})
    cluster = cluster_probe(cluster=registered)
    assert cluster.status == "unreachable"
    assert "throttling requests (429)" in cluster.reasons[0]
    assert "pksweb tried 3 times" in cluster.reasons[0]


def test_a_long_retry_after_is_reported_not_waited_for(registered, sandbox_cluster):
    import time as clock

    sandbox_cluster.faults.update({"throttle_rate": 1.0, "retry_after": 120})
    started = clock.monotonic()
    cluster = cluster_probe(cluster=registered)
    assert clock.monotonic() - started < 2.0
    assert "it asks to retry after 120 s" in cluster.reasons[0] or "throttling requests (429)" in cluster.reasons[0]
    assert "tried" not in cluster.reasons[0]


def test_a_write_that_may_have_happened_is_not_repeated(registered, sandbox, sandbox_cluster):
    """A 500 on a create is not retried (the server may have acted); a 429 is (it refused before acting)."""
    from clusters.kube import Gateway

    gateway = Gateway(Credential.from_dict(sandbox.credential(sandbox_cluster.name)))
    namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "retry-probe"}}
    sandbox_cluster.faults.update({"fail_next": 1, "fail_status": 500})
    with pytest.raises(KubeError) as failed:
        gateway.objects.create(namespace)
    assert failed.value.kind == "server_error" and "tried" not in failed.value.message
    sandbox_cluster.faults.update({"fail_next": 1, "fail_status": 429, "retry_after": 0})
    assert gateway.objects.create(namespace)["metadata"]["name"] == "retry-probe"
