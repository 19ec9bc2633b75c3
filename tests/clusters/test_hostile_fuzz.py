"""A hostile cluster, fuzzed: whatever a cluster answers (long or unicode messages, names at their
maximum lengths, vendor versions, missing optional fields, 4xx and 5xx ``Status`` bodies, slow
answers), the probe, a drain, preflight, the tenant reconciler and a rollout step each record a
state, show a bounded reason, never answer 500 and never let an exception escape a task.

The answers are generated here and served by the sandbox's scripted-answers fault, over real HTTP
to the official client, as a real cluster would send them.
"""

from __future__ import annotations

import pytest
from django.urls import reverse
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from clusters import operations, sweep
from clusters.models import Cluster, ClusterNode, NodeOperation
from pksweb.models import Event
from pksweb.text import REPORT_LIMIT

pytestmark = pytest.mark.django_db

FUZZ = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

# ---- what a hostile cluster says ----------------------------------------------------------------------

words = st.one_of(
    st.text(max_size=80),
    st.text(alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"]), min_size=300, max_size=3000),
    st.integers(1_000, 60_000).map(lambda n: "Zeichenkette " * (n // 13)),
)
label = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?", fullmatch=True)
long_name = st.integers(1, 253).map(lambda n: ".".join(["n" * 63] * 4)[:n].strip(".") or "n")
vendor_version = st.sampled_from(["v1.30.4", "v1.30.4+vendor.build-12345", "v1.30.4-eks-b9c9ed7", "v1.30.4+k3s2",
                                  "v1.30.4-gke.1589018", "v1.30.4+" + "x" * 200, "1.30", "", "garbage"])


def status_body(code: int, message: str) -> dict:
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": message,
            "reason": "InternalError", "code": code}


failure = st.builds(lambda code, message, as_text: {"status": code, "body": message if as_text else status_body(code, message)},
                    st.sampled_from([400, 401, 403, 404, 409, 422, 429, 500, 502, 503]), words, st.booleans())
node_items = st.lists(st.fixed_dictionaries({"metadata": st.fixed_dictionaries({"name": long_name})}, optional={
    "status": st.fixed_dictionaries({}, optional={
        "nodeInfo": st.fixed_dictionaries({"kubeletVersion": vendor_version}),
        "conditions": st.lists(st.fixed_dictionaries({"type": st.sampled_from(["Ready", "DiskPressure"]),
                                                      "status": st.sampled_from(["True", "False", "Unknown"])},
                                                     optional={"message": words}), max_size=2)}),
    "spec": st.fixed_dictionaries({}, optional={"unschedulable": st.booleans()})}), max_size=3)
malformed = st.one_of(
    st.builds(lambda body: {"status": 200, "body": body}, st.one_of(words, st.just([]), st.just({}), st.just({"items": "nope"}),
                                                                     st.just({"items": [None, 1, "x"]}))),
    st.builds(lambda items: {"status": 200, "body": {"kind": "List", "apiVersion": "v1", "metadata": {}, "items": items}}, node_items),
)
answer = st.one_of(failure, malformed)


def version_answer(version: str) -> dict:
    return {"status": 200, "body": {"major": "1", "minor": "30", "gitVersion": version, "gitCommit": "0" * 40, "gitTreeState": "clean",
                                    "buildDate": "2024-01-01T00:00:00Z", "goVersion": "go1.22.5", "compiler": "gc",
                                    "platform": "linux/amd64"}}


def scripted(sim, answers: list[tuple[str, dict]], latency_ms: float = 0, times: int = 0) -> None:
    sim.faults.clear()
    sim.faults.update({"latency_ms": latency_ms, "answers": [{"path": path, "times": times, **a} for path, a in answers]})


def assert_bounded(*cluster_ids: int) -> None:
    assert all(len(e.message) <= 500 and len(e.subject_label) <= 200 for e in Event.objects.all())
    for cluster in Cluster.objects.filter(pk__in=cluster_ids):
        assert all(isinstance(r, str) and len(r) <= 500 for r in cluster.reasons), cluster.reasons
        assert len(cluster.version) <= 100


PROBE_PATHS = ["/readyz", "/version", "/api/v1/nodes", "/api/v1/namespaces/kube-system/pods", "/api/v1/events",
               "/api/v1/pods", "/api/v1/namespaces", "/api/v1/namespaces/kube-system"]


@FUZZ
@given(answers=st.lists(st.tuples(st.sampled_from(PROBE_PATHS), answer), max_size=3), version=vendor_version,
       latency=st.sampled_from([0, 0, 30, 250]))
def test_probe_records_what_any_cluster_says(op_client, registered, sandbox_cluster, answers, version, latency):
    scripted(sandbox_cluster, [("/version", version_answer(version)), *answers], latency)
    before = Cluster.objects.get(pk=registered.pk).last_probe_at
    response = op_client.post(reverse("clusters:probe", args=[registered.pk]), HTTP_HX_REQUEST="true")
    assert response.status_code == 200, response.content[:500]
    cluster = Cluster.objects.get(pk=registered.pk)
    assert cluster.last_probe_at > before  # the state is recorded
    assert cluster.status in ("healthy", "degraded", "unreachable")
    if cluster.status != "healthy":
        assert cluster.reasons  # and the reason is shown
    assert_bounded(registered.pk)
    for page in ("clusters:detail", "clusters:live"):
        assert op_client.get(reverse(page, args=[registered.pk])).status_code == 200
    assert sweep.fleet_sweep(workers=2).failures == []


def _worker(cluster):
    return next(n.name for n in ClusterNode.objects.filter(cluster=cluster).order_by("name") if not n.is_control_plane)


@FUZZ
@given(answers=st.lists(st.tuples(st.sampled_from(["/api/v1/pods", "/api/v1/nodes/*", "/api/v1/namespaces/demo/pods/*"]), answer),
                        min_size=1, max_size=3),
       times=st.integers(1, 3))
def test_a_drain_finishes_whatever_the_cluster_says(registered, sandbox_cluster, operator, answers, times,
                                                     django_capture_on_commit_callbacks):
    node = _worker(registered)
    sandbox_cluster.patch("nodes", "", node, lambda n: {**n, "spec": {**n.get("spec", {}), "unschedulable": False}})
    scripted(sandbox_cluster, answers, times=times)  # each answer a few times, then the cluster answers again
    with django_capture_on_commit_callbacks(execute=False):
        operation = operations.node_operation_start(cluster=registered, node=node, kind="drain", requested_by=operator,
                                                    timeout_seconds=10)
    finished = operations.node_operation_execute(operation_id=operation.pk)  # what the task runs: nothing escapes
    assert finished is not None and finished.state in ("succeeded", "failed") and finished.finished_at is not None
    assert finished.report and len(finished.report) <= REPORT_LIMIT
    assert NodeOperation.objects.get(pk=operation.pk).state == finished.state
    assert_bounded(registered.pk)


@FUZZ
@given(answers=st.lists(st.tuples(st.sampled_from(["/apis", "/api", "/api/v1/pods", "/apis/policy/v1/poddisruptionbudgets",
                                                   "/apis/flowcontrol.apiserver.k8s.io/*"]), answer), min_size=1, max_size=3))
def test_preflight_records_a_verdict_whatever_the_cluster_says(registered, sandbox_cluster, operator, answers):
    from upgrades import services as upgrades

    Cluster.objects.filter(pk=registered.pk).update(upgrade_driver="sandbox")
    scripted(sandbox_cluster, answers)
    plan = upgrades.plan_create(author=operator, name="fuzz", target_version="1.31.2", waves=[[registered.pk]])
    assert plan.pk and isinstance(plan.preflight["failures"], list)
    assert all(len(f["message"]) <= 1000 for f in plan.preflight["failures"] + plan.preflight["warnings"])
    assert_bounded(registered.pk)


BUNDLE_PATHS = ["/api/v1/namespaces/fuzz-ns", "/api/v1/namespaces", "/api/v1/namespaces/fuzz-ns/resourcequotas*",
                "/api/v1/namespaces/fuzz-ns/limitranges*", "/apis/networking.k8s.io/v1/namespaces/fuzz-ns/networkpolicies*",
                "/apis/rbac.authorization.k8s.io/v1/*"]


@FUZZ
@given(answers=st.lists(st.tuples(st.sampled_from(BUNDLE_PATHS), answer), min_size=1, max_size=3))
def test_the_reconciler_records_a_state_whatever_the_cluster_says(registered, sandbox_cluster, operator, answers,
                                                                   django_capture_on_commit_callbacks):
    from tenants import reconciler
    from tenants import services as tenancy
    from tenants.models import Tenant, TenantNamespace

    tenant = Tenant.objects.filter(name="fuzz").first() or tenancy.tenant_create(name="fuzz", created_by=operator,
                                                                                   clusters=[registered])
    namespace = TenantNamespace.objects.filter(name="fuzz-ns").first()
    if namespace is None:
        with django_capture_on_commit_callbacks(execute=False):
            namespace = tenancy.namespace_create(tenant=tenant, cluster=registered, name="fuzz-ns", created_by=operator)
    scripted(sandbox_cluster, answers)
    reconciled = reconciler.namespace_reconcile(namespace_id=namespace.pk)  # what the task runs: nothing escapes
    assert reconciled.sync_state in ("in_sync", "failed")
    assert (reconciled.sync_state == "failed") == bool(reconciled.error) and len(reconciled.error) <= REPORT_LIMIT
    checked = reconciler.namespace_check(namespace_id=namespace.pk)
    assert checked.sync_state in ("in_sync", "drifted", "failed") and all(len(d) <= 1000 for d in checked.drift)
    assert_bounded(registered.pk)


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(answers=st.lists(st.tuples(st.sampled_from(["/api/v1/nodes/*", "/api/v1/pods", "/api/v1/namespaces/demo/pods/*",
                                                   "/readyz", "/api/v1/nodes"]), answer), min_size=1, max_size=3),
       ticks=st.integers(1, 12))
def test_a_rollout_step_records_and_halts_whatever_the_cluster_says(registered, sandbox_cluster, operator, approver, answers, ticks,
                                                                    django_capture_on_commit_callbacks):
    from tests.support.rollouts import rollout_advance
    from upgrades import services as upgrades
    from upgrades.models import Rollout, RolloutStep

    sandbox_cluster.faults.clear()
    Cluster.objects.filter(pk=registered.pk).update(upgrade_driver="sandbox")
    Rollout.objects.filter(state__in=("running", "paused", "halted")).update(state="aborted")
    with django_capture_on_commit_callbacks(execute=False):
        plan = upgrades.plan_create(author=operator, name="fuzz", target_version="1.31.2", waves=[[registered.pk]],
                                    drain_timeout_seconds=10, node_ready_timeout_seconds=10, health_gate=False)
        if plan.preflight["failures"]:
            return  # the fleet of an earlier example left it unfit; preflight said so
        plan = upgrades.plan_submit(plan=plan, by=operator)
        plan = upgrades.plan_decide(plan=plan, approver=approver, revision=plan.revision, decision="approve")
        rollout = upgrades.plan_start(plan=plan, by=operator)
        scripted(sandbox_cluster, answers, times=2)
        for _ in range(ticks):  # what the tasks run, tick by tick: nothing escapes
            if rollout_advance(rollout_id=rollout.pk) is None:
                break
    rollout.refresh_from_db()
    assert rollout.state in ("running", "halted", "succeeded")
    if rollout.state == "halted":
        assert rollout.reason and len(rollout.reason) <= REPORT_LIMIT
    assert all(len(s.log) <= 20_000 for s in RolloutStep.objects.filter(rollout=rollout))
    assert_bounded(registered.pk)
    sandbox_cluster.faults.clear()
    sandbox_cluster.make_ready_now()
