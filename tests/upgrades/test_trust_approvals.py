"""Issue 13's regressions on the upgrade side, before a rollout runs: approvals that bind what runs, starts
that are the operator's, preflights that never pass blind, no cluster I/O under a row lock, and plans over
clusters that were removed or changed."""

from __future__ import annotations

import sys
import textwrap
import threading
import time

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import connection, transaction
from django.urls import reverse
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from clusters.kube import Credential
from clusters.models import Cluster, ClusterNode
from clusters.services import cluster_delete, cluster_register, cluster_update
from clusters.sweep import cluster_probe
from pksweb.models import Event
from tests.support.rollouts import drive, rollout_advance, start
from upgrades import services
from upgrades.models import Rollout, UpgradePlan

pytestmark = pytest.mark.django_db


# ---- 3. an approval binds what runs ---------------------------------------------------------------


def test_changing_a_clusters_command_voids_standing_approvals(make_approved, fleet, operator, operator_api, settings):
    settings.PKSWEB_ALLOW_COMMAND_DRIVER = True
    clusters, _ = fleet
    plan = make_approved()
    approved = plan.revision
    response = operator_api.patch(f"/api/clusters/{clusters[1].pk}/", {"upgrade_command": ["/opt/other.sh", "{node}"]}, format="json")
    assert response.status_code == 200
    plan = UpgradePlan.objects.get(pk=plan.pk)
    assert plan.state == "submitted" and plan.revision != approved  # awaits approval again
    assert not plan.approvals.filter(voided=False).exists()
    voided = Event.objects.get(kind="upgrade.plan_voided")
    assert clusters[1].name in voided.message and "upgrade command" in voided.message and "1 approval voided" in voided.message
    with pytest.raises(ValidationError, match="Only an approved plan can start"):
        services.plan_start(plan=plan, by=operator)


@pytest.mark.parametrize("change", ["driver", "server"])
def test_changing_a_clusters_driver_or_server_voids_approvals(make_approved, fleet, operator, sandbox, change,
                                                              django_capture_on_commit_callbacks):
    clusters, sims = fleet
    plan = make_approved()
    with django_capture_on_commit_callbacks(execute=False):
        if change == "driver":
            cluster_update(cluster=clusters[0], updated_by=operator, upgrade_driver="system-upgrade-controller")
        else:  # the same cluster behind another address (its identity, the kube-system UID, is the same)
            credential = Credential(server=sandbox.server_url(sims[0].name).replace("127.0.0.1", "localhost"), token=sims[0].token,
                                    ca_data=sandbox.ca_pem)
            cluster_update(cluster=clusters[0], updated_by=operator, credential=credential)
    plan = UpgradePlan.objects.get(pk=plan.pk)
    assert plan.state == "submitted" and not plan.approvals.filter(voided=False).exists()
    assert ("upgrade driver" if change == "driver" else "API server") in Event.objects.get(kind="upgrade.plan_voided").message


@pytest.mark.parametrize("trust", [{"insecure_skip_tls_verify": True}, {"ca_data": "sandbox", "tls_server_name": "localhost"}])
def test_changing_whom_a_credential_trusts_voids_approvals(make_approved, fleet, operator, sandbox, trust,
                                                           django_capture_on_commit_callbacks):
    """Same server, same cluster, same token; but pksweb would now believe another certificate is the server."""
    clusters, sims = fleet
    plan = make_approved()
    trust = {**trust, "ca_data": sandbox.ca_pem} if "ca_data" in trust else trust
    with django_capture_on_commit_callbacks(execute=False):
        cluster_update(cluster=clusters[0], updated_by=operator,
                       credential=Credential(server=sandbox.server_url(sims[0].name), token=sims[0].token, **trust))
    plan = UpgradePlan.objects.get(pk=plan.pk)
    assert plan.state == "submitted" and not plan.approvals.filter(voided=False).exists()
    assert "TLS trust" in Event.objects.get(kind="upgrade.plan_voided").message


