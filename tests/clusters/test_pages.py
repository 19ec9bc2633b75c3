"""Fleet and cluster pages, the register/edit forms, and credentials never leaving the server."""

from __future__ import annotations

import logging

import pytest
import yaml
from django.urls import reverse

from clusters.choices import ClusterStatus
from clusters.connect import cluster_credential
from clusters.kube import Credential
from clusters.models import Cluster
from clusters.services import cluster_register
from clusters.sweep import cluster_probe
from pksweb.models import Event
from tests.support.kubeconfigs import kubeconfig_text

pytestmark = pytest.mark.django_db




def make_clusters(n, operator, start=0):
    for i in range(start, start + n):
        cluster = cluster_register(name=f"c{i}", created_by=operator, check=False,
                                   credential=Credential(server=f"https://c{i}.example:6443", token=f"secret-{i}"))
        Cluster.objects.filter(pk=cluster.pk).update(status=[ClusterStatus.HEALTHY, ClusterStatus.DEGRADED][i % 2], version="1.30.4",
                                                     reasons=["x"] if i % 2 else [])


def test_fleet_is_for_the_platform_team(client, tenant_admin):
    client.force_login(tenant_admin)
    assert client.get(reverse("clusters:fleet")).status_code == 403
    assert client.get("/api/clusters/").json()["count"] == 0


def test_fleet_query_count_does_not_grow(op_client, operator, django_assert_max_num_queries, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False):
        make_clusters(3, operator)
    with django_assert_max_num_queries(12) as few:
        response = op_client.get(reverse("clusters:fleet"))
    assert response.status_code == 200
    with django_capture_on_commit_callbacks(execute=False):
        make_clusters(40, operator, start=3)
    with django_assert_max_num_queries(len(few.captured_queries)):
        page = op_client.get(reverse("clusters:fleet")).content.decode()
    assert page.count('<tr id="cluster-') == 43
    assert '<b>43</b> clusters' in page and '<b>22</b> healthy' in page and '<b>21</b> degraded' in page


def test_fleet_filters(op_client, operator, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False):
        make_clusters(4, operator)
    Cluster.objects.filter(name="c3").update(version="1.31.2")
    page = op_client.get(reverse("clusters:fleet"), {"status": "degraded"}).content.decode()
    assert 'id="cluster-' in page and page.count('<tr id="cluster-') == 2
    assert op_client.get(reverse("clusters:fleet"), {"version": "1.31"}).content.decode().count('<tr id="cluster-') == 1
    assert op_client.get(reverse("clusters:fleet"), {"name": "c2"}).content.decode().count('<tr id="cluster-') == 1
    partial = op_client.get(reverse("clusters:fleet"), {"name": "c"}, HTTP_HX_REQUEST="true", HTTP_HX_TARGET="fleet-table")
    assert "<html" not in partial.content.decode() and 'id="fleet-table"' in partial.content.decode()
    api = op_client.get("/api/clusters/", {"status": "healthy"}).json()
    assert sorted(c["name"] for c in api["results"]) == ["c0", "c2"]


def test_register_form_asks_for_a_context(op_client, sandbox, sandbox_cluster, django_capture_on_commit_callbacks):
    config = yaml.safe_load(kubeconfig_text(sandbox, sandbox_cluster.name))
    config["contexts"].append({"name": "other", "context": dict(config["contexts"][0]["context"])})
    config.pop("current-context")
    text = yaml.safe_dump(config)
    first = op_client.post(reverse("clusters:register"), {"name": "two-ctx", "kubeconfig": text})
    assert first.status_code == 400
    body = first.content.decode()
    assert "This kubeconfig has 2 contexts; pick one." in body and '<select name="context"' in body
    with django_capture_on_commit_callbacks(execute=False):
        second = op_client.post(reverse("clusters:register"), {"name": "two-ctx", "kubeconfig": text, "context": "other"})
    assert second.status_code == 302
    assert Cluster.objects.get(name="two-ctx").context == "other"


def test_register_form_upload_and_errors(op_client, sandbox, sandbox_cluster):
    from django.core.files.uploadedfile import SimpleUploadedFile

    upload = SimpleUploadedFile("k.yaml", kubeconfig_text(sandbox, sandbox_cluster.name, denied=True).encode())
    response = op_client.post(reverse("clusters:register"), {"name": "denied", "kubeconfig_file": upload})
    assert response.status_code == 400 and "may not list nodes (403 Forbidden)" in response.content.decode()
    assert not Cluster.objects.exists()


def test_cluster_page_and_live_details(op_client, registered, sandbox_cluster):
    page = op_client.get(reverse("clusters:detail", args=[registered.pk])).content.decode()
    assert f"{sandbox_cluster.name}-w-1" in page and "Drain" in page and 'ws-connect="/ws/clusters/' in page
    live = op_client.get(reverse("clusters:live", args=[registered.pk])).content.decode()
    assert "demo" in live and "Pods per node" in live
    sandbox_cluster.faults.update({"unreachable": True})
    shared = op_client.get(reverse("clusters:live", args=[registered.pk])).content.decode()
    assert "as read at" in shared and "Pods per node" in shared  # one snapshot serves every viewer for a while…
    cluster_probe(cluster=registered)
    down = op_client.get(reverse("clusters:live", args=[registered.pk])).content.decode()
    assert 'id="live-error"' in down and "dropped the connection" in down  # …until the cluster is seen to change


