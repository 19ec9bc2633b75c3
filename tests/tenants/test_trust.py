"""Issue 13's regressions on the tenancy side: no word about other tenants' clusters, no namespace pending
for good, and a node given to one tenant in the database and on the cluster alike."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rest_framework.test import APIClient

from clusters.connect import gateway_for
from clusters.kube import Credential
from clusters.models import Cluster, ClusterNode
from clusters.services import cluster_register
from clusters.sweep import cluster_probe
from pksweb import services as core_services
from tenants import reconciler, services
from tenants.models import NodeAssignment, TenantNamespace

pytestmark = pytest.mark.django_db


@pytest.fixture
def hidden_cluster(sandbox, operator, django_capture_on_commit_callbacks):
    """A cluster of another tenant, with a name a tenant admin must never read."""
    sim = sandbox.add_cluster(f"zz-secret-{id(object())}"[:40], nodes=1, pods_per_node=0)
    with django_capture_on_commit_callbacks(execute=False):
        cluster = cluster_register(name="payroll-prod-secret", created_by=operator, check=False,
                                   credential=Credential(server=sandbox.server_url(sim.name), token=sim.token,
                                                         ca_data=sandbox.ca_pem))
    services.tenant_create(name="other-co", created_by=operator, clusters=[cluster])
    yield cluster
    sandbox.remove_cluster(sim.name)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(pick=st.sampled_from(["hidden", "missing", "huge", "negative"]), name=st.from_regex(r"[a-z][a-z0-9-]{0,20}", fullmatch=True))
def test_a_tenant_admin_learns_nothing_of_clusters_not_theirs(acme, tenant_admin, hidden_cluster, pick, name):
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Token {core_services.api_token_get_or_create(user=tenant_admin)}")
    cluster_id = {"hidden": hidden_cluster.pk, "missing": hidden_cluster.pk + 1000, "huge": 2**62, "negative": -1}[pick]
    response = api.post("/api/namespaces/", {"tenant": acme.name, "cluster": cluster_id, "name": name}, format="json")
    assert response.status_code == 400
    body = response.content.decode()
    assert "payroll-prod-secret" not in body and "other-co" not in body
    # The same words as for a cluster that does not exist: the id itself tells nothing either.
    assert response.json()["cluster"] == [f'Invalid pk "{cluster_id}" - object does not exist.'] or pick == "negative"
    assert not TenantNamespace.objects.filter(name=name).exists()


def test_a_namespace_pending_for_good_is_reconciled_by_the_drift_scan(acme, registered, make_namespace, sandbox_cluster):
    namespace = make_namespace(acme, registered, "payments")  # its reconcile task never ran (lost)
    assert namespace.sync_state == "pending"
    assert reconciler.drift_scan().get("retried", 0) == 0  # a fresh one is given its minute
    TenantNamespace.objects.filter(pk=namespace.pk).update(created_at=timezone.now() - timedelta(minutes=2))
    counts = reconciler.drift_scan()
    assert counts["retried"] == 1
    namespace.refresh_from_db()
    assert namespace.sync_state == "in_sync" and sandbox_cluster.get("namespaces", "", "payments") is not None


def test_a_drift_reason_of_any_length_is_recorded(acme, registered, make_namespace, sandbox_cluster):
    namespace = make_namespace(acme, registered, "ledger")
    sandbox_cluster.faults.update({"fail_next": 40, "fail_status": 503, "fail_message": "Ü" * 50_000})
    reconciled = reconciler.namespace_reconcile(namespace_id=namespace.pk)
    assert reconciled.sync_state == "failed" and "(503)" in reconciled.error and len(reconciled.error) < 2000


def _worker(cluster):
    return next(n.name for n in ClusterNode.objects.filter(cluster=cluster).order_by("name") if not n.is_control_plane)


def test_a_refused_label_leaves_no_assignment(globex, registered, sandbox_cluster, operator):
    node = _worker(registered)
    sandbox_cluster.faults.update({"answers": [{"path": f"/api/v1/nodes/{node}", "method": "PATCH", "status": 500,
                                                "body": {"kind": "Status", "status": "Failure", "message": "etcd timeout", "code": 500}}]})
    with pytest.raises(Exception, match="etcd timeout"):
        services.node_assign(cluster=registered, node=node, tenant=globex, assigned_by=operator)
    assert not NodeAssignment.objects.exists()
    assert "pksweb.io/tenant" not in sandbox_cluster.get("nodes", "", node)["metadata"]["labels"]


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_assigns_at_once_leave_cluster_and_database_agreeing(sandbox, operator):
    if connection.vendor != "postgresql":
        pytest.skip("concurrent transactions need PostgreSQL (the SQLite test database is one shared-cache connection)")
    sim = sandbox.add_cluster(f"race-{id(object())}"[:40], nodes=3, pods_per_node=0)
    cluster = cluster_register(name="race", created_by=operator, check=False,
                               credential=Credential(server=sandbox.server_url(sim.name), token=sim.token,
                                                     ca_data=sandbox.ca_pem))
    cluster_probe(cluster=Cluster.objects.get(pk=cluster.pk))
    tenants = [services.tenant_create(name=f"dedicated-{i}", created_by=operator, clusters=[cluster], isolation="dedicated-nodes")
               for i in range(2)]
    sim.faults.update({"latency_ms": 150})  # both requests in flight together
    try:
        for node in [n.name for n in ClusterNode.objects.filter(cluster=cluster) if not n.is_control_plane]:
            barrier = threading.Barrier(2)
            outcomes: list[str] = []

            def assign(tenant, node=node, barrier=barrier, outcomes=outcomes):
                barrier.wait()
                try:
                    services.node_assign(cluster=cluster, node=node, tenant=tenant, assigned_by=operator)
                    outcomes.append(tenant.name)
                except Exception as exc:  # noqa: BLE001 - the loser's refusal is the point
                    outcomes.append(f"refused: {exc}")
                finally:
                    connection.close()

            threads = [threading.Thread(target=assign, args=(t,)) for t in tenants]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            winners = [o for o in outcomes if not o.startswith("refused")]
            assert len(winners) == 1, outcomes
            assert NodeAssignment.objects.get(cluster=cluster, node=node).tenant.name == winners[0]
            assert sim.get("nodes", "", node)["metadata"]["labels"]["pksweb.io/tenant"] == winners[0]
    finally:
        sandbox.remove_cluster(sim.name)


def test_a_limit_range_kubernetes_would_refuse_is_refused_in_words(acme, operator):
    from django.core.exceptions import ValidationError

    with pytest.raises(ValidationError) as refused:
        services.tenant_update(tenant=acme, updated_by=operator, limit_cpu="100m", request_cpu="200m",
                               limit_memory="1Mi", request_memory="1Gi")
    assert set(refused.value.message_dict) == {"request_cpu", "request_memory"}
    assert "more than the default CPU limit" in refused.value.message_dict["request_cpu"][0]
    services.tenant_update(tenant=acme, updated_by=operator, limit_cpu="1", request_cpu="500m")  # 0.5 < 1: fine


QUANTITIES = st.one_of(st.from_regex(r"[0-9]{1,4}(\.[0-9]{0,3})?(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei|[eE][+-]?[0-9]{1,3})?",
                                     fullmatch=True), st.text(max_size=12),
                       st.sampled_from(["1e9223372036854775808", "1E9223372036854775809", "1e-99999", "8Ei", "9223372036854775808",
                                        "1e400", "9" * 40 + "Ei"]))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(limits=st.fixed_dictionaries({}, optional={"cpu": QUANTITIES, "memory": QUANTITIES, "request_cpu": QUANTITIES,
                                                  "request_memory": QUANTITIES}))
def test_any_limit_quantity_is_saved_or_refused_in_words(acme, operator_api, limits):
    """Every suffix Kubernetes knows (E and Ei are exa and exbi, not exponents), and text that is no quantity."""
    response = operator_api.patch(f"/api/tenants/{acme.pk}/", {"limits": limits}, format="json")
    assert response.status_code in (200, 400), response.content
    if response.status_code == 400:
        def flat(value):
            if isinstance(value, dict):
                return [m for inner in value.values() for m in flat(inner)]
            return [m for inner in value for m in flat(inner)] if isinstance(value, list) else [value]

        words = flat(response.json())
        assert words and all(isinstance(m, str) and 10 < len(m) < 600 for m in words), response.json()
    else:
        body = operator_api.get(f"/api/tenants/{acme.pk}/").json()["limits"]
        assert all(body[k] == v.strip() for k, v in limits.items()), (body, limits)


def test_profile_lists_are_bounded(acme, operator):
    from django.core.exceptions import ValidationError

    with pytest.raises(ValidationError, match="at most 100 namespaces"):
        services.tenant_update(tenant=acme, updated_by=operator, ingress_from_namespaces=[f"ns-{i}" for i in range(10_000)])


def test_a_namespace_that_failed_is_reconciled_again_by_the_drift_scan(acme, registered, make_namespace, sandbox_cluster):
    namespace = make_namespace(acme, registered, "after-outage")
    sandbox_cluster.faults.update({"unreachable": True})
    assert reconciler.namespace_reconcile(namespace_id=namespace.pk).sync_state == "failed"
    sandbox_cluster.faults.update({"unreachable": False})
    assert reconciler.drift_scan()["retried"] == 1
    namespace.refresh_from_db()
    assert namespace.sync_state == "in_sync"


# ---- a namespace name other tenants trust -----------------------------------------------------

def test_no_tenant_takes_a_namespace_name_tenant_policies_let_in(acme, globex, registered, make_namespace):
    """acme lets traffic in from ingress-nginx: globex may not call a namespace of its own that."""
    from django.core.exceptions import ValidationError

    with pytest.raises(ValidationError, match="platform namespace"):
        make_namespace(globex, registered, "ingress-nginx")
    assert not TenantNamespace.objects.filter(name="ingress-nginx").exists()


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(trusted=st.lists(st.from_regex(r"[a-z][a-z0-9-]{0,10}[a-z0-9]", fullmatch=True), min_size=1, max_size=4, unique=True),
       pick=st.integers(min_value=0, max_value=3))
def test_a_tenant_namespace_named_like_a_trusted_one_is_never_let_in(acme, trusted, pick):
    """Whatever names a tenant trusts, a namespace of that name that belongs to a tenant (created before the name
    was trusted, or behind pksweb's back) is not let in by the policy pksweb writes; the platform's is."""
    from tenants import bundle
    from tenants.netpol.evaluation import Evaluation
    from tenants.netpol.objects import Pod

    acme.ingress_from_namespaces = trusted
    name = trusted[pick % len(trusted)]
    spaces = {"acme-app": {"kubernetes.io/metadata.name": "acme-app", bundle.TENANT_LABEL: acme.name},
              "platform": {"kubernetes.io/metadata.name": name},
              "impostor": {"kubernetes.io/metadata.name": name, bundle.TENANT_LABEL: "globex-insurance"}}
    # Two namespaces cannot share a name on one cluster: the evaluation reads names from the labels, as the policy does.
    pods = [Pod("acme-app", "web", {"app": "web"}), Pod("platform", "ingress", {}), Pod("impostor", "ingress", {})]
    evaluation = Evaluation(spaces, pods, bundle.network_policies(acme, "acme-app"))
    assert evaluation.cell("platform", "acme-app").reach == "all"
    assert evaluation.cell("impostor", "acme-app").reach == "none"


def test_an_object_another_reconcile_created_meanwhile_is_no_failure(acme, registered, sandbox_cluster):
    """Two namespaces of a new cluster reconciled at once both create the shared ClusterRole: the one that
    loses the race (409 AlreadyExists) compares what is there, as if it had been there before."""
    from tenants import bundle

    ops = gateway_for(registered).objects
    role = bundle.tenant_admin_role()
    name = role["metadata"]["name"]
    if ops.get("ClusterRole", name, ""):
        ops.delete("ClusterRole", name, "")

    class Raced:
        """The real cluster's objects, where another reconcile creates the role between our look and our create."""

        def __getattr__(self, attribute):
            return getattr(ops, attribute)

        def get(self, kind, obj_name, namespace=""):
            found = ops.get(kind, obj_name, namespace)
            if kind == "ClusterRole" and found is None:
                ops.create(role)  # the other reconcile, first
            return found

    assert reconciler._apply(Raced(), role) is None  # nothing left to change: what the other one made is right
    assert ops.get("ClusterRole", name, "")["rules"] == role["rules"]


def test_a_tenant_namespace_cannot_be_trusted_by_name(acme, globex, registered, make_namespace, operator):
    from django.core.exceptions import ValidationError

    make_namespace(acme, registered, "acme-x1")
    with pytest.raises(ValidationError, match="acme-x1 is a tenant namespace"):
        services.tenant_update(tenant=globex, updated_by=operator, ingress_from_namespaces=["ingress-nginx", "acme-x1"])
    with pytest.raises(ValidationError, match="acme-x1 is a tenant namespace"):
        services.tenant_create(name="initech", created_by=operator, ingress_from_namespaces=["acme-x1"])
    services.tenant_update(tenant=globex, updated_by=operator, ingress_from_namespaces=["ingress-nginx"])


def test_the_cluster_page_says_when_a_dedicated_node_lost_its_label_or_taint(globex, registered, sandbox_cluster, operator,
                                                                              op_client):
    from django.urls import reverse

    cluster_probe(cluster=registered)
    node = next(n.name for n in ClusterNode.objects.filter(cluster=registered) if not n.is_control_plane)
    services.node_assign(cluster=registered, node=node, tenant=globex, assigned_by=operator)
    cluster_probe(cluster=registered)
    page = op_client.get(reverse("clusters:detail", args=[registered.pk])).content.decode()
    assert globex.name in page.split(f'id="node-{node}"')[1].split("</tr>")[0]
    assert "missing" not in page.split(f'id="node-{node}"')[1].split("</tr>")[0]
    sandbox_cluster.patch("nodes", "", node, lambda n: {**n, "spec": {**n.get("spec", {}), "taints": []}})
    cluster_probe(cluster=registered)
    page = op_client.get(reverse("clusters:detail", args=[registered.pk])).content.decode()
    row = page.split(f'id="node-{node}"')[1].split("</tr>")[0]
    assert "taint missing" in row and "label and taint missing" not in row


def test_a_tenant_is_created_whole_or_not_at_all(operator):
    """Its row, its clusters and its event commit together: a failure on the clusters leaves no tenant behind."""
    from clusters.models import Cluster
    from tenants.models import Tenant

    with pytest.raises(ValueError):
        services.tenant_create(name="half-made", created_by=operator, clusters=[Cluster(name="never-saved")])
    assert not Tenant.objects.filter(name="half-made").exists()