def test_a_rotated_token_with_the_same_trust_keeps_approvals(make_approved, fleet, operator, sandbox,
                                                              django_capture_on_commit_callbacks):
    clusters, sims = fleet
    plan = make_approved()
    token = sims[0].add_user("pksweb-rotated", groups=["system:masters"])
    with django_capture_on_commit_callbacks(execute=False):
        cluster_update(cluster=clusters[0], updated_by=operator,
                       credential=Credential(server=sandbox.server_url(sims[0].name), token=token, ca_data=sandbox.ca_pem))
    plan = UpgradePlan.objects.get(pk=plan.pk)
    assert plan.state == "approved" and not Event.objects.filter(kind="upgrade.plan_voided").exists()


def test_a_running_rollout_halts_when_the_trust_changed_under_it(make_approved, fleet, operator, sandbox,
                                                                  django_capture_on_commit_callbacks):
    """Changed behind the service's back (as a restore of an older row would): the engine itself refuses."""
    clusters, _ = fleet
    plan = make_approved(waves=[[clusters[0].pk]], health_gate=False)
    rollout = start(plan, operator, django_capture_on_commit_callbacks)
    Cluster.objects.filter(pk=clusters[0].pk).update(trust="0" * 64)
    rollout = drive(rollout)
    assert rollout.state == "halted" and "TLS trust" in rollout.reason


def _upgrade_script(tmp_path):
    """A command driver that replaces a sandbox node the way an operator's script would call an API,
    with the KUBECONFIG pksweb gives it, and notes each node it touched."""
    script = tmp_path / "upgrade-node.py"
    script.write_text(textwrap.dedent(f"""
        import base64, json, os, ssl, sys, urllib.request
        import yaml
        node, version, marker = sys.argv[1], sys.argv[2], {str(tmp_path / 'ran.txt')!r}
        config = yaml.safe_load(open(os.environ["KUBECONFIG"]))
        cluster, user = config["clusters"][0]["cluster"], config["users"][0]["user"]
        context = ssl.create_default_context()
        if cluster.get("certificate-authority-data"):
            context.load_verify_locations(cadata=base64.b64decode(cluster["certificate-authority-data"]).decode())
        request = urllib.request.Request(cluster["server"] + "/sandbox/nodes/" + node + "/upgrade",
                                         data=json.dumps({{"version": version, "delay": 0.05}}).encode(), method="POST",
                                         headers={{"Authorization": "Bearer " + user["token"], "Content-Type": "application/json"}})
        urllib.request.urlopen(request, context=context if cluster["server"].startswith("https") else None).read()
        open(marker, "a").write(" ".join(sys.argv[1:]) + "\\n")
    """))
    return script


def test_a_running_rollout_halts_before_running_a_changed_command(make_approved, fleet, operator, settings, tmp_path,
                                                                  django_capture_on_commit_callbacks):
    settings.PKSWEB_ALLOW_COMMAND_DRIVER = True
    clusters, _ = fleet
    script = _upgrade_script(tmp_path)
    with django_capture_on_commit_callbacks(execute=False):
        for cluster in clusters:
            cluster_update(cluster=cluster, updated_by=operator, upgrade_driver="command",
                           upgrade_command=[sys.executable, str(script), "{node}", "{version}"])
    plan = make_approved(waves=[[clusters[0].pk]], health_gate=False)
    rollout = start(plan, operator, django_capture_on_commit_callbacks)
    ran = tmp_path / "ran.txt"
    deadline = time.monotonic() + 30
    while not (ran.exists() and ran.read_text().count("\n") >= 1) and time.monotonic() < deadline:
        rollout_advance(rollout_id=rollout.pk)
        time.sleep(0.02)
    assert ran.read_text().count("\n") == 1  # the control plane went through the approved command
    with django_capture_on_commit_callbacks(execute=False):
        cluster_update(cluster=clusters[0], updated_by=operator,
                       upgrade_command=[sys.executable, str(script), "{node}", "{version}", "--changed-after-approval"])
    rollout = drive(rollout)
    assert rollout.state == "halted"
    assert "upgrade command changed after revision" in rollout.reason and "pksweb runs only what was approved" in rollout.reason
    assert "--changed-after-approval" not in ran.read_text() and ran.read_text().count("\n") == 1


# ---- 4. starting is the operator's job ----------------------------------------------------------------


