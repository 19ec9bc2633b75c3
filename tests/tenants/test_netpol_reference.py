"""NetworkPolicy evaluation (tenants.netpol) on generated policy sets, checked against a deliberately simple
pod-by-pod reference written here (the documentation's examples by hand are in test_netpol.py)."""

from __future__ import annotations

import ipaddress
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tenants.netpol.evaluation import Evaluation
from tenants.netpol.objects import Pod

NAME = "kubernetes.io/metadata.name"


def policy(namespace: str, name: str, **spec: Any) -> dict[str, Any]:
    return {"metadata": {"namespace": namespace, "name": name}, "spec": spec}


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


def ref_in_block(block: dict[str, Any], other: Pod) -> bool:
    """Some address of ``other`` is in the CIDR and in none of its exceptions (no address: no match)."""
    network = ipaddress.ip_network(block["cidr"])
    carved = [ipaddress.ip_network(c) for c in block.get("except", [])]
    return any(address in network and not any(address in c for c in carved) for address in map(ipaddress.ip_address, other.ips))


def ref_port_exists(rule: dict[str, Any], destination: Pod) -> bool:
    """Some port of the rule exists on ``destination``: any number or range, or a name it declares with that protocol."""
    ports = rule.get("ports")
    if not ports:
        return True
    return any(port.get("port") is None or isinstance(port["port"], int)
               or (port["port"], port.get("protocol", "TCP")) in destination.named_ports for port in ports)


def ref_peer(peer: dict[str, Any], policy_ns: str, other: Pod, ns_labels: dict[str, dict[str, str]]) -> bool:
    if "ipBlock" in peer:
        return ref_in_block(peer["ipBlock"], other)
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
    destination = pod if direction == "ingress" else other  # whose container ports a named port names
    for p in applying:
        for rule in p["spec"].get(direction) or []:
            peers = rule.get("from" if direction == "ingress" else "to")
            if (not peers or any(ref_peer(peer, p["metadata"]["namespace"], other, ns_labels) for peer in peers)) \
                    and ref_port_exists(rule, destination):
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


# Pod addresses and the blocks drawn around them: nested IPv4 ranges, IPv6, and blocks that cover no pod.
IPS = ["10.1.2.3", "10.1.2.4", "10.1.3.5", "10.2.0.1", "192.168.1.1", "fd00::1", "fd00::2", "2001:db8::1"]
CIDRS = ["0.0.0.0/0", "10.0.0.0/8", "10.1.0.0/16", "10.1.2.0/24", "10.1.2.3/32", "172.16.0.0/12", "::/0", "fd00::/8",
         "fd00::1/128", "2001:db8::/32"]
NAMED = [("http", "TCP"), ("http", "UDP"), ("dns", "UDP"), ("metrics", "TCP")]


@st.composite
def ip_block_st(draw):
    cidr = draw(st.sampled_from(CIDRS))
    inside = [c for c in CIDRS if c != cidr and ipaddress.ip_network(c).version == ipaddress.ip_network(cidr).version
              and ipaddress.ip_network(c).subnet_of(ipaddress.ip_network(cidr))]  # the API server refuses except outside cidr
    block = {"cidr": cidr}
    if inside and draw(st.booleans()):
        block["except"] = draw(st.lists(st.sampled_from(inside), min_size=1, max_size=2, unique=True))
    return {"ipBlock": block}


peer_st = st.one_of(
    st.builds(lambda s: {"podSelector": s}, selector_st()),
    st.builds(lambda s: {"namespaceSelector": s}, selector_st()),
    st.builds(lambda n, p: {"namespaceSelector": n, "podSelector": p}, selector_st(), selector_st()),
    ip_block_st())
# Numbers, a range and a whole protocol exist on every pod; names only where declared, with their protocol.
port_st = st.sampled_from([
    {"port": 80}, {"port": 53, "protocol": "UDP"}, {"port": 8000, "endPort": 9000}, {"protocol": "UDP"},
    {"port": "http"}, {"port": "http", "protocol": "UDP"}, {"port": "http", "protocol": "TCP"}, {"port": "dns", "protocol": "UDP"},
    {"port": "dns"}, {"port": "metrics"}, {"port": "nope"}])


@st.composite
def rule_st(draw, peers_key):
    rule = {}
    choice = draw(st.sampled_from(["missing", "empty", "peers", "peers"]))
    if choice == "empty":
        rule[peers_key] = []
    elif choice == "peers":
        rule[peers_key] = draw(st.lists(peer_st, min_size=1, max_size=3))
    if draw(st.booleans()):
        rule["ports"] = draw(st.lists(port_st, min_size=1, max_size=2))
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
    pod_st = st.tuples(labels_st, st.lists(st.sampled_from(IPS), max_size=2, unique=True),
                       st.frozensets(st.sampled_from(NAMED), max_size=2))
    everyone = [Pod(n, f"{n}-{i}", labels, ips=tuple(ips), named_ports=named)
                for n in names for i, (labels, ips, named) in enumerate(draw(st.lists(pod_st, max_size=4)))]
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
                    assert any(r.direction == direction and r.rule is not None and " allowed by " in r.text for r in reasons), \
                        (source, target, direction)
            # A side the verdict blames says that no rule lets its pods through, and names no rule as allowing.
            for direction, side in (("egress", source), ("ingress", target)):
                if cell.reach == "none" and f"{side}'s {direction}" in e.summary(cell):
                    mine = [r.text for r in reasons if r.direction == direction]
                    assert any(t.startswith(f"{direction}: no rule lets {side}'s isolated pods") for t in mine), (source, target)
                    assert not any(" allowed by " in t for t in mine), (source, target)
