"""NetworkPolicy evaluation (tenants.netpol): the Kubernetes documentation's examples checked by hand,
and generated policy sets checked against a deliberately simple pod-by-pod reference written here."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tenants.netpol import Evaluation, Pod, selector_matches

NAME = "kubernetes.io/metadata.name"


def namespaces(*names: str, **extra: dict[str, str]) -> dict[str, dict[str, str]]:
    """Namespaces labelled as a real API server labels them, plus ``extra[name]``."""
    return {n: {NAME: n, **extra.get(n.replace("-", "_"), {})} for n in names}


def pods(namespace: str, *labels: dict[str, str]) -> list[Pod]:
    return [Pod(namespace, f"{namespace}-{i}", dict(one)) for i, one in enumerate(labels)]


def policy(namespace: str, name: str, **spec: Any) -> dict[str, Any]:
    return {"metadata": {"namespace": namespace, "name": name}, "spec": spec}


def reach(evaluation: Evaluation, source: str, target: str) -> str:
    return evaluation.cell(source, target).reach


def texts(evaluation: Evaluation, source: str, target: str) -> list[str]:
    return [r.text for r in evaluation.reasons(source, target)]


# ---- the documentation's examples, by hand -----------------------------------------------

DENY_INGRESS = policy("a", "default-deny-ingress", podSelector={}, policyTypes=["Ingress"])
DENY_EGRESS = policy("a", "default-deny-egress", podSelector={}, policyTypes=["Egress"])
DENY_ALL = policy("a", "default-deny-all", podSelector={}, policyTypes=["Ingress", "Egress"])
ALLOW_ALL_INGRESS = policy("a", "allow-all-ingress", podSelector={}, ingress=[{}])
ALLOW_ALL_EGRESS = policy("a", "allow-all-egress", podSelector={}, egress=[{}], policyTypes=["Egress"])
TWO = namespaces("a", "b")
TWO_PODS = pods("a", {"app": "x"}, {"app": "y"}) + pods("b", {"app": "x"})


def test_no_policy_allows_everything():
    e = Evaluation(TWO, TWO_PODS, [])
    assert {reach(e, s, t) for s in TWO for t in TWO} == {"all"}
    assert texts(e, "a", "b") == ["egress: no policy isolates a's pods for egress, so they may connect to any pod",
                                  "ingress: no policy isolates b's pods for ingress, so they may accept connections from any pod"]


def test_default_deny_all_ingress():
    e = Evaluation(TWO, TWO_PODS, [DENY_INGRESS])
    assert (reach(e, "b", "a"), reach(e, "a", "a"), reach(e, "a", "b")) == ("none", "none", "all")  # egress untouched
    assert "ingress: a/default-deny-ingress isolates all 2 pods of a for ingress" in texts(e, "b", "a")
    assert "ingress: no rule lets a's isolated pods accept connections from pods of b" in texts(e, "b", "a")
    assert e.summary(e.cell("b", "a")) == ("none: the only pod of b may not connect to all 2 pods of a "
                                           "(blocked by a's ingress)")


def test_allow_all_ingress_overrides_the_default_deny():
    e = Evaluation(TWO, TWO_PODS, [DENY_INGRESS, ALLOW_ALL_INGRESS])
    assert reach(e, "b", "a") == "all"
    assert ("ingress allowed by a/allow-all-ingress rule 1 (from anywhere; any port) to all 2 pods of a "
            "from the only pod of b") in texts(e, "b", "a")


def test_default_deny_all_egress():
    e = Evaluation(TWO, TWO_PODS, [DENY_EGRESS])
    assert (reach(e, "a", "b"), reach(e, "a", "a"), reach(e, "b", "a")) == ("none", "none", "all")  # ingress untouched
    assert e.summary(e.cell("a", "b")).endswith("(blocked by a's egress)")


def test_allow_all_egress_overrides_the_default_deny():
    e = Evaluation(TWO, TWO_PODS, [DENY_EGRESS, ALLOW_ALL_EGRESS])
    assert reach(e, "a", "b") == "all"
    assert any(t.startswith("egress allowed by a/allow-all-egress rule 1 (to anywhere; any port)") for t in texts(e, "a", "b"))


def test_default_deny_all_ingress_and_egress():
    e = Evaluation(TWO, TWO_PODS, [DENY_ALL])
    assert (reach(e, "a", "b"), reach(e, "b", "a"), reach(e, "a", "a"), reach(e, "b", "b")) == ("none", "none", "none", "all")
    assert e.summary(e.cell("a", "a")).endswith("(blocked by a's egress and by a's ingress)")


# The documentation's "namespaceSelector and podSelector" example: one peer with both is an AND;
# two peers are an OR ("pods role=client of the local namespace, or any pod of a user=alice namespace").
ALICE = namespaces("db", "alice", "bob", alice={"user": "alice"}, bob={"user": "bob"})
ALICE_PODS = pods("db", {"role": "db"}, {"role": "client"}) + pods("alice", {"role": "client"}, {"role": "other"}) \
    + pods("bob", {"role": "client"})


def test_namespace_and_pod_selector_in_one_peer_is_an_and():
    both = policy("db", "and", podSelector={}, ingress=[{"from": [
        {"namespaceSelector": {"matchLabels": {"user": "alice"}}, "podSelector": {"matchLabels": {"role": "client"}}}]}])
    e = Evaluation(ALICE, ALICE_PODS, [both])
    assert (reach(e, "alice", "db"), reach(e, "bob", "db"), reach(e, "db", "db")) == ("some", "none", "none")
    cell = e.cell("alice", "db")
    assert (cell.pairs_allowed, cell.pairs, cell.sources_reaching, cell.targets_reached) == (2, 4, 1, 2)
    assert ("ingress allowed by db/and rule 1 (from pods role=client in namespaces user=alice; any port) "
            "to all 2 pods of db from 1 of 2 pods of alice") in texts(e, "alice", "db")


def test_two_peers_are_an_or():
    either = policy("db", "or", podSelector={}, ingress=[{"from": [
        {"namespaceSelector": {"matchLabels": {"user": "alice"}}}, {"podSelector": {"matchLabels": {"role": "client"}}}]}])
    e = Evaluation(ALICE, ALICE_PODS, [either])
    assert (reach(e, "alice", "db"), reach(e, "bob", "db"), reach(e, "db", "db")) == ("all", "none", "some")
    assert ("ingress allowed by db/or rule 1 (from all pods in namespaces user=alice or pods role=client of db; any port) "
            "to all 2 pods of db from 1 of 2 pods of db") in texts(e, "db", "db")


def test_the_issue_default_deny_plus_allow_from_a_namespace_to_web_pods_is_some():
    """Issue 13: with a default-deny and "allow from namespace x to app=web", x does reach the web pods."""
    spaces = namespaces("shop", "x")
    everyone = pods("shop", *[{"app": "web"}] * 3, *[{"app": "api"}] * 2) + pods("x", {"team": "x"})
    rules = [policy("shop", "default-deny", podSelector={}, policyTypes=["Ingress"]),
             policy("shop", "allow-web", podSelector={"matchLabels": {"app": "web"}},
                    ingress=[{"from": [{"namespaceSelector": {"matchLabels": {NAME: "x"}}}], "ports": [{"port": 8080}]}])]
    e = Evaluation(spaces, everyone, rules)
    cell = e.cell("x", "shop")
    assert (cell.reach, cell.allowed, cell.pairs_allowed, cell.pairs, cell.targets_reached) == ("some", True, 3, 5, 3)
    assert e.summary(cell) == "some: 3 of 5 pod pairs allowed; the only pod of x may connect to 3 of 5 pods of shop"
    assert ("ingress allowed by shop/allow-web rule 1 (from all pods in namespace x; port TCP/8080) to 3 of 5 pods of shop "
            "from the only pod of x") in texts(e, "x", "shop")
    assert "ingress: shop/default-deny isolates all 5 pods of shop for ingress" in texts(e, "x", "shop")


def test_missing_policy_types_default_to_ingress_plus_egress_when_there_are_egress_rules():
    to_b = policy("a", "to-b", podSelector={}, egress=[{"to": [{"namespaceSelector": {"matchLabels": {NAME: "b"}}}]}])
    spaces = namespaces("a", "b", "c")
    e = Evaluation(spaces, pods("a", {}) + pods("b", {}) + pods("c", {}), [to_b])
    assert (reach(e, "a", "b"), reach(e, "a", "c")) == ("all", "none")  # egress isolated by the default
    assert reach(e, "c", "a") == "none"  # and ingress too (no ingress rules)
    assert "egress: a/to-b isolates the only pod of a for egress" in texts(e, "a", "c")
    # An empty egress list adds no Egress type: only ingress is isolated.
    e = Evaluation(spaces, pods("a", {}) + pods("c", {}), [policy("a", "empty", podSelector={}, egress=[], policyTypes=[])])
    assert (reach(e, "a", "c"), reach(e, "c", "a")) == ("all", "none")
    # Rules of a type the policy does not have do not count.
    e = Evaluation(spaces, pods("a", {}) + pods("c", {}), [policy("a", "eg", podSelector={}, policyTypes=["Egress"], ingress=[{}])])
    assert (reach(e, "a", "c"), reach(e, "c", "a")) == ("none", "all")


def test_missing_pod_selector_selects_every_pod():
    e = Evaluation(TWO, TWO_PODS, [policy("a", "no-selector", policyTypes=["Ingress"])])
    assert reach(e, "b", "a") == "none"


def test_empty_from_and_empty_rules():
    e = Evaluation(TWO, TWO_PODS, [policy("a", "empty-from", podSelector={}, ingress=[{"from": [], "ports": [{"port": 53, "protocol": "UDP"}]}])])
    assert reach(e, "b", "a") == "all"  # an empty from is every source; ports only narrow which port
    assert "(from anywhere; port UDP/53)" in " ".join(texts(e, "b", "a"))
    e = Evaluation(TWO, TWO_PODS, [policy("a", "no-rules", podSelector={}, ingress=[])])
    assert reach(e, "b", "a") == "none"


def test_ip_blocks_reach_no_pod_in_the_cluster():
    block = policy("a", "cidr", podSelector={}, policyTypes=["Ingress", "Egress"],
                   ingress=[{"from": [{"ipBlock": {"cidr": "0.0.0.0/0"}}]}], egress=[{"to": [{"ipBlock": {"cidr": "10.0.0.0/8", "except": ["10.1.0.0/16"]}}]}])
    e = Evaluation(TWO, TWO_PODS, [block])
    assert (reach(e, "a", "b"), reach(e, "b", "a")) == ("none", "none")


def test_pods_not_selected_stay_open():
    web_only = policy("a", "web-only", podSelector={"matchLabels": {"app": "x"}}, policyTypes=["Ingress"])
    e = Evaluation(TWO, TWO_PODS, [web_only])
    assert reach(e, "b", "a") == "some"
    assert "ingress: 1 of 2 pods of a not isolated for ingress: they may accept connections from any pod" in texts(e, "b", "a")


def test_a_namespace_without_pods_is_evaluated_for_a_new_pod_without_labels():
    spaces = namespaces("a", "b")
    rules = [policy("a", "deny", podSelector={}, policyTypes=["Ingress"]),
             policy("a", "web", podSelector={"matchLabels": {"app": "web"}}, ingress=[{}])]
    e = Evaluation(spaces, pods("b", {}), rules)
    cell = e.cell("b", "a")
    assert (cell.reach, cell.target_pods, cell.pairs) == ("none", 0, 1)  # the unlabelled pod is not app=web
    assert e.summary(cell) == ("none: the only pod of b may not connect to a new pod in a (it has no pods) "
                               "(blocked by a's ingress)")


def test_selector_semantics():
    assert selector_matches({}, {}) and selector_matches({}, {"a": "1"})
    assert not selector_matches(None, {"a": "1"})
    assert selector_matches({"matchExpressions": [{"key": "a", "operator": "NotIn", "values": ["1"]}]}, {})  # absent key
    assert not selector_matches({"matchExpressions": [{"key": "a", "operator": "NotIn", "values": ["1"]}]}, {"a": "1"})
    assert not selector_matches({"matchExpressions": [{"key": "a", "operator": "In", "values": ["1"]}]}, {})
    assert selector_matches({"matchExpressions": [{"key": "a", "operator": "Exists"}]}, {"a": ""})
    assert selector_matches({"matchExpressions": [{"key": "a", "operator": "DoesNotExist"}]}, {"b": "1"})
    assert not selector_matches({"matchLabels": {"a": "1"}, "matchExpressions": [{"key": "b", "operator": "Exists"}]}, {"a": "1"})
    assert not selector_matches({"matchExpressions": [{"key": "a", "operator": "Gt", "values": ["1"]}]}, {"a": "2"})


# ---- generated policy sets against a simple reference ----------------------------------------

def ref_requirements(selector: dict[str, Any]) -> list[tuple[str, str, set[str]]]:
    """A selector as plain requirements; matchLabels are In with one value (as the API reference says)."""
    reqs = [(k, "In", {v}) for k, v in (selector.get("matchLabels") or {}).items()]
    return reqs + [(e["key"], e["operator"], set(e.get("values") or [])) for e in selector.get("matchExpressions") or []]


def ref_selects(selector: dict[str, Any] | None, labels: dict[str, str]) -> bool:
    if selector is None:
        return False
    checks = {"In": lambda k, vs: labels.get(k, None) in vs and k in labels,
              "NotIn": lambda k, vs: not (k in labels and labels[k] in vs),
              "Exists": lambda k, vs: k in labels,
              "DoesNotExist": lambda k, vs: k not in labels}
    return all(checks[op](key, values) for key, op, values in ref_requirements(selector))


def ref_peer(peer: dict[str, Any], policy_ns: str, other: Pod, ns_labels: dict[str, dict[str, str]]) -> bool:
    if "ipBlock" in peer:
        return False
    if "namespaceSelector" in peer:
        in_namespace = ref_selects(peer["namespaceSelector"], ns_labels[other.namespace])
    else:
        in_namespace = other.namespace == policy_ns
    if "podSelector" in peer:
        return in_namespace and ref_selects(peer["podSelector"], dict(other.labels))
    return in_namespace and "namespaceSelector" in peer


def ref_applying(pod: Pod, direction: str, policies: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The policies of ``pod``'s namespace that select it and have ``direction`` in their (defaulted) types."""
    applying = []
    for p in policies:
        spec = p["spec"]
        types = spec.get("policyTypes") or (["Ingress", "Egress"] if spec.get("egress") else ["Ingress"])
        if p["metadata"]["namespace"] == pod.namespace and ref_selects(spec.get("podSelector", {}), dict(pod.labels)) \
                and direction.capitalize() in types:
            applying.append(p)
    return applying


