"""Conformance of the sandbox's authentication and RBAC: 401 and 403 as a real API server answers them, access
reviews (``kubectl auth can-i``), service accounts, impersonation, and the bootstrap roles."""

from __future__ import annotations

import pytest
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from tests.support.kube_api import core, status_of

# ---- authentication and authorization ---------------------------------------------------


def test_wrong_token_gets_401(sandbox, sandbox_cluster):
    kubeconfig = sandbox.kubeconfig(sandbox_cluster.name)
    kubeconfig["users"][0]["user"]["token"] = "wrong"
    with pytest.raises(ApiException) as exc:
        core(config.new_client_from_config_dict(kubeconfig)).list_namespace()
    assert exc.value.status == 401 and status_of(exc.value)["reason"] == "Unauthorized"


def test_missing_token_gets_401(sandbox, sandbox_cluster):
    kubeconfig = sandbox.kubeconfig(sandbox_cluster.name)
    kubeconfig["users"][0]["user"] = {}
    with pytest.raises(ApiException) as exc:
        core(config.new_client_from_config_dict(kubeconfig)).list_node()
    assert exc.value.status == 401


def test_read_only_token_gets_403_naming_the_permission(sandbox, sandbox_cluster):
    viewer = core(config.new_client_from_config_dict(sandbox.kubeconfig(sandbox_cluster.name, readonly=True)))
    assert viewer.list_node().items
    with pytest.raises(ApiException) as exc:
        viewer.patch_node(f"{sandbox_cluster.name}-w-1", {"spec": {"unschedulable": True}})
    body = status_of(exc.value)
    assert exc.value.status == 403 and body["reason"] == "Forbidden"
    assert 'cannot patch resource "nodes" in API group "" at the cluster scope' in body["message"]


def test_self_subject_access_review(kube, sandbox, sandbox_cluster):
    authz = client.AuthorizationV1Api(kube)

    def review(api, **attributes):
        return api.create_self_subject_access_review(client.V1SelfSubjectAccessReview(
            spec=client.V1SelfSubjectAccessReviewSpec(resource_attributes=client.V1ResourceAttributes(**attributes))))

    answer = review(authz, verb="create", resource="pods", namespace="default")
    assert answer.status.allowed is True and answer.kind == "SelfSubjectAccessReview"
    viewer = client.AuthorizationV1Api(config.new_client_from_config_dict(sandbox.kubeconfig(sandbox_cluster.name, readonly=True)))
    assert review(viewer, verb="list", resource="nodes").status.allowed is True
    assert review(viewer, verb="delete", resource="pods", namespace="demo").status.allowed is False
    denied = client.AuthorizationV1Api(config.new_client_from_config_dict(sandbox.kubeconfig(sandbox_cluster.name, denied=True)))
    assert review(denied, verb="get", resource="pods", namespace="default").status.allowed is False  # it may still ask
    path = authz.create_self_subject_access_review(client.V1SelfSubjectAccessReview(spec=client.V1SelfSubjectAccessReviewSpec(
        non_resource_attributes=client.V1NonResourceAttributes(path="/healthz", verb="get"))))
    assert path.status.allowed is True
    with pytest.raises(ApiException) as exc:
        authz.create_self_subject_access_review(client.V1SelfSubjectAccessReview(spec=client.V1SelfSubjectAccessReviewSpec()))
    assert exc.value.status == 422 and "exactly one of nonResourceAttributes or resourceAttributes" in status_of(exc.value)["message"]


def test_subject_access_review_and_rules_review_follow_rbac(kube, sandbox, sandbox_cluster):
    rbac, authz = client.RbacAuthorizationV1Api(kube), client.AuthorizationV1Api(kube)
    rbac.create_namespaced_role("demo", client.V1Role(metadata=client.V1ObjectMeta(name="deployer"), rules=[
        client.V1PolicyRule(api_groups=["apps"], resources=["deployments"], verbs=["get", "update"])]))
    rbac.create_namespaced_role_binding("demo", client.V1RoleBinding(
        metadata=client.V1ObjectMeta(name="deployers"), role_ref=client.V1RoleRef(api_group="rbac.authorization.k8s.io", kind="Role",
                                                                                  name="deployer"),
        subjects=[client.RbacV1Subject(kind="Group", name="release-team", api_group="rbac.authorization.k8s.io")]))

    def may(groups, verb, namespace="demo"):
        return authz.create_subject_access_review(client.V1SubjectAccessReview(spec=client.V1SubjectAccessReviewSpec(
            user="bob", groups=groups, resource_attributes=client.V1ResourceAttributes(
                verb=verb, group="apps", resource="deployments", namespace=namespace)))).status.allowed

    assert may(["release-team"], "update") is True
    assert may([], "update") is False and may(["release-team"], "delete") is False and may(["release-team"], "get", "default") is False
    viewer = client.AuthorizationV1Api(config.new_client_from_config_dict(sandbox.kubeconfig(sandbox_cluster.name, readonly=True)))
    with pytest.raises(ApiException) as exc:
        viewer.create_subject_access_review(client.V1SubjectAccessReview(spec=client.V1SubjectAccessReviewSpec(
            user="bob", resource_attributes=client.V1ResourceAttributes(verb="get", resource="pods"))))
    assert exc.value.status == 403 and status_of(exc.value)["reason"] == "Forbidden"
    token = sandbox_cluster.add_user("carol", ["release-team"])
    kubeconfig = sandbox.kubeconfig(sandbox_cluster.name)
    kubeconfig["users"][0]["user"]["token"] = token
    carol = client.AuthorizationV1Api(config.new_client_from_config_dict(kubeconfig))
    rules = carol.create_self_subject_rules_review(client.V1SelfSubjectRulesReview(
        spec=client.V1SelfSubjectRulesReviewSpec(namespace="demo"))).status
    assert {"deployments"} in [set(r.resources) for r in rules.resource_rules] and rules.incomplete is False
    assert not any("deployments" in r.resources for r in carol.create_self_subject_rules_review(client.V1SelfSubjectRulesReview(
        spec=client.V1SelfSubjectRulesReviewSpec(namespace="default"))).status.resource_rules)


