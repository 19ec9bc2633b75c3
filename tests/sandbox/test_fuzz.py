"""Every kind the sandbox serves, fuzzed through the official client: create, get, list, patch, delete.

Objects are minimal (the fields the API requires, built with the client's own models)
with names, labels and annotation values from hypothesis, some of them invalid. Whatever
is sent, the server must answer: a success the client's models read, or a ``Status`` the
client parses (an ``ApiException`` with a JSON Status body of the same code). It must
never drop a connection, and its simulated controllers must never fail.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from sandbox.resources import RESOURCES, ResourceType

NAMESPACE = "fuzz"
M = client.V1ObjectMeta

label_names = st.from_regex(r"[a-z0-9]([-a-z0-9]{0,14}[a-z0-9])?", fullmatch=True)
names = st.from_regex(r"[a-z]([-a-z0-9]{0,30}[a-z0-9])?", fullmatch=True)
label_keys = st.builds(lambda prefix, name: f"{prefix}/{name}" if prefix else name,
                       st.one_of(st.just(""), st.just("example.com"), label_names), label_names)
valid_values = st.from_regex(r"([A-Za-z0-9]([-A-Za-z0-9_.]{0,20}[A-Za-z0-9])?)?", fullmatch=True)
label_values = st.one_of(valid_values, valid_values, st.text(max_size=70))  # a third may be refused: 422, a Status
labels = st.dictionaries(label_keys, label_values, max_size=3)
annotation_values = st.text(max_size=200)


def container(name: str) -> client.V1Container:
    return client.V1Container(name="main", image=f"registry.example/{name}:1.0")


def template(name: str, labels: dict[str, str]) -> dict[str, Any]:
    selector = {"app": name}
    return {"selector": client.V1LabelSelector(match_labels=selector),
            "template": client.V1PodTemplateSpec(metadata=M(labels={**labels, **selector}),
                                                 spec=client.V1PodSpec(containers=[container(name)]))}


def role_ref(kind: str) -> client.V1RoleRef:
    return client.V1RoleRef(api_group="rbac.authorization.k8s.io", kind=kind, name="view")


def access(verb: str = "get") -> client.V1ResourceAttributes:
    return client.V1ResourceAttributes(verb=verb, resource="pods", namespace=NAMESPACE)


# plural -> (API class, method suffix, build(metadata, name, labels) -> body)
Build = Callable[[client.V1ObjectMeta, str, dict[str, str]], Any]
KINDS: dict[str, tuple[str, str, Build]] = {
    "namespaces": ("CoreV1Api", "namespace", lambda m, n, lb: client.V1Namespace(metadata=m)),
    "nodes": ("CoreV1Api", "node", lambda m, n, lb: client.V1Node(metadata=m)),
    "pods": ("CoreV1Api", "pod", lambda m, n, lb: client.V1Pod(metadata=m, spec=client.V1PodSpec(containers=[container(n)]))),
    "events": ("CoreV1Api", "event", lambda m, n, lb: client.CoreV1Event(metadata=m, involved_object=client.V1ObjectReference())),
    "resourcequotas": ("CoreV1Api", "resource_quota", lambda m, n, lb: client.V1ResourceQuota(metadata=m)),
    "limitranges": ("CoreV1Api", "limit_range", lambda m, n, lb: client.V1LimitRange(metadata=m)),
    "serviceaccounts": ("CoreV1Api", "service_account", lambda m, n, lb: client.V1ServiceAccount(metadata=m)),
    "services": ("CoreV1Api", "service", lambda m, n, lb: client.V1Service(
        metadata=m, spec=client.V1ServiceSpec(ports=[client.V1ServicePort(port=80)]))),
    "configmaps": ("CoreV1Api", "config_map", lambda m, n, lb: client.V1ConfigMap(metadata=m)),
    "deployments": ("AppsV1Api", "deployment", lambda m, n, lb: client.V1Deployment(
        metadata=m, spec=client.V1DeploymentSpec(**template(n, lb)))),
    "daemonsets": ("AppsV1Api", "daemon_set", lambda m, n, lb: client.V1DaemonSet(
        metadata=m, spec=client.V1DaemonSetSpec(**template(n, lb)))),
    "replicasets": ("AppsV1Api", "replica_set", lambda m, n, lb: client.V1ReplicaSet(
        metadata=m, spec=client.V1ReplicaSetSpec(**template(n, lb)))),
    "statefulsets": ("AppsV1Api", "stateful_set", lambda m, n, lb: client.V1StatefulSet(
        metadata=m, spec=client.V1StatefulSetSpec(**template(n, lb)))),
    "poddisruptionbudgets": ("PolicyV1Api", "pod_disruption_budget", lambda m, n, lb: client.V1PodDisruptionBudget(metadata=m)),
    "networkpolicies": ("NetworkingV1Api", "network_policy", lambda m, n, lb: client.V1NetworkPolicy(metadata=m)),
    "leases": ("CoordinationV1Api", "lease", lambda m, n, lb: client.V1Lease(metadata=m)),
    "roles": ("RbacAuthorizationV1Api", "role", lambda m, n, lb: client.V1Role(metadata=m)),
    "rolebindings": ("RbacAuthorizationV1Api", "role_binding", lambda m, n, lb: client.V1RoleBinding(
        metadata=m, role_ref=role_ref("ClusterRole"))),
    "clusterroles": ("RbacAuthorizationV1Api", "cluster_role", lambda m, n, lb: client.V1ClusterRole(metadata=m)),
    "clusterrolebindings": ("RbacAuthorizationV1Api", "cluster_role_binding", lambda m, n, lb: client.V1ClusterRoleBinding(
        metadata=m, role_ref=role_ref("ClusterRole"))),
    "plans": ("CustomObjectsApi", "custom_object", lambda m, n, lb: {
        "apiVersion": "upgrade.cattle.io/v1", "kind": "Plan", "metadata": {k: v for k, v in (("name", m.name), ("labels", m.labels), ("annotations", m.annotations)) if v}}),
    "selfsubjectaccessreviews": ("AuthorizationV1Api", "self_subject_access_review", lambda m, n, lb: client.V1SelfSubjectAccessReview(
        metadata=m, spec=client.V1SelfSubjectAccessReviewSpec(resource_attributes=access()))),
    "selfsubjectrulesreviews": ("AuthorizationV1Api", "self_subject_rules_review", lambda m, n, lb: client.V1SelfSubjectRulesReview(
        metadata=m, spec=client.V1SelfSubjectRulesReviewSpec(namespace=NAMESPACE))),
    "subjectaccessreviews": ("AuthorizationV1Api", "subject_access_review", lambda m, n, lb: client.V1SubjectAccessReview(
        metadata=m, spec=client.V1SubjectAccessReviewSpec(user=n, resource_attributes=access("list")))),
    "localsubjectaccessreviews": ("AuthorizationV1Api", "local_subject_access_review", lambda m, n, lb: client.V1LocalSubjectAccessReview(
        metadata=M(namespace=NAMESPACE), spec=client.V1SubjectAccessReviewSpec(groups=[n], resource_attributes=access()))),
}


def test_every_served_kind_is_fuzzed():
    assert sorted(r.plural for r in RESOURCES) == sorted(KINDS)


@pytest.fixture(scope="module")
def fuzzed(sandbox):
    """One cluster for the module (hypothesis runs each test's examples against it, cleaning up after each)."""
    cluster = sandbox.add_cluster("fuzz-1", nodes=2, pods_per_node=1, pod_start_delay=0.01, node_ready_delay=0.05,
                                  namespace_finalize_delay=0.05)
    cluster.create("namespaces", {"metadata": {"name": NAMESPACE}})
    api = config.new_client_from_config_dict(sandbox.kubeconfig("fuzz-1"))
    api.configuration.retries = 0  # a dropped connection must surface, not be retried away
    yield cluster, api
    api.close()
    sandbox.remove_cluster("fuzz-1")


def answered(call: Callable[[], Any]) -> Any:
    """The call's result, or the Status of its ApiException; anything else (a dropped connection) fails the test."""
    try:
        return call()
    except ApiException as exc:
        body = json.loads(exc.body)
        assert body["kind"] == "Status" and body["apiVersion"] == "v1" and body["status"] == "Failure", body
        assert body["code"] == exc.status and body["reason"] and isinstance(body["message"], str), body
        assert exc.status < 500, f"the server failed: {body['message']}"
        return body


def is_status(value: Any) -> bool:
    return isinstance(value, dict) and value.get("kind") == "Status"


class Verbs:
    """create/read/list/patch/delete of one kind through the official client's typed API."""

    def __init__(self, api_client: client.ApiClient, resource: ResourceType) -> None:
        api_class, suffix, self.build = KINDS[resource.plural]
        self.api = getattr(client, api_class)(api_client)
        self.resource, self.suffix = resource, suffix
        self.scope = "namespaced_" if resource.namespaced else ""

    def _custom(self, verb: str, *args: Any, **kwargs: Any) -> Any:
        return getattr(self.api, f"{verb}_namespaced_custom_object")("upgrade.cattle.io", "v1", NAMESPACE, "plans", *args, **kwargs)

    def _call(self, verb: str, *args: Any, **kwargs: Any) -> Any:
        if self.resource.plural == "plans":
            return self._custom({"read": "get"}.get(verb, verb), *args, **kwargs)
        method = getattr(self.api, f"{verb}_{self.scope}{self.suffix}")
        if not self.resource.namespaced:
            return method(*args, **kwargs)
        if verb in ("create", "list"):
            return method(NAMESPACE, *args, **kwargs)
        return method(args[0], NAMESPACE, *args[1:], **kwargs)  # (name, namespace, body)

    def create(self, body: Any) -> Any:
        return answered(lambda: self._call("create", body))

    def read(self, name: str) -> Any:
        return answered(lambda: self._call("read", name))

    def list(self, selector: str) -> Any:
        return answered(lambda: self._call("list", label_selector=selector))

    def patch(self, name: str, patch: dict[str, Any]) -> Any:
        return answered(lambda: self._call("patch", name, patch))

    def delete(self, name: str) -> Any:
        return answered(lambda: self._call("delete", name))


def _name_of(obj: Any) -> str:
    return obj["metadata"]["name"] if isinstance(obj, dict) else obj.metadata.name


def _labels_of(obj: Any) -> dict[str, str]:
    return (obj["metadata"].get("labels") if isinstance(obj, dict) else obj.metadata.labels) or {}


@pytest.mark.parametrize("resource", RESOURCES, ids=[r.plural for r in RESOURCES])
@settings(max_examples=10, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                                  HealthCheck.too_slow])
@given(name=names, labels=labels, note=annotation_values, more=labels)
def test_kind_round_trip(fuzzed, resource, name, labels, note, more):
    cluster, api_client = fuzzed
    verbs = Verbs(api_client, resource)
    name = f"fz-{name}"[:63].rstrip("-")
    body = verbs.build(M(name=name, labels=labels or None, annotations={"fuzz.example/note": note}), name, labels)
    made = verbs.create(body)
    if resource.virtual:
        assert not is_status(made) and made.status is not None  # answered, never stored
        return
    try:
        if is_status(made):
            assert made["code"] in (409, 422), made  # a label value a real server refuses too, or a namespace still going
            return
        assert _name_of(made) == name and _labels_of(made).items() >= labels.items()
        fetched = verbs.read(name)
        assert not is_status(fetched) and _labels_of(fetched) == _labels_of(made)
        selector = ",".join(f"{k}={v}" for k, v in labels.items()) or f"!no-such-label-{name}"
        listed = verbs.list(selector)
        found = [_name_of(item) for item in (listed["items"] if isinstance(listed, dict) else listed.items)]
        assert name in found
        patched = verbs.patch(name, {"metadata": {"labels": more or {"fuzz.example/patched": "yes"}}})
        if not is_status(patched):
            assert _labels_of(patched).items() >= (more or {"fuzz.example/patched": "yes"}).items()
        else:
            assert patched["code"] == 422, patched
    finally:
        if not is_status(made):
            gone = verbs.delete(name)
            assert not is_status(gone) or gone["code"] == 404, gone
        assert list(cluster.store.controller_errors) == []
        assert client.CoreV1Api(api_client).list_namespace().items  # the server still answers


