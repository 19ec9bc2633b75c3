"""Issue 13's regressions on the fleet side: a dial tone that tells the truth whatever the cluster says,
one identity per cluster, no stuck operations or sweeps, removals without 500s, bounded words."""

from __future__ import annotations

import time

import pytest
import yaml
from django.urls import reverse
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from clusters import crypto, operations, services, sweep
from clusters.connect import gateway_for
from clusters.kube import Credential, drain
from clusters.models import Cluster, ClusterNode, NodeOperation
from pksweb.models import Event, Lease
from tests.support.kubeconfigs import kubeconfig_text
from tests.support.waits import wait_for

pytestmark = pytest.mark.django_db


def _worker(cluster: Cluster) -> str:
    return next(n.name for n in ClusterNode.objects.filter(cluster=cluster).order_by("name") if not n.is_control_plane)


def _bounded_events():
    return all(len(e.message) <= 500 for e in Event.objects.all())


# ---- 2. a dial tone that lies --------------------------------------------------------------


def test_a_cluster_answering_500_with_a_long_message_is_recorded_not_healthy(op_client, registered, sandbox_cluster):
    assert registered.status == "healthy"
    sandbox_cluster.faults.update({"error_rate": 1.0, "fail_message": "das Netz ist kaputt — " + "é" * 3000})
    response = op_client.post(reverse("clusters:probe", args=[registered.pk]), HTTP_HX_REQUEST="true")
    assert response.status_code == 200  # "Probe now" answered 500 before
    cluster = Cluster.objects.get(pk=registered.pk)
    assert cluster.status == "unreachable"
    reason = cluster.reasons[0]
    assert "The API server failed (50" in reason and "das Netz ist kaputt" in reason and "more characters cut]" in reason
    assert len(reason) <= 500
    changed = Event.objects.filter(kind="cluster.status_changed").latest("id")
    assert "unreachable" in changed.message and len(changed.message) <= 500
    assert "das Netz ist kaputt" in response.content.decode()  # the reason is shown, cut


def test_the_sweep_records_what_it_saw_however_long_the_words(registered, sandbox_cluster):
    sandbox_cluster.faults.update({"fail_next": 9, "fail_status": 500, "fail_message": "x" * 100_000})
    report = sweep.fleet_sweep(workers=2)
    assert report.failures == [] and report.probed == 1
    cluster = Cluster.objects.get(pk=registered.pk)
    assert cluster.status == "unreachable" and all(len(r) <= 500 for r in cluster.reasons)
    assert _bounded_events()


# ---- the length cases, also on PostgreSQL ------------------------------------------------------


@pytest.mark.postgres
def test_long_versions_and_names_fit_their_columns(op_client, registered, sandbox_cluster):
    """A vendor version of 120 characters and a node name of 253 (the most Kubernetes allows) are stored, cut where
    a column is shorter, and shown; on PostgreSQL a value too long for its column would be a database error."""
    long_version = "v1.30.4+" + "vendor.build-12345." * 6
    sandbox_cluster.faults.update({"answers": [{"path": "/version", "body": {
        "major": "1", "minor": "30", "gitVersion": long_version, "gitCommit": "0" * 40, "gitTreeState": "clean",
        "buildDate": "2024-01-01T00:00:00Z", "goVersion": "go1.22.5", "compiler": "gc", "platform": "linux/amd64"}}]})
    name = ".".join(["a" * 63, "b" * 63, "c" * 63, "d" * 61])
    assert len(name) == 253
    sandbox_cluster.add_node(name, version="1.30.4-" + "k" * 120, labels={"kubernetes.io/hostname": "long-named-node"})
    sandbox_cluster.make_ready_now()
    probed = sweep.cluster_probe(cluster=registered)
    assert probed.version.startswith("1.30.4+vendor.build-12345.") and len(probed.version) <= 100
    assert probed.version.endswith("more characters cut]")
    node = ClusterNode.objects.get(cluster=registered, name=name)
    assert len(node.kubelet_version) <= 100 and node.kubelet_version.startswith("v1.30.4-kkk")
    page = op_client.get(reverse("clusters:detail", args=[registered.pk])).content.decode()
    assert name in page and "1.30.4+vendor.build-12345." in page