def test_node_operation_from_the_page(op_client, registered, sandbox_cluster, django_capture_on_commit_callbacks):
    url = reverse("clusters:node-operation", args=[registered.pk, f"{sandbox_cluster.name}-w-1", "drain"])
    with django_capture_on_commit_callbacks(execute=False):
        first = op_client.post(url, HTTP_HX_REQUEST="true")
    assert first.status_code == 200 and 'id="operations"' in first.content.decode()
    second = op_client.post(url, HTTP_HX_REQUEST="true")
    assert second.status_code == 400 and "is already queued" in second.content.decode()


def test_viewer_sees_no_operation_buttons(client, viewer, registered):
    client.force_login(viewer)
    page = client.get(reverse("clusters:detail", args=[registered.pk])).content.decode()
    assert "Drain" not in page and "Probe now" not in page
    assert client.post(reverse("clusters:probe", args=[registered.pk])).status_code == 403
    assert client.post(reverse("clusters:delete", args=[registered.pk])).status_code == 403


def test_edit_and_delete_pages(op_client, registered):
    response = op_client.post(reverse("clusters:edit", args=[registered.pk]), {"name": "Bad Name"})
    assert response.status_code == 400 and "DNS-1123" in response.content.decode()
    assert op_client.post(reverse("clusters:edit", args=[registered.pk]), {"name": "renamed"}).status_code == 302
    assert Cluster.objects.get().name == "renamed"
    assert op_client.post(reverse("clusters:delete", args=[registered.pk])).status_code == 302
    assert not Cluster.objects.exists()


def test_credentials_never_leave_the_server(op_client, operator_api, sandbox, sandbox_cluster, caplog, django_capture_on_commit_callbacks):
    caplog.set_level(logging.DEBUG)
    secret_token = sandbox_cluster.token
    second = sandbox.add_cluster(f"{sandbox_cluster.name}-second", nodes=2)
    with django_capture_on_commit_callbacks(execute=True):
        by_config = operator_api.post("/api/clusters/", {"name": "leak-a", "kubeconfig": kubeconfig_text(sandbox, sandbox_cluster.name)},
                                      format="json").json()
        by_token = operator_api.post("/api/clusters/", {"name": "leak-b", "ca_data": sandbox.ca_pem, "server": sandbox.server_url(second.name),
                                                        "token": second.token}, format="json").json()
        twice = operator_api.post("/api/clusters/", {"name": "leak-d", "ca_data": sandbox.ca_pem, "server": sandbox.server_url(sandbox_cluster.name),
                                                     "token": secret_token}, format="json")
        operator_api.post(f"/api/clusters/{by_config['id']}/probe/")
        bad = operator_api.post("/api/clusters/", {"name": "leak-c", "ca_data": sandbox.ca_pem, "server": sandbox.server_url(sandbox_cluster.name),
                                                   "token": secret_token + "x"}, format="json")
    sandbox.remove_cluster(second.name)
    assert twice.status_code == 400 and "leak-a" in twice.content.decode()  # one cluster, registered once
    bodies = [bad.content.decode(), twice.content.decode()]
    for cluster_id in (by_config["id"], by_token["id"]):
        for url in ("/api/clusters/", f"/api/clusters/{cluster_id}/", f"/api/clusters/{cluster_id}/health/",
                    f"/api/clusters/{cluster_id}/nodes/", "/api/events/", "/api/operations/", "/api/schema/"):
            bodies.append(operator_api.get(url).content.decode())
        for name in ("clusters:detail", "clusters:edit", "clusters:live"):
            bodies.append(op_client.get(reverse(name, args=[cluster_id])).content.decode())
    for name in ("clusters:fleet", "activity", "clusters:register"):
        bodies.append(op_client.get(reverse(name)).content.decode())
    assert all(secret_token not in body for body in bodies)
    stored = Cluster.objects.get(name="leak-a").credential_sealed
    assert secret_token not in stored and stored.startswith("gAAAA")  # a Fernet token
    assert all(secret_token not in str(e.payload) + e.message for e in Event.objects.all())
    assert all(secret_token not in record.getMessage() for record in caplog.records)


def test_credential_keys_rotate(operator, sandbox, sandbox_cluster, settings, django_capture_on_commit_callbacks):
    from cryptography.fernet import Fernet
    from django.core.management import call_command


    with django_capture_on_commit_callbacks(execute=False):
        cluster = cluster_register(name="rotating", created_by=operator, check=False,
                                   credential=Credential(server="https://x:6443", token="tok"))
    old_key = settings.PKSWEB_CREDENTIAL_KEYS[0]
    new_key = Fernet.generate_key().decode()
    settings.PKSWEB_CREDENTIAL_KEYS = [new_key, old_key]
    call_command("rotatekeys", stdout=open("/dev/null", "w"))
    settings.PKSWEB_CREDENTIAL_KEYS = [new_key]
    assert cluster_credential(Cluster.objects.get(pk=cluster.pk)).token == "tok"
