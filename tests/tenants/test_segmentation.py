"""The segmentation matrix read from a sandbox cluster, through pksweb's page and API.

The objects are created with the official client, as a person would with kubectl. The
egress policy is sent without ``policyTypes``: pksweb must apply the API server's default
itself (Ingress, plus Egress because the policy has egress rules).
"""

from __future__ import annotations

import time

import pytest
from django.urls import reverse
from kubernetes import client as k8s

from tenants.services import namespace_reconcile

NAME = "kubernetes.io/metadata.name"


def _pod(name: str, labels: dict[str, str]) -> dict:
    return {"metadata": {"name": name, "labels": labels},
            "spec": {"containers": [{"name": "main", "image": "nginx:1.27"}]}}


@pytest.fixture
def shop(kube):
    """shop: 3 web + 2 api pods behind a default-deny and "allow from namespace x-team to app=web";
    x-team: one client pod, and an egress policy (no policyTypes) that only lets it reach shop."""
    core, net = k8s.CoreV1Api(kube), k8s.NetworkingV1Api(kube)
    for ns in ("shop", "x-team"):
        core.create_namespace({"metadata": {"name": ns}})
    for i in range(3):
        core.create_namespaced_pod("shop", _pod(f"web-{i}", {"app": "web"}))
    for i in range(2):
        core.create_namespaced_pod("shop", _pod(f"api-{i}", {"app": "api"}))
    core.create_namespaced_pod("x-team", _pod("client", {"app": "client"}))
    net.create_namespaced_network_policy("shop", {"metadata": {"name": "default-deny"},
                                                  "spec": {"podSelector": {}, "policyTypes": ["Ingress"]}})
    net.create_namespaced_network_policy("shop", {"metadata": {"name": "allow-web"}, "spec": {
        "podSelector": {"matchLabels": {"app": "web"}},
        "ingress": [{"from": [{"namespaceSelector": {"matchLabels": {NAME: "x-team"}}}], "ports": [{"port": 8080}]}]}})
    net.create_namespaced_network_policy("x-team", {"metadata": {"name": "egress-to-shop"}, "spec": {
        "podSelector": {}, "egress": [{"to": [{"namespaceSelector": {"matchLabels": {NAME: "shop"}}}]}]}})
    return core




@pytest.mark.django_db
def test_page_shows_some_all_none_with_the_policies_responsible(op_client, registered, shop):
    url = reverse("tenants:segmentation", args=[registered.pk])
    page = op_client.get(url).content.decode()
    # The old "allowed" reading first: x-team does reach some of shop, and reaches nothing else.
    assert 'data-from="x-team" data-to="shop" data-allowed="true"' in page
    assert 'data-from="x-team" data-to="demo" data-allowed="false"' in page
    assert 'data-from="x-team" data-to="shop" data-allowed="true" data-reach="some"' in page
    assert 'title="some: 3 of 5 pod pairs allowed; the only pod of x-team may connect to 3 of 5 pods of shop"' in page
    # Egress isolated by the defaulted policyTypes: x-team reaches nothing but shop...
    assert 'data-from="x-team" data-to="demo" data-allowed="false" data-reach="none"' in page
    # ...and, with no ingress rule, accepts nothing either.
    assert 'data-from="demo" data-to="x-team" data-allowed="false" data-reach="none"' in page
    assert 'data-from="demo" data-to="shop" data-allowed="false" data-reach="none"' in page
    assert 'data-from="shop" data-to="demo" data-allowed="true" data-reach="all"' in page
    assert "Select a cell to see which policies and rules decide it." in page

    why = op_client.get(url, {"from": "x-team", "to": "shop"}).content.decode()
    assert ("ingress allowed by shop/allow-web rule 1 (from all pods in namespace x-team; port TCP/8080) "
            "to 3 of 5 pods of shop from the only pod of x-team") in why
    assert "ingress: shop/default-deny isolates all 5 pods of shop for ingress" in why
    assert ("egress allowed by x-team/egress-to-shop rule 1 (to all pods in namespace shop; any port) "
            "from the only pod of x-team to all 5 pods of shop") in why

    fragment = op_client.get(url, {"from": "x-team", "to": "demo"}, headers={"HX-Request": "true", "HX-Target": "why"})
    body = fragment.content.decode()
    assert body.lstrip().startswith('<section class="card" id="why"') and "<table" not in body
    assert "egress: x-team/egress-to-shop isolates the only pod of x-team for egress" in body
    assert "egress: no rule lets x-team&#x27;s isolated pods connect to pods of demo" in body