@settings(max_examples=40, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=st.recursive(st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=20)),
                         lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=10), inner, max_size=3)),
                         max_leaves=12),
       plural=st.sampled_from([r.plural for r in RESOURCES if r.group in ("", "apps")]))
def test_any_json_body_gets_an_answer(fuzzed, body, plural):
    """Bodies of any shape (the client's models would refuse most, so they go as JSON): a Status or an object, never a 500."""
    cluster, api_client = fuzzed
    resource = next(r for r in RESOURCES if r.plural == plural and r.group in ("", "apps"))
    prefix = "/api/v1" if not resource.group else f"/apis/{resource.group}/{resource.version}"
    path = f"{prefix}/namespaces/{NAMESPACE}/{plural}" if resource.namespaced else f"{prefix}/{plural}"
    params = api_client.param_serialize(method="POST", resource_path=path, body=body, auth_settings=["BearerToken"],
                                        header_params={"Content-Type": "application/json", "Accept": "application/json"})
    response = api_client.call_api(*params)
    response.read()
    answer = json.loads(response.data)
    assert response.status < 500, answer
    if response.status >= 400:
        assert answer["kind"] == "Status" and answer["code"] == response.status
    else:
        answered(lambda: Verbs(api_client, resource).delete(answer["metadata"]["name"]))
    assert list(cluster.store.controller_errors) == []
