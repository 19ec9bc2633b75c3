"""The upgrades API refuses exactly what the pages refuse, and runs the same engine."""

from __future__ import annotations

import stat
from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from pksweb import services as core_services
from tests.support.rollouts import drive
from upgrades.models import Rollout

pytestmark = pytest.mark.django_db


def api_for(user) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {core_services.api_token_get_or_create(user=user)}")
    return client


def test_plan_to_rollout_through_the_api(fleet, operator, approver, viewer, django_capture_on_commit_callbacks):
    clusters, sims = fleet
    ops, boss = api_for(operator), api_for(approver)
    with django_capture_on_commit_callbacks(execute=False):
        created = ops.post("/api/upgrade-plans/", {"name": "api plan", "target_version": "1.31.2",
                                                   "waves": [[clusters[0].pk]], "max_unavailable": 1, "drain_timeout_seconds": 30,
                                                   "window_start": None, "window_end": None}, format="json")
    assert created.status_code == 201, created.content
    plan = created.json()
    assert plan["state"] == "draft" and plan["preflight"]["ok"] and len(plan["flight_plan"]) == 3 and plan["revision"]
    assert api_for(viewer).post(f"/api/upgrade-plans/{plan['id']}/submit/").status_code == 403
    assert ops.post(f"/api/upgrade-plans/{plan['id']}/start/").status_code == 400  # not approved
    with django_capture_on_commit_callbacks(execute=False):
        assert ops.post(f"/api/upgrade-plans/{plan['id']}/submit/").json()["state"] == "submitted"
        assert ops.post(f"/api/upgrade-plans/{plan['id']}/approve/", {"revision": plan["revision"]}).status_code == 403
        stale = boss.post(f"/api/upgrade-plans/{plan['id']}/approve/", {"revision": "0" * 64}, format="json")
        assert stale.status_code == 400 and "changed since you reviewed it" in stale.json()["revision"][0]
        approved = boss.post(f"/api/upgrade-plans/{plan['id']}/approve/", {"revision": plan["revision"], "comment": "go"}, format="json")
        assert approved.json()["state"] == "approved" and approved.json()["approvals"][0]["approver_name"] == "appr"
        started = ops.post(f"/api/upgrade-plans/{plan['id']}/start/", format="json")
    assert started.status_code == 201, started.content
    rollout = Rollout.objects.get(pk=started.json()["id"])
    assert drive(rollout).state == "succeeded"
    body = ops.get(f"/api/rollouts/{rollout.pk}/").json()
    assert body["state"] == "succeeded" and all(s["phase"] == "done" for s in body["steps"])
    assert ops.post(f"/api/rollouts/{rollout.pk}/pause/").status_code == 400


def test_bad_plans_are_refused_in_words(fleet, operator):
    clusters, _ = fleet
    ops = api_for(operator)
    cases = [({"target_version": "1.31"}, "target_version", "is not a Kubernetes version"),
             ({"waves": [[999999]]}, "waves", "No clusters with ids [999999]"),
             ({"waves": [[clusters[0].pk], [clusters[0].pk]]}, "waves", "more than one wave"),
             ({"max_unavailable": 0}, "max_unavailable", "at least one node"),
             ({"window_start": timezone.now().isoformat(), "window_end": (timezone.now() - timedelta(hours=1)).isoformat()},
              "window_end", "must end after it starts")]
    for change, field, text in cases:
        payload = {"name": "x", "target_version": "1.31.2", "waves": [[clusters[0].pk]], **change}
        response = ops.post("/api/upgrade-plans/", payload, format="json")
        assert response.status_code == 400 and text in str(response.json()[field]), (change, response.content)


