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

from tenants.reconciler import namespace_reconcile
from tests.support.waits import wait_for

NAME = "kubernetes.io/metadata.name"


def _pod(name: str, labels: dict[str, str], ports: list[dict] | None = None) -> dict:
    main = {"name": "main", "image": "nginx:1.27", **({"ports": ports} if ports else {})}
    return {"metadata": {"name": name, "labels": labels}, "spec": {"containers": [main]}}


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
def test_ip_blocks_match_the_pod_ips_the_cluster_assigned_and_named_ports_need_a_declaration(operator_api, registered, kube):
    """The reviewer's repros against the sandbox, whose kubelets give started pods an IP: s4 admits s2/fe's /32
    (it read "none") and a named port that none of s4's pods declares (it read "all")."""
    core, net = k8s.CoreV1Api(kube), k8s.NetworkingV1Api(kube)
    for ns in ("s2", "s4"):
        core.create_namespace({"metadata": {"name": ns}})
    core.create_namespaced_pod("s2", _pod("fe", {"app": "fe"}, [{"name": "http", "containerPort": 8080}]))
    core.create_namespaced_pod("s2", _pod("be", {"app": "be"}))
    for i in range(2):
        core.create_namespaced_pod("s4", _pod(f"db-{i}", {"app": "db"}, [{"name": "web", "containerPort": 5432}]))
    listed = wait_for(lambda: (lambda items: items if all(p.status.pod_ip for p in items) else None)(
        [p for ns in ("s2", "s4", "demo") for p in core.list_namespaced_pod(ns).items]), what="pod IPs")
    fe_ip = core.read_namespaced_pod("fe", "s2").status.pod_ip
    net.create_namespaced_network_policy("s4", {"metadata": {"name": "from-fe"}, "spec": {
        "podSelector": {}, "ingress": [{"from": [{"ipBlock": {"cidr": f"{fe_ip}/32"}}]}]}})
    net.create_namespaced_network_policy("s4", {"metadata": {"name": "named"}, "spec": {
        "podSelector": {}, "ingress": [{"ports": [{"port": "no-such-port"}]}]}})
    with_fe_ip = {ns: sum(p.status.pod_ip == fe_ip for p in listed if p.metadata.namespace == ns) for ns in ("s2", "demo")}

    body = operator_api.get(f"/api/clusters/{registered.pk}/segmentation/", {"target": "s4"}).json()
    cells = {(c["source"], c["target"]): c for c in body["cells"]}
    fe = cells[("s2", "s4")]
    assert (fe["reach"], fe["pairs_allowed"], fe["pairs"]) == ("some" if with_fe_ip["s2"] == 1 else "all", 2 * with_fe_ip["s2"], 4)
    assert {"direction": "ingress", "policy": "s4/from-fe", "rule": 1,
            "text": f"ingress allowed by s4/from-fe rule 1 (from IP block {fe_ip}/32; any port) to all 2 pods of s4 "
                    f"from {'1 of 2 pods' if with_fe_ip['s2'] == 1 else 'all 2 pods'} of s2"} in fe["reasons"]
    demo = cells[("demo", "s4")]
    assert demo["pairs_allowed"] == 2 * with_fe_ip["demo"]
    named = [r for r in demo["reasons"] if r["policy"] == "s4/named" and r["rule"] is not None]
    assert [r["rule"] for r in named] == [1] and named[0]["text"].endswith(
        "but none of the 2 pods it selects in s4 declares its named port TCP/no-such-port: it admits nothing")


@pytest.mark.django_db
def test_an_unreachable_cluster_says_so_instead_of_a_matrix(op_client, operator_api, registered, sandbox_cluster):
    sandbox_cluster.faults.update({"unreachable": True})
    page = op_client.get(reverse("tenants:segmentation", args=[registered.pk]), {"from": "demo", "to": "demo"})
    assert page.status_code == 200 and 'id="segmentation-error"' in page.content.decode()
    assert 'id="segmentation"' not in page.content.decode()
    body = operator_api.get(f"/api/clusters/{registered.pk}/segmentation/").json()
    assert body["error"] and body["cells"] == [] and body["pods"] == {}


def test_a_big_matrix_is_quick():
    """50 namespaces, 400 pods with IPs and named ports, 6 policies each (150 distinct IP blocks, IPv4 and IPv6, an
    egress named port): the evaluation and every cell well under a second."""
    from tenants.netpol.evaluation import Evaluation
    from tenants.netpol.objects import Pod

    names = [f"ns-{i:02d}" for i in range(50)]
    labels = {n: {NAME: n, "tenant": f"t{i % 7}"} for i, n in enumerate(names)}
    pods = [Pod(n, f"{n}-{j}", {"app": ["web", "api", "db", "worker"][j % 4], "pod": str(j)}, ips=(f"10.{i}.0.{j + 2}", f"fd00:{i:x}::{j + 2:x}"),
                named_ports=frozenset({("https", "TCP")} if j % 4 == 0 else ())) for i, n in enumerate(names) for j in range(8)]
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
            {"metadata": {**meta, "name": "https-out"}, "spec": {"podSelector": {"matchLabels": {"pod": str(i % 8)}},
                "policyTypes": ["Egress"], "egress": [{"to": [{"ipBlock": {"cidr": "10.0.0.0/8", "except": [f"10.{i}.0.0/16"]}}],
                                                       "ports": [{"port": "https"}]}]}},
            {"metadata": {**meta, "name": "neighbour"}, "spec": {"podSelector": {}, "ingress": [{"from": [
                {"ipBlock": {"cidr": f"10.{(i + 1) % 50}.0.0/16"}}, {"ipBlock": {"cidr": f"fd00:{(i + 2) % 50:x}::/64"}}]}]}},
        ]
    started = time.perf_counter()
    evaluation = Evaluation(labels, pods, policies)
    cells = [evaluation.cell(s, t) for s in names for t in names]
    summaries = [evaluation.summary(c) for c in cells]
    elapsed = time.perf_counter() - started
    assert len(summaries) == 2500 and {"all", "none"} <= {c.reach for c in cells}
    assert elapsed < 2.0, f"{elapsed:.2f} s"