def test_an_approver_cannot_start_even_inside_the_window(approved_plan, approver):
    from rest_framework.test import APIClient

    from pksweb import services as core_services

    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Token {core_services.api_token_get_or_create(user=approver)}")
    response = api.post(f"/api/upgrade-plans/{approved_plan.pk}/start/", {"outside_window_reason": "because"}, format="json")
    assert response.status_code == 403 and "Only operators start" in str(response.json())
    assert not Rollout.objects.exists()


def test_a_reason_given_inside_the_window_is_recorded(approved_plan, operator, django_capture_on_commit_callbacks):
    rollout = start(approved_plan, operator, django_capture_on_commit_callbacks, outside_window_reason="CVE-2026-1234 fix")
    assert rollout.start_reason == "CVE-2026-1234 fix" and rollout.outside_window_reason == ""  # the window still applies
    assert "(reason given: CVE-2026-1234 fix)" in Event.objects.get(kind="rollout.started").message


# ---- 6. a preflight that could not look fails ---------------------------------------------------------


GROUPS = {"kind": "APIGroupList", "apiVersion": "v1", "groups": [
    {"name": "flowcontrol.apiserver.k8s.io", "versions": [{"groupVersion": "flowcontrol.apiserver.k8s.io/v1beta3", "version": "v1beta3"}],
     "preferredVersion": {"groupVersion": "flowcontrol.apiserver.k8s.io/v1beta3", "version": "v1beta3"}}]}


@pytest.fixture
def on_131(sandbox, operator, django_capture_on_commit_callbacks):
    sim = sandbox.add_cluster(f"flow-{time.monotonic_ns()}", version="1.31.2", nodes=2, pods_per_node=1)
    with django_capture_on_commit_callbacks(execute=False):
        cluster = cluster_register(name=sim.name[:63], created_by=operator, check=False,
                                   credential=Credential(server=sandbox.server_url(sim.name), token=sim.token,
                                                         ca_data=sandbox.ca_pem))
        Cluster.objects.filter(pk=cluster.pk).update(upgrade_driver="sandbox")
        cluster = cluster_probe(cluster=Cluster.objects.get(pk=cluster.pk))
    yield cluster, sim
    sandbox.remove_cluster(sim.name)


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(status=st.sampled_from([401, 403, 404, 429, 500, 503]), message=st.text(max_size=2000))
def test_removed_api_counts_that_fail_are_failures(on_131, operator, status, message):
    cluster, sim = on_131
    path = "/apis/flowcontrol.apiserver.k8s.io/v1beta3/flowschemas"
    sim.faults.clear()
    sim.faults.update({"answers": [
        {"path": "/apis", "body": GROUPS},
        {"path": path, "status": status, "body": {"kind": "Status", "apiVersion": "v1", "status": "Failure", "message": message,
                                                  "code": status}}]})
    plan = services.plan_create(author=operator, name="to 1.32", target_version="1.32.0", waves=[[cluster.pk]])
    found = [f for f in plan.preflight["failures"] if f["check"] == "removed-api"]
    if status == 404:  # not served: nothing to count
        assert not found
    else:
        assert found and "Could not count flowschemas" in found[0]["message"] and f"({status}" in found[0]["message"], found
        assert len(found[0]["message"]) <= 1000 and plan.preflight["ok"] is False


# ---- 9. no cluster I/O under a row lock ---------------------------------------------------------------


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_preflight_runs_without_holding_the_plans_row(sandbox, operator, approver):
    if connection.vendor != "postgresql":
        pytest.skip("row locks are PostgreSQL's: SQLite has no SELECT ... FOR UPDATE")
    sim = sandbox.add_cluster(f"locks-{time.monotonic_ns()}", nodes=3, pods_per_node=2)
    cluster = cluster_register(name="locks", created_by=operator, check=False,
                               credential=Credential(server=sandbox.server_url(sim.name), token=sim.token,
                                                     ca_data=sandbox.ca_pem))
    Cluster.objects.filter(pk=cluster.pk).update(upgrade_driver="sandbox")
    cluster_probe(cluster=Cluster.objects.get(pk=cluster.pk))
    plan = services.plan_create(author=operator, name="locks", target_version="1.31.2", waves=[[cluster.pk]])
    sim.faults.update({"latency_ms": 400})  # every cluster call takes a while
    seen: list[str] = []
    done = threading.Event()

    def lock_meanwhile():
        time.sleep(0.3)
        try:
            while not done.is_set():
                with transaction.atomic():
                    # The write at the end holds the row for milliseconds; a preflight (each call 400 ms) would hold it for seconds.
                    with connection.cursor() as cursor:
                        cursor.execute("SET LOCAL lock_timeout = '300ms'")
                    UpgradePlan.objects.select_for_update().get(pk=plan.pk)
                seen.append("locked")
                time.sleep(0.1)
        except Exception as exc:  # noqa: BLE001 - what we look for is exactly a lock that could not be had
            seen.append(f"refused: {exc}")
        finally:
            connection.close()

    other = threading.Thread(target=lock_meanwhile)
    other.start()
    try:
        submitted = services.plan_submit(plan=plan, by=operator)
    finally:
        done.set()
        other.join()
        sandbox.remove_cluster(sim.name)
    assert submitted.state == "submitted"
    assert seen and all(s == "locked" for s in seen), seen