def ref_lets(pod: Pod, other: Pod, direction: str, policies: list[dict[str, Any]], ns_labels: dict[str, dict[str, str]]) -> bool:
    """Does ``pod``'s ``direction`` (ingress: from, egress: to) let ``other`` through? One pair, no shortcuts."""
    applying = ref_applying(pod, direction, policies)
    if not applying:
        return True
    for p in applying:
        for rule in p["spec"].get(direction) or []:
            peers = rule.get("from" if direction == "ingress" else "to")
            if not peers or any(ref_peer(peer, p["metadata"]["namespace"], other, ns_labels) for peer in peers):
                return True
    return False


def ref_cell(source: str, target: str, everyone: list[Pod], policies, ns_labels) -> tuple[str, int, int, int, int]:
    def of(ns: str) -> list[Pod]:
        return [p for p in everyone if p.namespace == ns] or [Pod(ns, "", {})]

    sources, targets = of(source), of(target)
    allowed = [(i, j) for i, a in enumerate(sources) for j, b in enumerate(targets)
               if ref_lets(a, b, "egress", policies, ns_labels) and ref_lets(b, a, "ingress", policies, ns_labels)]
    total = len(sources) * len(targets)
    verdict = "all" if len(allowed) == total else "none" if not allowed else "some"
    return verdict, len(allowed), total, len({i for i, _ in allowed}), len({j for _, j in allowed})