@pytest.mark.postgres
def test_a_reason_with_nul_bytes_and_any_script_is_stored(registered, sandbox_cluster):
    sandbox_cluster.faults.update({"fail_next": 9, "fail_status": 503, "fail_message": "nul\x00byte \U0001f525 " + "ж" * 600})
    probed = sweep.cluster_probe(cluster=registered)
    assert probed.status == "unreachable" and "\x00" not in probed.reasons[0] and "ж" in probed.reasons[0]


# ---- 12. one cluster, one registration -------------------------------------------------------------


def test_the_same_cluster_is_registered_once(operator_api, sandbox, sandbox_cluster, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False):
        first = operator_api.post("/api/clusters/", {"name": "prod-eu", "kubeconfig": kubeconfig_text(sandbox, sandbox_cluster.name)},
                                  format="json")
        again = operator_api.post("/api/clusters/", {"name": "prod-eu-again", **sandbox.credential(sandbox_cluster.name)},
                                  format="json")
    assert first.status_code == 201
    uid = Cluster.objects.get(name="prod-eu").uid
    assert uid == sandbox_cluster.get("namespaces", "", "kube-system")["metadata"]["uid"]
    assert again.status_code == 400
    message = " ".join(again.json()["server"])
    assert "prod-eu" in message and uid in message and "registers each cluster once" in message
    assert Cluster.objects.count() == 1


def test_a_credential_for_another_cluster_is_refused(operator_api, registered, sandbox):
    other = sandbox.add_cluster(f"{registered.name}-other", nodes=1)
    try:
        response = operator_api.patch(f"/api/clusters/{registered.pk}/", sandbox.credential(other.name), format="json")
    finally:
        sandbox.remove_cluster(other.name)
    assert response.status_code == 400 and "reaches a different cluster" in str(response.json())
    assert Cluster.objects.get(pk=registered.pk).server == sandbox.server_url(registered.name)


def test_a_cluster_registered_unchecked_gets_its_identity_from_the_first_probe(sandbox, sandbox_cluster, operator,
                                                                               django_capture_on_commit_callbacks):
    credential = Credential.from_dict(sandbox.credential(sandbox_cluster.name))
    with django_capture_on_commit_callbacks(execute=False):
        first = services.cluster_register(name="bulk-1", credential=credential, created_by=operator, check=False)
        twin = services.cluster_register(name="bulk-2", credential=credential, created_by=operator, check=False)
    sweep.cluster_probe(cluster=first)
    twin = sweep.cluster_probe(cluster=Cluster.objects.get(pk=twin.pk))
    assert Cluster.objects.get(pk=first.pk).uid and not twin.uid
    assert twin.status == "degraded" and "same cluster as bulk-1" in twin.reasons[0]


# ---- 11. answers that say too much --------------------------------------------------------------


def test_an_internal_services_error_body_is_not_reflected_whole(operator_api, sandbox, sandbox_cluster):
    page = "<html>" + "upstream proxy error; " * 200 + "</html>"
    sandbox_cluster.faults.update({"answers": [{"path": "/version", "status": 502, "body": page}]})
    response = operator_api.post("/api/clusters/", {"name": "proxied", **sandbox.credential(sandbox_cluster.name)}, format="json")
    assert response.status_code == 400
    message = " ".join(response.json()["server"])
    assert "(502)" in message and "more characters cut]" in message and len(message) < 700


# ---- 10. removing a cluster never answers 500 (history: see tests/upgrades/test_trust.py) ------------


def test_removing_a_cluster_without_history_deletes_it(op_client, registered):
    assert op_client.post(reverse("clusters:delete", args=[registered.pk])).status_code == 302
    assert not Cluster.all_objects.filter(pk=registered.pk).exists()
    assert Event.objects.filter(kind="cluster.deleted").exists()


# ---- 5. no stuck work ---------------------------------------------------------------------------------


class WorkerDied(BaseException):
    """What a SIGKILL looks like from inside: the work stops where it is, nothing is recorded after."""


def _die(seconds: float) -> None:
    raise WorkerDied