@pytest.mark.parametrize("history", [False, True], ids=["deleted", "archived"])
def test_a_plan_whose_cluster_was_removed_never_runs_as_if_it_had_upgraded_it(make_approved, fleet, operator, approver, history,
                                                                             django_capture_on_commit_callbacks):
    """Removed before start, the cluster voids the plan's approvals; approved again, the plan still cannot start
    (a rollout of its other clusters, or of nothing, would say every node runs the target)."""
    clusters, _ = fleet
    if history:  # a cluster that took part in a rollout is archived, not deleted
        rollout = start(make_approved(waves=[[clusters[0].pk]]), operator, django_capture_on_commit_callbacks)
        with django_capture_on_commit_callbacks(execute=False):
            services.rollout_abort(rollout=rollout, by=operator)
    plan = make_approved(name="canary only", waves=[[clusters[0].pk]])
    with django_capture_on_commit_callbacks(execute=False):
        cluster_delete(cluster=clusters[0], deleted_by=operator)
    plan = UpgradePlan.objects.get(pk=plan.pk)
    assert plan.state == "submitted" and not plan.approvals.filter(voided=False).exists()
    voided = Event.objects.filter(kind="upgrade.plan_voided").latest("pk")
    assert f"{clusters[0].name} was removed from pksweb" in voided.message
    named = clusters[0].name if history else f"#{clusters[0].pk}"  # an archived cluster keeps its name
    with pytest.raises(ValidationError, match=f"{named} was removed from pksweb: this plan cannot run as written"):
        services.plan_decide(plan=plan, approver=approver, revision=plan.revision, decision="approve")
    # Approved before the check existed (or by a quorum that was complete): the start refuses it all the same.
    UpgradePlan.objects.filter(pk=plan.pk).update(state="approved")
    with django_capture_on_commit_callbacks(execute=False), pytest.raises(ValidationError, match=f"Cluster {named} is no longer in pksweb"):
        services.plan_start(plan=UpgradePlan.objects.get(pk=plan.pk), by=operator)
    assert not Rollout.objects.filter(plan=plan).exists()


def test_a_plan_over_clusters_with_no_nodes_seen_fails_preflight(fleet, operator, django_capture_on_commit_callbacks):
    clusters, _ = fleet
    ClusterNode.objects.filter(cluster=clusters[0]).delete()
    with django_capture_on_commit_callbacks(execute=False):
        plan = services.plan_create(author=operator, name="empty", target_version="1.31.2", waves=[[clusters[0].pk]])
    assert not plan.flight_plan and any("no nodes to upgrade" in f["message"] for f in plan.preflight["failures"])
    with pytest.raises(ValidationError, match="no nodes to upgrade"):
        services.plan_submit(plan=plan, by=operator)


@pytest.mark.parametrize("field, value", [("soak_seconds", 10**19), ("drain_timeout_seconds", 10**12),
                                          ("node_ready_timeout_seconds", 0), ("max_unavailable", 10**9), ("quorum", 10**6)])
def test_plan_numbers_out_of_range_are_refused_in_words(fleet, operator, field, value):
    clusters, _ = fleet
    with pytest.raises(ValidationError) as refused:
        services.plan_create(author=operator, name="x", target_version="1.31.2", waves=[[clusters[0].pk]], **{field: value})
    assert field in refused.value.message_dict and "at most" in refused.value.message_dict[field][0]