KEYS, VALUES = ["app", "tier", "env"], ["a", "b", "c"]
labels_st = st.dictionaries(st.sampled_from(KEYS), st.sampled_from(VALUES), max_size=3)
expression_st = st.one_of(
    st.builds(lambda k, op, vs: {"key": k, "operator": op, "values": vs}, st.sampled_from(KEYS), st.sampled_from(["In", "NotIn"]),
              st.lists(st.sampled_from(VALUES), min_size=1, max_size=2, unique=True)),
    st.builds(lambda k, op: {"key": k, "operator": op}, st.sampled_from(KEYS), st.sampled_from(["Exists", "DoesNotExist"])))


@st.composite
def selector_st(draw):
    selector = {}
    if draw(st.booleans()):
        selector["matchLabels"] = draw(st.dictionaries(st.sampled_from(KEYS), st.sampled_from(VALUES), max_size=2))
    if draw(st.booleans()):
        selector["matchExpressions"] = draw(st.lists(expression_st, max_size=2))
    return selector


peer_st = st.one_of(
    st.builds(lambda s: {"podSelector": s}, selector_st()),
    st.builds(lambda s: {"namespaceSelector": s}, selector_st()),
    st.builds(lambda n, p: {"namespaceSelector": n, "podSelector": p}, selector_st(), selector_st()),
    st.just({"ipBlock": {"cidr": "10.0.0.0/8"}}))