def _blocked_drain(cluster, sim, operator, capture) -> NodeOperation:
    """A drain queued on a worker node whose pods every PodDisruptionBudget protects."""
    sim.faults.update({"frozen_pdbs": ["*"]})
    sim.refresh_budgets()
    with capture(execute=False):
        return operations.node_operation_start(cluster=cluster, node=_worker(cluster), kind="drain", requested_by=operator)


def test_a_drain_whose_worker_died_is_taken_over_then_finished(registered, sandbox_cluster, operator, settings,
                                                                django_capture_on_commit_callbacks):
    settings.PKSWEB_OPERATION_LEASE_SECONDS = 1
    operation = _blocked_drain(registered, sandbox_cluster, operator, django_capture_on_commit_callbacks)
    with pytest.raises(WorkerDied):
        operations.node_operation_execute(operation_id=operation.pk, sleep=_die)
    assert NodeOperation.objects.get(pk=operation.pk).state == "running"
    assert operations.node_operations_reap()["taken_over"] == 0  # its lease still runs
    time.sleep(1.1)
    with django_capture_on_commit_callbacks(execute=False) as queued:
        assert operations.node_operations_reap()["taken_over"] == 1
    assert queued, "the operation is queued again"
    taken = Event.objects.get(kind="cluster.operation_taken_over")
    assert "the worker running it stopped" in taken.message and "attempt 2 of 3" in taken.message
    sandbox_cluster.faults.update({"frozen_pdbs": []})
    sandbox_cluster.refresh_budgets()
    finished = operations.node_operation_execute(operation_id=operation.pk)
    assert finished.state == "succeeded" and finished.attempts == 2


def test_an_operation_that_keeps_dying_fails_with_its_reason_and_frees_the_node(registered, sandbox_cluster, operator, settings,
                                                                                 django_capture_on_commit_callbacks):
    settings.PKSWEB_OPERATION_LEASE_SECONDS = 0.2
    operation = _blocked_drain(registered, sandbox_cluster, operator, django_capture_on_commit_callbacks)
    node = operation.node
    with django_capture_on_commit_callbacks(execute=False):
        for _ in range(operations.MAX_ATTEMPTS):
            with pytest.raises(WorkerDied):
                operations.node_operation_execute(operation_id=operation.pk, sleep=_die)
            time.sleep(0.25)
            operations.node_operations_reap()
    failed = NodeOperation.objects.get(pk=operation.pk)
    assert failed.state == "failed" and "stopped" in failed.report and "gave up" in failed.report and "cordoned" in failed.report
    with django_capture_on_commit_callbacks(execute=False):  # the unique constraint no longer blocks the node
        operations.node_operation_start(cluster=registered, node=node, kind="uncordon", requested_by=operator)


def test_a_queued_operation_whose_task_was_lost_is_queued_again(registered, operator, settings, django_capture_on_commit_callbacks):
    settings.PKSWEB_OPERATION_LEASE_SECONDS = 0.1
    with django_capture_on_commit_callbacks(execute=False):
        operation = operations.node_operation_start(cluster=registered, node=_worker(registered), kind="cordon", requested_by=operator)
    time.sleep(0.15)
    assert operations.node_operations_reap()["requeued"] == 1
    assert operations.node_operations_reap()["requeued"] == 0  # backs off: not every few seconds
    assert operations.node_operation_execute(operation_id=operation.pk).state == "succeeded"


def test_a_long_sweep_keeps_its_lease(registered, sandbox, operator, settings, django_capture_on_commit_callbacks):
    """A sweep longer than its lease renews it: no second sweep starts beside it."""
    settings.PKSWEB_SWEEP_LEASE_SECONDS = 1
    settings.PKSWEB_HEALTH_INTERVAL = 0.2
    with django_capture_on_commit_callbacks(execute=False):
        for i in range(3):
            services.cluster_register(name=f"{registered.name}-x{i}", created_by=operator, check=False,
                                      credential=Credential(server=sandbox.server_url(registered.name), token="t", ca_data=sandbox.ca_pem))
    seen: list[tuple[bool, bool]] = []

    def slow(cluster):
        time.sleep(0.5)
        lease = Lease.objects.get(name=sweep.SWEEP_LEASE)
        second = sweep.fleet_sweep(workers=1).skipped
        seen.append((lease.expires_at > timezone.now(), second))

    report = sweep.fleet_sweep(workers=1, on_result=slow)
    assert report.probed == 4 and len(seen) == 4
    assert all(held and skipped for held, skipped in seen), seen