@pytest.mark.django_db
def test_api_cells_carry_reach_reasons_and_the_old_allowed(operator_api, registered, shop):
    body = operator_api.get(f"/api/clusters/{registered.pk}/segmentation/").json()
    cells = {(c["source"], c["target"]): c for c in body["cells"]}
    some = cells[("x-team", "shop")]
    assert (some["reach"], some["allowed"], some["pairs_allowed"], some["pairs"]) == ("some", True, 3, 5)
    assert {"direction": "ingress", "policy": "shop/allow-web", "rule": 1,
            "text": "ingress allowed by shop/allow-web rule 1 (from all pods in namespace x-team; port TCP/8080) "
                    "to 3 of 5 pods of shop from the only pod of x-team"} in some["reasons"]
    assert (cells[("x-team", "demo")]["reach"], cells[("x-team", "demo")]["allowed"]) == ("none", False)
    assert body["pods"]["shop"] == 5 and body["pods"]["x-team"] == 1
    assert body["partial"] == ["shop/allow-web"]
    only = operator_api.get(f"/api/clusters/{registered.pk}/segmentation/", {"source": "x-team", "target": "shop"}).json()
    assert [(c["source"], c["target"]) for c in only["cells"]] == [("x-team", "shop")]


@pytest.mark.django_db
def test_intent_compares_three_valued_cells(operator_api, acme, registered, sandbox_cluster, make_namespace, shop):
    """pksweb's bundle for payments intends none from shop; a hand-made allow for some pods is drift."""
    namespace_reconcile(namespace_id=make_namespace(acme, registered, "payments").pk)
    shop.create_namespaced_pod("payments", _pod("teller", {"app": "teller"}))
    shop.create_namespaced_pod("payments", _pod("vault", {"app": "vault"}))

    def cell(source: str, target: str) -> dict:
        cells = operator_api.get(f"/api/clusters/{registered.pk}/segmentation/", {"source": source, "target": target}).json()
        return cells["cells"][0]

    before = cell("shop", "payments")
    assert (before["reach"], before["intended_reach"], before["intended"], before["drift"]) == ("none", "none", False, False)
    sandbox_cluster.create("networkpolicies", {"metadata": {"name": "let-shop-in"}, "spec": {
        "podSelector": {"matchLabels": {"app": "teller"}}, "policyTypes": ["Ingress"],
        "ingress": [{"from": [{"namespaceSelector": {"matchLabels": {NAME: "shop"}}}]}]}}, "payments")
    after = cell("shop", "payments")
    assert (after["reach"], after["intended_reach"], after["drift"]) == ("some", "none", True)
    assert any(r["policy"] == "payments/let-shop-in" and r["rule"] == 1 for r in after["reasons"])


@pytest.mark.django_db
def test_an_unreachable_cluster_says_so_instead_of_a_matrix(op_client, operator_api, registered, sandbox_cluster):
    sandbox_cluster.faults.update({"unreachable": True})
    page = op_client.get(reverse("tenants:segmentation", args=[registered.pk]), {"from": "demo", "to": "demo"})
    assert page.status_code == 200 and 'id="segmentation-error"' in page.content.decode()
    assert 'id="segmentation"' not in page.content.decode()
    body = operator_api.get(f"/api/clusters/{registered.pk}/segmentation/").json()
    assert body["error"] and body["cells"] == [] and body["pods"] == {}


def test_a_big_matrix_is_quick():
    """50 namespaces, 400 pods, 4 policies each: the evaluation and every cell well under a second."""
    from tenants.netpol import Evaluation, Pod

    names = [f"ns-{i:02d}" for i in range(50)]
    labels = {n: {NAME: n, "tenant": f"t{i % 7}"} for i, n in enumerate(names)}
    pods = [Pod(n, f"{n}-{j}", {"app": ["web", "api", "db", "worker"][j % 4], "pod": str(j)}) for n in names for j in range(8)]
    policies = []
    for i, n in enumerate(names):
        meta = {"namespace": n}
        policies += [
            {"metadata": {**meta, "name": "deny"}, "spec": {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}},
            {"metadata": {**meta, "name": "same-tenant"}, "spec": {"podSelector": {}, "ingress": [{"from": [
                {"namespaceSelector": {"matchLabels": {"tenant": f"t{i % 7}"}}}]}], "egress": [{"to": [
                    {"namespaceSelector": {"matchLabels": {"tenant": f"t{i % 7}"}}}]}]}},
            {"metadata": {**meta, "name": "web"}, "spec": {"podSelector": {"matchLabels": {"app": "web"}}, "ingress": [{"from": [
                {"namespaceSelector": {}, "podSelector": {"matchExpressions": [{"key": "app", "operator": "In", "values": ["api"]}]}}],
                "ports": [{"port": 443}]}]}},
            {"metadata": {**meta, "name": "dns"}, "spec": {"podSelector": {}, "policyTypes": ["Egress"], "egress": [{"to": [
                {"namespaceSelector": {"matchLabels": {NAME: "kube-system"}}}]}]}},
        ]
    started = time.perf_counter()
    evaluation = Evaluation(labels, pods, policies)
    cells = [evaluation.cell(s, t) for s in names for t in names]
    summaries = [evaluation.summary(c) for c in cells]
    elapsed = time.perf_counter() - started
    assert len(summaries) == 2500 and {"all", "none"} <= {c.reach for c in cells}
    assert elapsed < 2.0, f"{elapsed:.2f} s"