@st.composite
def rule_st(draw, peers_key):
    rule = {}
    choice = draw(st.sampled_from(["missing", "empty", "peers", "peers"]))
    if choice == "empty":
        rule[peers_key] = []
    elif choice == "peers":
        rule[peers_key] = draw(st.lists(peer_st, min_size=1, max_size=3))
    if draw(st.booleans()):
        rule["ports"] = [{"protocol": "TCP", "port": draw(st.sampled_from([80, 443, "http"]))}]
    return rule


@st.composite
def policy_st(draw, names):
    spec = {}
    if draw(st.integers(0, 3)):
        spec["podSelector"] = draw(selector_st())
    types = draw(st.sampled_from([None, [], ["Ingress"], ["Egress"], ["Ingress", "Egress"]]))
    if types is not None:
        spec["policyTypes"] = types
    for direction, peers_key in (("ingress", "from"), ("egress", "to")):
        shape = draw(st.sampled_from(["missing", "empty", "rules", "rules"]))
        if shape == "empty":
            spec[direction] = []
        elif shape == "rules":
            spec[direction] = draw(st.lists(rule_st(peers_key), min_size=1, max_size=2))
    return policy(draw(st.sampled_from(names)), "", **spec)


@st.composite
def world_st(draw):
    names = draw(st.lists(st.sampled_from(["ns-a", "ns-b", "ns-c", "ns-d"]), min_size=1, max_size=4, unique=True))
    ns_labels = {n: {NAME: n, **draw(labels_st)} for n in names}
    everyone = [Pod(n, f"{n}-{i}", labels) for n in names for i, labels in enumerate(draw(st.lists(labels_st, max_size=4)))]
    policies = draw(st.lists(policy_st(names), max_size=6))
    for i, p in enumerate(policies):  # names are unique in a namespace on a real cluster
        p["metadata"]["name"] = f"p{i}"
    return ns_labels, everyone, policies


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(world_st())
def test_matrix_matches_a_pod_by_pod_reference(world):
    ns_labels, everyone, policies = world
    e = Evaluation(ns_labels, everyone, policies)
    for source in ns_labels:
        for target in ns_labels:
            cell = e.cell(source, target)
            expected = ref_cell(source, target, everyone, policies, ns_labels)
            got = (cell.reach, cell.pairs_allowed, cell.pairs, cell.sources_reaching, cell.targets_reached)
            assert got == expected, (source, target)
            reasons = e.reasons(source, target)
            named = {r.policy for r in reasons if r.policy}
            assert named <= {f"{p['metadata']['namespace']}/{p['metadata']['name']}" for p in policies}
            # A cell that lets something through a side whose pods are all isolated names the rule that does.
            def of(ns: str) -> list[Pod]:
                return [p for p in everyone if p.namespace == ns] or [Pod(ns, "", {})]

            for direction, side in (("egress", source), ("ingress", target)):
                if cell.reach != "none" and all(ref_applying(pod, direction, policies) for pod in of(side)):
                    assert any(r.direction == direction and r.rule is not None for r in reasons), (source, target, direction)


long_text = st.text(alphabet="abcdefghij-./", min_size=1, max_size=400)


@settings(max_examples=60, deadline=None)
@example(values=["v" * 400] * 300, peers=300, ports=300, key="k" * 400)
@given(values=st.lists(long_text, min_size=1, max_size=300), peers=st.integers(1, 300), ports=st.integers(1, 300),
       key=long_text)
def test_reasons_stay_readable_whatever_the_cluster_sends(values, peers, ports, key):
    """A policy can carry any number of peers, values and ports, and long keys; each reason stays bounded."""
    selector = {"matchExpressions": [{"key": key, "operator": "NotIn", "values": values}] * 20}  # no pod has the key: matches
    rule = {"from": [{"namespaceSelector": selector, "podSelector": selector}, {"ipBlock": {"cidr": key, "except": values}}] * peers,
            "ports": [{"port": v, "protocol": key, "endPort": v} for v in (values * ports)[:ports]]}
    e = Evaluation(TWO, TWO_PODS, [policy("a", key[:253], podSelector={}, ingress=[rule])])
    reasons = e.reasons("b", "a")
    assert any(r.rule == 1 for r in reasons)  # the long rule is the one explained
    for r in reasons:
        assert len(r.text) < 1700, r.text[:200]