def test_renewal_stops_work_taken_over():
    from pksweb.leases import LeaseLost, Renewal

    answers = iter([True, False])
    renewal = Renewal(lambda: next(answers), seconds=0.04, what="the drain of n1")
    renewal.keep()  # not due yet
    time.sleep(0.02)
    renewal.keep()  # renewed
    time.sleep(0.02)
    with pytest.raises(LeaseLost, match="the drain of n1 was taken over"):
        renewal.keep()


def test_an_answer_missing_fields_is_degraded_and_said_in_words(registered, sandbox_cluster):
    """The API answers, but a node lacks what every API server gives: the cluster is there and broken (degraded),
    and the reason names the fields, not the client library's validation report."""
    sandbox_cluster.faults.update({"answers": [{"path": "/api/v1/nodes", "body": {
        "kind": "NodeList", "apiVersion": "v1", "metadata": {},
        "items": [{"metadata": {"name": "n1"}, "status": {"nodeInfo": {"kubeletVersion": "v1.30.4"}}}]}}]})
    probed = sweep.cluster_probe(cluster=registered)
    assert probed.status == "degraded"
    reason = probed.reasons[0]
    assert "could not read while trying to list nodes" in reason and "V1NodeSystemInfo missing or invalid" in reason
    assert "pydantic" not in reason and len(reason) <= 500


@pytest.mark.parametrize(("answer", "says"), [
    ({"path": "/api/v1/nodes", "body": {"kind": "NodeList", "apiVersion": "v1", "metadata": {}, "items": {"a": 1}}},
     "the answer held the text 'a' where a V1Node belongs"),
    ({"path": "/*", "body": "<html>not json</html>", "content_type": "text/html"},
     "the answer held the text '<html>not json</html>' where a VersionInfo belongs"),
])
def test_an_answer_of_the_wrong_shape_says_what_came(registered, sandbox_cluster, answer, says):
    """Not an object of the kind at all: the reason says what came instead, never '1 field(s) missing (?)'."""
    sandbox_cluster.faults.update({"answers": [answer]})
    reason = sweep.cluster_probe(cluster=registered).reasons[0]
    assert says in reason and "(?)" not in reason, reason


def test_a_credential_that_comes_to_reach_another_cluster_is_noticed(op_client, registered, sandbox, operator,
                                                                      django_capture_on_commit_callbacks):
    """A proxy or DNS name in front of a cluster moves to another cluster: the probe notices (another version or
    other nodes make it read the identity), records nothing of the other cluster, and no node of it is touched."""
    other = sandbox.add_cluster(f"{registered.name}-elsewhere", version="1.31.2", nodes=3)
    try:
        # The stored credential now leads to the other cluster, as a moved proxy would make it.
        Cluster.objects.filter(pk=registered.pk).update(credential_sealed=crypto.seal(sandbox.credential(other.name)))
        before = ClusterNode.objects.filter(cluster=registered).count()
        probed = sweep.cluster_probe(cluster=Cluster.objects.get(pk=registered.pk))
        assert probed.status == "unreachable" and "now reaches a different cluster" in probed.reasons[0]
        assert probed.version == registered.version and ClusterNode.objects.filter(cluster=registered).count() == before
        with django_capture_on_commit_callbacks(execute=False):
            operation = operations.node_operation_start(cluster=probed, node=_worker(probed), kind="cordon", requested_by=operator)
        done = operations.node_operation_execute(operation_id=operation.pk)
        assert done.state == "failed" and "now reaches a different cluster" in done.report
        assert not any(n["spec"].get("unschedulable") for n in other.items("nodes"))
    finally:
        sandbox.remove_cluster(other.name)


def test_a_password_in_the_server_url_is_refused_and_never_shown(operator_api, sandbox, sandbox_cluster):
    server = sandbox.server_url(sandbox_cluster.name).replace("https://", "https://admin:SECRET-CANARY-URLPW@")
    response = operator_api.post("/api/clusters/", {"name": "userinfo", "server": server, "token": sandbox_cluster.token,
                                                    "ca_data": sandbox.ca_pem}, format="json")
    assert response.status_code == 400 and "user name or password" in str(response.json())
    assert "SECRET-CANARY-URLPW" not in response.content.decode()
    assert not Cluster.objects.filter(name="userinfo").exists()
    assert not any("SECRET-CANARY-URLPW" in e.message for e in Event.objects.all())