def test_an_approver_may_not_start_a_plan_through_the_service(approved_plan, approver):
    with pytest.raises(PermissionDenied):
        services.plan_start(plan=approved_plan, by=approver)


def test_a_second_plan_over_a_cluster_in_a_rollout_cannot_start(make_approved, fleet, operator, django_capture_on_commit_callbacks):
    clusters, _ = fleet
    first = start(make_approved(), operator, django_capture_on_commit_callbacks)
    second = make_approved(name="another", target_version="1.31.3", waves=[[clusters[0].pk]])
    with pytest.raises(ValidationError, match=f"Cluster {clusters[0].name} is taken: rollout #{first.pk}"):
        start(second, operator, django_capture_on_commit_callbacks)
    assert Rollout.objects.count() == 1


WORDLESS_TEXT = st.text(alphabet=st.one_of(st.sampled_from("\u115f\u1160\u3164\uffa0\u200b\u202e\u2800\u00a0\ufeff. \t\n"),
                                          st.characters(categories=["Zs", "Zl", "Zp", "Cf", "Cc", "Mn", "Me", "Po", "Pd"])),
                        min_size=1, max_size=20)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(reason=WORDLESS_TEXT)
def test_an_invisible_reason_is_no_reason(make_approved, operator, reason, django_capture_on_commit_callbacks):
    from datetime import timedelta

    from django.utils import timezone

    now = timezone.now()
    plan = make_approved(window_start=now + timedelta(hours=1), window_end=now + timedelta(hours=2))
    with pytest.raises(ValidationError, match="say why"):
        start(plan, operator, django_capture_on_commit_callbacks, outside_window_reason=reason)
    assert not Rollout.objects.exists()


def test_a_shortened_revision_is_asked_for_whole(fleet, operator, approver, django_capture_on_commit_callbacks):
    clusters, _ = fleet
    with django_capture_on_commit_callbacks(execute=False):
        plan = services.plan_submit(plan=services.plan_create(author=operator, name="p", target_version="1.31.2",
                                                              waves=[[clusters[0].pk]]), by=operator)
    with pytest.raises(ValidationError, match="Give the whole revision you reviewed"):
        services.plan_decide(plan=plan, approver=approver, revision=plan.revision[:8], decision="approve")
    with pytest.raises(ValidationError) as other:  # another revision is quoted as its start, never the marker's tail
        services.plan_decide(plan=plan, approver=approver, revision="abcdefghijklmnopqrstuvwxyz", decision="approve")
    assert "you saw abcdefghijklmnop…, it is now " in str(other.value)


def test_a_preflight_of_an_older_revision_says_so(make_approved, fleet, operator, op_client, django_capture_on_commit_callbacks):
    clusters, _ = fleet
    plan = make_approved()
    with django_capture_on_commit_callbacks(execute=False):
        cluster_update(cluster=clusters[0], updated_by=operator, upgrade_driver="system-upgrade-controller")
    page = op_client.get(reverse("upgrades:plan", args=[plan.pk])).content.decode()
    assert 'id="preflight-stale"' in page and "pksweb runs it again" in page


def test_a_node_added_after_approval_voids_it_and_success_is_only_said_when_true(make_approved, fleet, operator,
                                                                                   django_capture_on_commit_callbacks):
    """A node that joined after approval is not in the approved flight plan: the start is refused (the plan awaits
    approval of the fleet as it is), and a rollout never says every node runs the target while one does not."""
    clusters, sims = fleet
    plan = make_approved(waves=[[clusters[0].pk]], health_gate=False)
    node = sims[0].get("nodes", "", f"{sims[0].name}-w-2")
    sims[0].create("nodes", {**node, "metadata": {"name": f"{sims[0].name}-w-99", "labels": node["metadata"].get("labels", {})},
                             "spec": {}})
    cluster_probe(cluster=Cluster.objects.get(pk=clusters[0].pk))
    with pytest.raises(ValidationError, match="fleet changed since the plan was approved"):
        start(plan, operator, django_capture_on_commit_callbacks)
    assert UpgradePlan.objects.get(pk=plan.pk).state == "submitted"
