"""Registering clusters over real HTTP, and every way it can fail (nothing saved on failure)."""

from __future__ import annotations

import io
import json

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from clusters.connect import cluster_credential
from clusters.models import Cluster
from pksweb.models import Event
from tests.support.kubeconfigs import kubeconfig_text
from tests.support.net import free_port

pytestmark = pytest.mark.django_db


def test_register_from_kubeconfig(operator_api, sandbox, sandbox_cluster, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = operator_api.post("/api/clusters/", {"name": "prod-eu-1", "kubeconfig": kubeconfig_text(sandbox, sandbox_cluster.name)},
                                     format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["name"] == "prod-eu-1" and body["status"] == "unknown" and body["version"] == "1.30.4"
    assert body["server"] == sandbox.server_url(sandbox_cluster.name) and body["context"] == sandbox_cluster.name
    assert set(body) == {"id", "name", "server", "context", "status", "reasons", "version", "nodes_ready", "nodes_total",
                         "warnings", "last_probe_at", "last_probe_ms", "status_since", "created_at", "upgrade_driver", "upgrade_command",
                         "probe_stale"}
    assert Event.objects.filter(kind="cluster.registered", subject_id=str(body["id"])).exists()
    assert len(callbacks) == 2  # the event push and the first probe, both after commit


def test_register_from_server_and_token(operator_api, sandbox, sandbox_cluster):
    response = operator_api.post("/api/clusters/", {"name": "by-token", **sandbox.credential(sandbox_cluster.name)}, format="json")
    assert response.status_code == 201, response.content


def test_sandbox_certificate_is_verified_against_its_ca(operator_api, sandbox, sandbox_cluster):
    """The sandbox serves HTTPS as a real cluster does: without its CA the certificate is not trusted."""
    _refused(operator_api, {"name": "x", "server": sandbox.server_url(sandbox_cluster.name), "token": sandbox_cluster.token},
             "server", "TLS verification of", "CA certificate")


def _refused(client, payload, field, *fragments):
    response = client.post("/api/clusters/", payload, format="json")
    assert response.status_code == 400, response.content
    messages = " ".join(response.json()[field])
    for fragment in fragments:
        assert fragment in messages, messages
    assert not Cluster.objects.exists()
    assert not Event.objects.filter(kind__startswith="cluster.").exists()
    return messages


def test_dns_failure(operator_api):
    _refused(operator_api, {"name": "x", "server": "https://no-such-host.invalid:6443", "token": "t"}, "server",
             "Cannot resolve the API server's host name")


def test_connection_refused(operator_api):
    _refused(operator_api, {"name": "x", "server": f"http://127.0.0.1:{free_port()}", "token": "t"}, "server",
             "was refused: nothing listens at that address and port")


def test_tls_verification_failure(operator_api, tls_server):
    _refused(operator_api, {"name": "x", "server": tls_server, "token": "t"}, "server", "TLS verification of", "CA certificate")


def test_wrong_token_is_401(operator_api, sandbox, sandbox_cluster):
    _refused(operator_api, {"name": "x", **sandbox.credential(sandbox_cluster.name), "token": "wrong"}, "server",
             "refused the credential (401 Unauthorized)")


def test_missing_permission_is_named(operator_api, sandbox, sandbox_cluster):
    _refused(operator_api, {"name": "x", "kubeconfig": kubeconfig_text(sandbox, sandbox_cluster.name, denied=True)}, "kubeconfig",
             "may not list nodes (403 Forbidden)", 'cannot list resource "nodes" in API group ""')


def test_malformed_kubeconfig(operator_api):
    _refused(operator_api, {"name": "x", "kubeconfig": "clusters: [\n"}, "kubeconfig", "not valid YAML (line 2")


def test_exec_plugin_kubeconfig(operator_api, sandbox, sandbox_cluster):
    import yaml

    config = yaml.safe_load(kubeconfig_text(sandbox, sandbox_cluster.name))
    config["users"][0]["user"] = {"exec": {"command": "aws", "args": ["eks", "get-token"]}}
    _refused(operator_api, {"name": "x", "kubeconfig": yaml.safe_dump(config)}, "kubeconfig", "exec plugin (aws)")


def test_unknown_context(operator_api, sandbox, sandbox_cluster):
    _refused(operator_api, {"name": "x", "kubeconfig": kubeconfig_text(sandbox, sandbox_cluster.name), "context": "nope"},
             "context", "Unknown context 'nope'")


def test_neither_or_both(operator_api, sandbox, sandbox_cluster):
    _refused(operator_api, {"name": "x"}, "non_field_errors", "Give a kubeconfig, or a server URL and a bearer token.")
    _refused(operator_api, {"name": "x", "kubeconfig": kubeconfig_text(sandbox, sandbox_cluster.name), "token": "t"},
             "non_field_errors", "either a kubeconfig or a server URL")


def test_bad_name_fails_before_connecting(operator_api):
    _refused(operator_api, {"name": "Prod EU", "server": "https://no-such-host.invalid:6443", "token": "t"}, "name", "DNS-1123")


def test_duplicate_name(operator_api, registered, sandbox, sandbox_cluster):
    response = operator_api.post("/api/clusters/", {"name": registered.name, "kubeconfig": kubeconfig_text(sandbox, sandbox_cluster.name)},
                                 format="json")
    assert response.status_code == 400 and "already" in json.dumps(response.json())
    assert Cluster.objects.count() == 1


@pytest.mark.parametrize("role", ["viewer", "approver", "tenant-admin"])
def test_only_operators_register(users, role, sandbox, sandbox_cluster):
    from rest_framework.test import APIClient

    client = APIClient()
    client.force_login(users[role])
    response = client.post("/api/clusters/", {"name": "x", "kubeconfig": kubeconfig_text(sandbox, sandbox_cluster.name)}, format="json")
    assert response.status_code == 403
    assert not Cluster.objects.exists()


def test_edit_replaces_credential_after_checking_it(operator_api, registered, sandbox, sandbox_cluster):
    bad = operator_api.patch(f"/api/clusters/{registered.pk}/", {**sandbox.credential(sandbox_cluster.name), "token": "wrong"},
                             format="json")
    assert bad.status_code == 400 and "401" in json.dumps(bad.json())

    assert cluster_credential(Cluster.objects.get()).token == sandbox_cluster.token
    good = operator_api.patch(f"/api/clusters/{registered.pk}/", {"name": "renamed", "kubeconfig": kubeconfig_text(
        sandbox, sandbox_cluster.name, readonly=True)}, format="json")
    assert good.status_code == 200 and good.json()["name"] == "renamed"
    assert cluster_credential(Cluster.objects.get()).token == sandbox_cluster.readonly_token


def test_delete_removes_the_credential(operator_api, registered):
    assert operator_api.delete(f"/api/clusters/{registered.pk}/").status_code == 204
    assert not Cluster.objects.exists()
    assert Event.objects.filter(kind="cluster.deleted", subject_label=registered.name).exists()


def test_importclusters_command(tmp_path, sandbox, sandbox_cluster):
    path = tmp_path / "fleet.kubeconfig"
    path.write_text(kubeconfig_text(sandbox, sandbox_cluster.name))
    out = io.StringIO()
    call_command("importclusters", str(path), stdout=out)
    assert f"imported {sandbox_cluster.name}" in out.getvalue()
    assert Cluster.objects.filter(name=sandbox_cluster.name).exists()
    with pytest.raises(CommandError, match="Unknown context 'nope'"):
        call_command("importclusters", str(path), "--context", "nope")
    with pytest.raises(CommandError, match="no such file"):
        call_command("importclusters", str(tmp_path / "missing"))


@pytest.mark.parametrize("part", [{"ca_data": "garbage"}, {"insecure_skip_tls_verify": True}, {"context": "nope"},
                                  {"ca_data": "", "context": ""}])
def test_part_of_a_credential_alone_is_refused_not_dropped(registered, operator_api, part):
    """A CA, a context or a TLS switch means nothing without the credential it belongs to: say so, change nothing."""
    from pksweb.models import Event

    before = Event.objects.count()
    refused = operator_api.patch(f"/api/clusters/{registered.pk}/", part, format="json")
    assert refused.status_code == 400 and set(refused.json()) == set(part), refused.json()
    assert "changed whole" in str(refused.json()) and Event.objects.count() == before
