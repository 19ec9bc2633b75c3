"""What kubectl asks of the sandbox beyond JSON objects: tables, OpenAPI, protobuf and YAML bodies, and TLS
verified against the sandbox's own CA."""

from __future__ import annotations

import datetime
import ipaddress
import json
import ssl

import pytest
import urllib3
from cryptography import x509
from kubernetes import client, config

from sandbox import tables
from tests.support.kube_api import core

# ---- TLS -------------------------------------------------------------------------------------


def test_served_over_https_verified_against_its_own_ca(sandbox, sandbox_cluster):
    kubeconfig = sandbox.kubeconfig(sandbox_cluster.name)
    assert kubeconfig["clusters"][0]["cluster"]["server"].startswith("https://127.0.0.1:")
    assert core(config.new_client_from_config_dict(kubeconfig)).list_node().items
    untrusting = dict(kubeconfig, clusters=[{"name": sandbox_cluster.name, "cluster": {"server": sandbox.server_url(sandbox_cluster.name)}}])
    api = config.new_client_from_config_dict(untrusting)
    api.configuration.retries = 0
    with pytest.raises(urllib3.exceptions.MaxRetryError, match="CERTIFICATE_VERIFY_FAILED"):
        core(api).list_node()
    certificate = x509.load_pem_x509_certificate(ssl.get_server_certificate(("127.0.0.1", sandbox.port)).encode())
    names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert ipaddress.ip_address("127.0.0.1") in names.get_values_for_type(x509.IPAddress)
    assert "localhost" in names.get_values_for_type(x509.DNSName)


# ---- what kubectl asks for: tables, OpenAPI, bodies ---------------------------------------------

KUBECTL_ACCEPT = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json"


def test_table_form_of_lists_and_objects(sandbox, sandbox_cluster, sandbox_http):
    base = sandbox.server_url(sandbox_cluster.name)
    headers = {"Authorization": f"Bearer {sandbox_cluster.token}", "Accept": KUBECTL_ACCEPT}
    nodes = sandbox_http.get(f"{base}/api/v1/nodes", headers=headers)
    assert nodes.headers["content-type"] == "application/json;as=Table;v=v1;g=meta.k8s.io"
    table = nodes.json()
    assert table["kind"] == "Table" and table["apiVersion"] == "meta.k8s.io/v1" and table["metadata"]["resourceVersion"]
    assert [c["name"] for c in table["columnDefinitions"] if c["priority"] == 0] == ["Name", "Status", "Roles", "Age", "Version"]
    first = table["rows"][0]
    assert first["cells"][:3] == [f"{sandbox_cluster.name}-cp-1", "Ready", "control-plane"] and first["cells"][4] == "v1.30.4"
    assert first["object"]["kind"] == "PartialObjectMetadata" and first["object"]["metadata"]["name"] == first["cells"][0]
    full = sandbox_http.get(f"{base}/api/v1/namespaces/demo/pods", headers=headers, params={"includeObject": "Object", "limit": 2}).json()
    assert [c["name"] for c in full["columnDefinitions"][:5]] == ["Name", "Ready", "Status", "Restarts", "Age"]
    assert full["rows"][0]["object"]["kind"] == "Pod" and full["rows"][0]["object"]["spec"]["containers"]
    assert full["rows"][0]["cells"][1:4] == ["1/1", "Running", "0"] and full["metadata"]["continue"]
    bare = sandbox_http.get(f"{base}/apis/apps/v1/namespaces/kube-system/deployments/coredns", headers=headers,
                            params={"includeObject": "None"}).json()
    assert bare["rows"] == [{"cells": ["coredns", "2/2", 2, 2, bare["rows"][0]["cells"][4], "coredns",
                                       "registry.k8s.io/coredns/coredns:v1.11.1", "k8s-app=kube-dns"]}]
    generic = sandbox_http.get(f"{base}/api/v1/namespaces/default/serviceaccounts", headers=headers).json()
    assert [c["name"] for c in generic["columnDefinitions"]] == ["Name", "Age"] and generic["rows"][0]["cells"][0] == "default"
    assert sandbox_http.get(f"{base}/api/v1/nodes", headers={**headers, "Accept": "application/json"}).json()["kind"] == "NodeList"


def test_table_watch_sends_columns_with_the_first_event_only(kube, sandbox, sandbox_cluster, sandbox_http):
    url = f"{sandbox.server_url(sandbox_cluster.name)}/api/v1/namespaces/default/configmaps"
    core(kube).create_namespaced_config_map("default", client.V1ConfigMap(metadata=client.V1ObjectMeta(name="one")))
    core(kube).create_namespaced_config_map("default", client.V1ConfigMap(metadata=client.V1ObjectMeta(name="two")))
    with sandbox_http.stream("GET", url, params={"watch": "true", "timeoutSeconds": "1", "includeObject": "Object"},
                             headers={"Authorization": f"Bearer {sandbox_cluster.token}", "Accept": KUBECTL_ACCEPT}) as response:
        events = [json.loads(line) for line in response.iter_lines() if line]
    assert [e["type"] for e in events] == ["ADDED", "ADDED"]
    assert all(e["object"]["kind"] == "Table" for e in events)
    assert [c["name"] for c in events[0]["object"]["columnDefinitions"]] == ["Name", "Age"]
    assert events[1]["object"]["columnDefinitions"] == []
    assert [e["object"]["rows"][0]["object"]["metadata"]["name"] for e in events] == ["one", "two"]