def test_command_driver_runs_a_script_against_the_sandbox(fleet, operator, approver, tmp_path, settings, sandbox,
                                                          django_capture_on_commit_callbacks):
    """The command driver with a script that asks the cluster (via its KUBECONFIG) to move the node to the version."""
    clusters, sims = fleet
    settings.PKSWEB_ALLOW_COMMAND_DRIVER = True
    script = tmp_path / "upgrade-node.py"
    script.write_text(
        "import base64, json, ssl, sys, os, urllib.request, yaml\n"
        "cluster, node, version = sys.argv[1:4]\n"
        "config = yaml.safe_load(open(os.environ['KUBECONFIG']))\n"
        "server = config['clusters'][0]['cluster']['server']; token = config['users'][0]['user']['token']\n"
        "ca = base64.b64decode(config['clusters'][0]['cluster']['certificate-authority-data']).decode()\n"
        "request = urllib.request.Request(f'{server}/sandbox/nodes/{node}/upgrade', method='POST',\n"
        "    data=json.dumps({'version': version, 'delay': 0.05}).encode(),\n"
        "    headers={'Authorization': f'Bearer {token}', 'Content-Type': 'application/json'})\n"
        "print(urllib.request.urlopen(request, context=ssl.create_default_context(cadata=ca)).read().decode())\n")
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    import sys

    ops = api_for(operator)
    response = ops.patch(f"/api/clusters/{clusters[1].pk}/", {"upgrade_driver": "command",
                                                              "upgrade_command": [sys.executable, str(script), "{cluster}", "{node}", "{version}"]},
                         format="json")
    assert response.status_code == 200 and response.json()["upgrade_driver"] == "command"
    from upgrades import services

    with django_capture_on_commit_callbacks(execute=False):
        plan = services.plan_create(author=operator, name="cmd", target_version="1.31.2", waves=[[clusters[1].pk]])
        assert plan.preflight["ok"], plan.preflight
        plan = services.plan_submit(plan=plan, by=operator)
        plan = services.plan_decide(plan=plan, approver=approver, revision=plan.revision, decision="approve")
        rollout = services.plan_start(plan=plan, by=operator)
    assert drive(rollout).state == "succeeded", Rollout.objects.get(pk=rollout.pk).reason
    assert {n["status"]["nodeInfo"]["kubeletVersion"] for n in sims[1].items("nodes")} == {"v1.31.2"}
    step = rollout.steps.first()
    assert "command:" in step.log and '"status":"upgrading"' in step.log


def test_command_driver_is_off_by_default(fleet, operator, django_capture_on_commit_callbacks):
    clusters, _ = fleet
    from clusters.models import Cluster
    from upgrades import services

    Cluster.objects.filter(pk=clusters[0].pk).update(upgrade_driver="command", upgrade_command=["/bin/true"])
    with django_capture_on_commit_callbacks(execute=False):
        plan = services.plan_create(author=operator, name="cmd", target_version="1.31.2", waves=[[clusters[0].pk]])
    assert any("The command driver is off" in f["message"] for f in plan.preflight["failures"])


def test_system_upgrade_controller_driver_against_the_sandbox(fleet, operator, approver, django_capture_on_commit_callbacks):
    """The sandbox serves the controller's Plan CRD and acts on Plans as the controller would."""
    clusters, sims = fleet
    from clusters.models import Cluster
    from upgrades import services

    Cluster.objects.filter(pk=clusters[2].pk).update(upgrade_driver="system-upgrade-controller")
    with django_capture_on_commit_callbacks(execute=False):
        plan = services.plan_create(author=operator, name="suc", target_version="1.31.2", waves=[[clusters[2].pk]])
        plan = services.plan_submit(plan=plan, by=operator)
        plan = services.plan_decide(plan=plan, approver=approver, revision=plan.revision, decision="approve")
        rollout = services.plan_start(plan=plan, by=operator)
    assert drive(rollout).state == "succeeded", Rollout.objects.get(pk=rollout.pk).reason
    plans = sims[2].items("plans", "system-upgrade")
    assert len(plans) == 3 and all(p["spec"]["version"] == "v1.31.2" for p in plans)
    assert {n["status"]["nodeInfo"]["kubeletVersion"] for n in sims[2].items("nodes")} == {"v1.31.2"}


def test_only_unstarted_plans_are_deleted(approved_plan, operator, viewer, django_capture_on_commit_callbacks):
    from pksweb.models import Event
    from upgrades import services

    assert api_for(viewer).delete(f"/api/upgrade-plans/{approved_plan.pk}/").status_code == 403
    with django_capture_on_commit_callbacks(execute=False):
        services.plan_start(plan=approved_plan, by=operator)
    refused = api_for(operator).delete(f"/api/upgrade-plans/{approved_plan.pk}/")
    assert refused.status_code == 400 and "stays in the audit trail" in str(refused.json())
    with django_capture_on_commit_callbacks(execute=False):
        draft = services.plan_create(author=operator, name="scrap", target_version="1.31.2", waves=approved_plan.waves)
    assert api_for(operator).delete(f"/api/upgrade-plans/{draft.pk}/").status_code == 204
    assert Event.objects.filter(kind="upgrade.plan_deleted", subject_label="scrap").exists()