def test_a_drain_never_deletes_a_pod_no_controller_would_recreate(registered, sandbox_cluster, operator,
                                                                   django_capture_on_commit_callbacks):
    """As kubectl drain without --force: a bare pod is named and left alone, the drain stops, the node stays cordoned."""
    node = _worker(registered)
    sandbox_cluster.create("pods", {"metadata": {"name": "bare-pod"}, "spec": {
        "nodeName": node, "containers": [{"name": "c", "image": "busybox"}]}}, "default")
    sandbox_cluster.make_ready_now()
    with django_capture_on_commit_callbacks(execute=False):
        operation = operations.node_operation_start(cluster=registered, node=node, kind="drain", requested_by=operator)
    done = operations.node_operation_execute(operation_id=operation.pk)
    assert done.state == "failed" and "default/bare-pod" in done.report and "no controller" in done.report
    assert sandbox_cluster.get("pods", "default", "bare-pod") is not None
    assert sandbox_cluster.get("nodes", "", node)["spec"].get("unschedulable") is True


def test_a_command_of_any_size_is_refused_in_words(operator_api, registered):
    response = operator_api.patch(f"/api/clusters/{registered.pk}/", {"upgrade_command": ["x"] * 100_000}, format="json")
    assert response.status_code == 400 and "Keep the command to 64 arguments" in str(response.json())


def test_a_status_no_probe_has_confirmed_for_a_while_says_it_is_stale(op_client, operator_api, registered):
    """Found by the hostile review: while every worker was busy, an unreachable cluster stayed "healthy"; pages
    and the API now say when a status is too old to stand for the cluster."""
    Cluster.objects.filter(pk=registered.pk).update(last_probe_at=timezone.now() - timezone.timedelta(minutes=5))
    assert 'class="status status-unknown stale"' in op_client.get(reverse("clusters:fleet")).content.decode()
    assert 'id="probe-stale"' in op_client.get(reverse("clusters:detail", args=[registered.pk])).content.decode()
    assert operator_api.get(f"/api/clusters/{registered.pk}/").json()["probe_stale"] is True
    sweep.cluster_probe(cluster=registered)
    assert operator_api.get(f"/api/clusters/{registered.pk}/").json()["probe_stale"] is False


@pytest.mark.django_db(transaction=True)
def test_in_the_embedded_worker_a_long_drain_does_not_hold_up_the_sweep(registered, sandbox_cluster, operator):
    """Found by the hostile review: with one worker thread, a drain waiting on a budget froze every cluster's dial
    tone for as long as it waited. The embedded worker's own pool (pksweb.embedded.worker_pool) runs them side by side."""
    from celery.contrib.testing.worker import start_worker

    from pksweb.celery import app
    from pksweb.embedded import worker_pool

    sandbox_cluster.faults.update({"frozen_pdbs": ["*"]})
    sandbox_cluster.refresh_budgets()
    app.control.purge()
    with start_worker(app, **worker_pool(), perform_ping_check=False, loglevel="WARNING", shutdown_timeout=30):
        operation = operations.node_operation_start(cluster=registered, node=_worker(registered), kind="drain",
                                                    requested_by=operator, timeout_seconds=15)
        wait_for(lambda: NodeOperation.objects.get(pk=operation.pk).state == "running", timeout=10, what="the drain to start")
        before = Cluster.objects.get(pk=registered.pk).last_probe_at
        from clusters.tasks import probe_cluster

        probe_cluster.delay(registered.pk)
        wait_for(lambda: Cluster.objects.get(pk=registered.pk).last_probe_at > before, timeout=10, what="a probe beside the drain")
        assert NodeOperation.objects.get(pk=operation.pk).state == "running"  # the drain still waits on its budget
        sandbox_cluster.faults.update({"frozen_pdbs": []})
        sandbox_cluster.refresh_budgets()
        wait_for(lambda: NodeOperation.objects.get(pk=operation.pk).state == "succeeded", timeout=30, what="the drain to finish")