# ---- service accounts, impersonation, bootstrap RBAC ------------------------------------------


def test_subject_access_review_knows_service_accounts_and_asks_about_the_groups_named(kube, sandbox_cluster):
    rbac, authz = client.RbacAuthorizationV1Api(kube), client.AuthorizationV1Api(kube)
    rbac.create_namespaced_role_binding("demo", client.V1RoleBinding(
        metadata=client.V1ObjectMeta(name="bot-views"), role_ref=client.V1RoleRef(api_group="rbac.authorization.k8s.io",
                                                                                   kind="ClusterRole", name="view"),
        subjects=[client.RbacV1Subject(kind="ServiceAccount", name="bot")]))  # no namespace: the binding's

    def may(user, groups=None, verb="list", namespace="demo"):
        return authz.create_subject_access_review(client.V1SubjectAccessReview(spec=client.V1SubjectAccessReviewSpec(
            user=user, groups=groups, resource_attributes=client.V1ResourceAttributes(
                verb=verb, group="apps", resource="deployments", namespace=namespace)))).status.allowed

    assert may("system:serviceaccount:demo:bot") is True
    assert may("system:serviceaccount:other:bot") is False and may("system:serviceaccount:demo:bot", verb="delete") is False
    assert may("bot") is False  # a user called bot is not the service account
    rbac.create_cluster_role_binding(client.V1ClusterRoleBinding(
        metadata=client.V1ObjectMeta(name="authenticated-views"), role_ref=client.V1RoleRef(
            api_group="rbac.authorization.k8s.io", kind="ClusterRole", name="view"),
        subjects=[client.RbacV1Subject(kind="Group", name="system:authenticated", api_group="rbac.authorization.k8s.io")]))
    # A review asks about exactly the groups it names, as kube-apiserver's does.
    assert may("dave", namespace="default") is False and may("dave", ["system:authenticated"], namespace="default") is True


def test_impersonating_a_service_account_needs_impersonate_on_it(sandbox, sandbox_cluster, sandbox_http):
    base = sandbox.server_url(sandbox_cluster.name)
    token = sandbox_cluster.add_user("impersonator")
    headers = {"Authorization": f"Bearer {token}", "Impersonate-User": "system:serviceaccount:demo:bot"}
    refused = sandbox_http.get(f"{base}/api/v1/namespaces/demo/pods", headers=headers)
    assert refused.status_code == 403 and refused.json()["message"] == (
        'serviceaccounts "bot" is forbidden: User "impersonator" cannot impersonate resource "serviceaccounts" in API group "" '
        'in the namespace "demo"')
    sandbox_cluster.create("roles", {"metadata": {"name": "be-bot"}, "rules": [
        {"apiGroups": [""], "resources": ["serviceaccounts"], "verbs": ["impersonate"], "resourceNames": ["bot"]}]}, "demo")
    sandbox_cluster.create("rolebindings", {"metadata": {"name": "be-bot"}, "subjects": [{"kind": "User", "name": "impersonator"}],
                                            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "be-bot"}},
                           "demo")
    sandbox_cluster.create("clusterrolebindings", {"metadata": {"name": "sa-read-pods"}, "subjects": [
        {"kind": "Group", "name": "system:serviceaccounts:demo"}], "roleRef": {"apiGroup": "rbac.authorization.k8s.io",
                                                                               "kind": "ClusterRole", "name": "view"}})
    assert sandbox_http.get(f"{base}/api/v1/namespaces/demo/pods", headers=headers).status_code == 200
    denied = sandbox_http.get(f"{base}/api/v1/namespaces/demo/pods", headers={**headers, "Impersonate-Group": "devs"})
    assert denied.status_code == 403  # it may not impersonate the group devs either


def test_bootstrap_roles_are_there_from_the_start(sandbox):
    cluster = sandbox.add_cluster("bare", populate=False)
    try:
        roles = {r["metadata"]["name"]: r for r in cluster.items("clusterroles")}
        assert {"cluster-admin", "admin", "edit", "view", "system:basic-user", "system:discovery", "system:public-info-viewer"} <= set(roles)
        assert all(r["metadata"]["labels"]["kubernetes.io/bootstrapping"] == "rbac-defaults" for r in roles.values())
        view, edit, admin = ({tuple(map(tuple, (r["apiGroups"], r["resources"], r["verbs"]))) for r in roles[n]["rules"]}
                             for n in ("view", "edit", "admin"))
        assert view < edit < admin  # aggregated: admin ⊇ edit ⊇ view
        assert not any("secrets" in r[1] for r in view) and any("secrets" in r[1] for r in edit)
        assert cluster.may("anyone", "create", "selfsubjectaccessreviews", "authorization.k8s.io")  # system:basic-user
        assert cluster.may("anyone", "get", path="/version") and not cluster.may("anyone", "get", path="/metrics")
        assert not cluster.may("anyone", "create", "selfsubjectaccessreviews", "authorization.k8s.io", groups=[])
    finally:
        sandbox.remove_cluster("bare")
