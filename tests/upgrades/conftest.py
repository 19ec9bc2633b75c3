from __future__ import annotations

import itertools

import pytest

from clusters.kube import Credential
from clusters.models import Cluster
from clusters.services import cluster_register
from clusters.sweep import cluster_probe
from upgrades import services

_names = itertools.count(1)


@pytest.fixture
def fleet(db, sandbox, operator, django_capture_on_commit_callbacks):
    """Three sandbox clusters (1 control plane + 2 workers, v1.30.4) registered with the sandbox driver."""
    clusters, simulated = [], []
    tag = next(_names)
    with django_capture_on_commit_callbacks(execute=False):
        for i in range(3):
            name = f"up{tag}-{i + 1}"
            sim = sandbox.add_cluster(name, nodes=3, pods_per_node=2, pod_start_delay=0.01, node_ready_delay=0.05)
            cluster = cluster_register(name=name, created_by=operator, check=False,
                                       credential=Credential.from_dict(sandbox.credential(name)))
            Cluster.objects.filter(pk=cluster.pk).update(upgrade_driver="sandbox")
            clusters.append(cluster_probe(cluster=Cluster.objects.get(pk=cluster.pk)))
            simulated.append(sim)
    yield clusters, simulated
    for sim in simulated:
        sandbox.remove_cluster(sim.name)


@pytest.fixture
def make_approved(fleet, operator, approver, django_capture_on_commit_callbacks):
    """An approved plan over the fleet (two waves: a canary, then the rest), with overrides."""
    clusters, _ = fleet

    def make(**overrides):
        fields = {"name": "to 1.31", "target_version": "1.31.2", "waves": [[clusters[0].pk], [clusters[1].pk, clusters[2].pk]],
                  "drain_timeout_seconds": 30, "node_ready_timeout_seconds": 30, **overrides}
        with django_capture_on_commit_callbacks(execute=False):
            plan = services.plan_create(author=operator, **fields)
            assert plan.preflight["failures"] == [], plan.preflight
            plan = services.plan_submit(plan=plan, by=operator)
            plan = services.plan_decide(plan=plan, approver=approver, revision=plan.revision, decision="approve")
        assert plan.state == "approved"
        return plan

    return make


@pytest.fixture
def approved_plan(make_approved):
    return make_approved()