def test_age_reads_as_kubectl_shows_it():
    now = datetime.datetime(2025, 1, 10, 12, 0, 0, tzinfo=datetime.UTC)

    def ago(**delta):
        return tables.age((now - datetime.timedelta(**delta)).strftime("%Y-%m-%dT%H:%M:%SZ"), now)

    assert [ago(seconds=5), ago(seconds=119), ago(minutes=5, seconds=12), ago(minutes=5), ago(minutes=42), ago(hours=3, minutes=4),
            ago(hours=30), ago(days=3, hours=2), ago(days=40), ago(days=800)] == [
        "5s", "119s", "5m12s", "5m", "42m", "3h4m", "30h", "3d2h", "40d", "2y70d"]
    assert tables.age(None) == "<unknown>" and ago(seconds=-30) == "<invalid>"


def test_discovery_lists_the_reviews_and_openapi_names_each_kind(kube, sandbox, sandbox_cluster, sandbox_http):
    resources = {r.name: r.verbs for r in client.AuthorizationV1Api(kube).get_api_resources().resources}
    assert resources == {"selfsubjectaccessreviews": ["create"], "selfsubjectrulesreviews": ["create"],
                         "subjectaccessreviews": ["create"], "localsubjectaccessreviews": ["create"]}
    base = sandbox.server_url(sandbox_cluster.name)
    headers = {"Authorization": f"Bearer {sandbox_cluster.token}"}
    root = sandbox_http.get(f"{base}/openapi/v3", headers=headers).json()["paths"]
    assert root["apis/apps/v1"]["serverRelativeURL"].startswith("/openapi/v3/apis/apps/v1?hash=")
    apps = sandbox_http.get(f"{base}/openapi/v3/apis/apps/v1", headers=headers).json()
    patch = apps["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]["patch"]
    assert patch["x-kubernetes-group-version-kind"] == {"group": "apps", "version": "v1", "kind": "Deployment"}
    assert "fieldValidation" in [p["name"] for p in patch["parameters"]]
    assert sandbox_http.get(f"{base}/openapi/v3/apis/nope/v1", headers=headers).status_code == 404


def _pb(number: int, payload: bytes) -> bytes:
    return bytes([number << 3 | 2, len(payload)]) + payload  # payloads here are shorter than 128 bytes


def test_request_bodies_in_protobuf_yaml_or_an_unknown_type(sandbox, sandbox_cluster, sandbox_http):
    url = f"{sandbox.server_url(sandbox_cluster.name)}/api/v1/namespaces/default/configmaps"
    headers = {"Authorization": f"Bearer {sandbox_cluster.token}"}

    def post(body: bytes, content_type: str):
        return sandbox_http.post(url, content=body, headers={**headers, "Content-Type": content_type})

    def configmap(raw: bytes, kind: bytes = b"ConfigMap") -> bytes:
        return b"k8s\x00" + _pb(1, _pb(1, b"v1") + _pb(2, kind)) + _pb(2, raw)

    entry = _pb(1, b"k") + _pb(2, b"v")
    created = post(configmap(_pb(1, _pb(1, b"pb")) + _pb(2, entry) + bytes([4 << 3, 0])), "application/vnd.kubernetes.protobuf")
    assert created.status_code == 201, created.text
    stored = sandbox_cluster.get("configmaps", "default", "pb")
    assert stored["data"] == {"k": "v"} and stored["immutable"] is False  # a pointer's false (*bool in Go) is kept
    unknown = post(configmap(_pb(1, _pb(1, b"x")) + _pb(9, b"?")), "application/vnd.kubernetes.protobuf")
    assert unknown.status_code == 415 and unknown.json()["reason"] == "UnsupportedMediaType"
    assert "field 9 of k8s.io.api.core.v1.ConfigMap" in unknown.json()["message"]
    assert post(configmap(b"", b"Widget"), "application/vnd.kubernetes.protobuf").status_code == 415
    broken = post(b'{"metadata": {"name": "x"}}', "application/vnd.kubernetes.protobuf")
    assert broken.status_code == 400 and broken.json()["reason"] == "BadRequest"
    assert post(b"metadata: {name: from-yaml}\ndata: {a: b}\n", "application/yaml").status_code == 201
    assert sandbox_cluster.get("configmaps", "default", "from-yaml")["data"] == {"a": "b"}
    other = post(b"name=x", "application/x-www-form-urlencoded")
    assert other.status_code == 415 and other.json()["message"].startswith("the body of the request was in an unknown format")


def test_openapi_v2_is_served_without_schemas(sandbox, sandbox_cluster, sandbox_http):
    url = f"{sandbox.server_url(sandbox_cluster.name)}/openapi/v2"
    headers = {"Authorization": f"Bearer {sandbox_cluster.token}"}
    assert sandbox_http.get(url, headers=headers).json() == {
        "swagger": "2.0", "info": {"title": "Kubernetes", "version": "v1.30.4"}, "paths": {}, "definitions": {}}
    proto = sandbox_http.get(url, headers={**headers, "Accept": "application/com.github.proto-openapi.spec.v2@v1.0+protobuf"})
    assert proto.headers["content-type"] == "application/com.github.proto-openapi.spec.v2.v1.0+protobuf"
    assert proto.content.startswith(b"\n\x032.0\x12") and b"Kubernetes" in proto.content