# ---- credentials of any text: a refusal in words, never a 500 ------------------------------------

# Text of every kind, and the shapes that reach deepest: PEM armour around anything, URLs with IPv6 brackets.
ANY_TEXT = st.text(max_size=40)
PEM_ARMOURED = ANY_TEXT.map(lambda body: f"-----BEGIN CERTIFICATE-----\n{body}\n-----END CERTIFICATE-----")
SERVERS = st.one_of(ANY_TEXT, st.builds(lambda host, rest: f"https://{host}{rest}",
                                        st.sampled_from(["[::1", "[zz]", "[::1]", "a b", "é.example", "127.0.0.1:99999", "h:-1"]),
                                        ANY_TEXT))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(field=st.sampled_from(["server", "token", "ca_data"]), value=st.one_of(ANY_TEXT, PEM_ARMOURED, SERVERS),
       how=st.sampled_from(["register", "kubeconfig", "replace"]))
def test_a_credential_of_any_text_is_refused_in_words(operator_api, registered, sandbox, sandbox_cluster, field, value, how):
    """The server stays the sandbox's unless the server is what varies, so an accepted field still meets a real
    API server (and is refused there, in words, or reaches it)."""
    credential = {"server": sandbox.server_url(sandbox_cluster.name), "token": sandbox_cluster.token, "ca_data": sandbox.ca_pem,
                  field: value}
    if how == "kubeconfig":
        body = {"name": "fuzzed", "kubeconfig": yaml.safe_dump({
            "apiVersion": "v1", "kind": "Config", "current-context": "c",
            "clusters": [{"name": "c", "cluster": {"server": credential["server"],
                                                   "certificate-authority-data": credential["ca_data"]}}],
            "users": [{"name": "u", "user": {"token": credential["token"]}}],
            "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}]}, allow_unicode=True)}
    else:
        body = {"name": "fuzzed", **credential}
    before = (Cluster.all_objects.count(), crypto.unseal(Cluster.objects.get(pk=registered.pk).credential_sealed))
    if how == "replace":
        body.pop("name")
        response = operator_api.patch(f"/api/clusters/{registered.pk}/", body, format="json")
    else:
        response = operator_api.post("/api/clusters/", body, format="json")
    assert response.status_code in (200, 201, 400), response.content[:500]
    if response.status_code == 400:
        words = str(response.json())
        assert 10 < len(words) < 2_000, words
        assert (Cluster.all_objects.count(), crypto.unseal(Cluster.objects.get(pk=registered.pk).credential_sealed)) == before
    Cluster.all_objects.filter(name="fuzzed").delete()


def test_a_node_deleted_mid_drain_is_a_failed_drain_that_says_so(registered, sandbox_cluster):
    """Pods that went with a deleted node were not evicted: the drain fails, says the node is gone, and lists as
    evicted only what the Eviction API took."""
    sandbox_cluster.faults.update({"frozen_pdbs": ["*"]})  # every budget refuses: nothing can be evicted
    node = _worker(registered)
    on_node = [p for p in gateway_for(registered).pods_on_node(node) if p.owner_kind not in ("DaemonSet", "")]
    assert on_node

    blocked_when_deleted: set[str] = set()
    seen: dict = {}

    def sleep(_: float) -> None:  # between two rounds of evictions, someone deletes the node
        if sandbox_cluster.get("nodes", "", node) is not None:
            blocked_when_deleted.update(seen.get("blocked", {}))
            sandbox_cluster.delete("nodes", "", node)

    try:
        result = drain.node_drain(gateway=gateway_for(registered), node=node, timeout=30, sleep=sleep,
                                  on_progress=lambda message, **state: seen.update(state))
    finally:
        sandbox_cluster.faults.update({"frozen_pdbs": []})
    assert blocked_when_deleted, "the budgets blocked nothing: the test did not test"
    assert not result.ok and f"Node {node} was deleted from the cluster during the drain" in result.report, result.report
    # What the Eviction API did not take (404: it went with the node) is never listed as evicted.
    gone = result.report.split("Gone before pksweb evicted them", 1)[1].split("\n", 1)[0]
    assert blocked_when_deleted - set(result.evicted) and all(key in gone for key in blocked_when_deleted - set(result.evicted))
