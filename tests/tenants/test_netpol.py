"""NetworkPolicy evaluation (tenants.netpol): the Kubernetes documentation's examples checked by hand,
and generated policy sets checked against a deliberately simple pod-by-pod reference written here."""

from __future__ import annotations

from typing import Any

from hypothesis import example, given, settings
from hypothesis import strategies as st

from tenants.netpol.evaluation import Evaluation
from tenants.netpol.objects import Pod, pods_from_raw, selector_matches

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


def test_ip_blocks_match_no_pod_without_an_ip():
    """Pods not started yet (and a namespace's hypothetical new pod) have no IP: no block matches them, and the reasons say so."""
    block = policy("a", "cidr", podSelector={}, policyTypes=["Ingress", "Egress"],
                   ingress=[{"from": [{"ipBlock": {"cidr": "0.0.0.0/0"}}]}], egress=[{"to": [{"ipBlock": {"cidr": "10.0.0.0/8", "except": ["10.1.0.0/16"]}}]}])
    e = Evaluation(TWO, TWO_PODS, [block])
    assert (reach(e, "a", "b"), reach(e, "b", "a")) == ("none", "none")
    assert "ingress: the only pod of b has no IP yet: no IP block matches it" in texts(e, "b", "a")
    assert "egress: the only pod of b has no IP yet: no IP block matches it" in texts(e, "a", "b")
    e = Evaluation(namespaces("a", "b"), pods("a", {}), [block])
    assert "ingress: a new pod in b (it has no pods) has no IP yet: no IP block matches it" in texts(e, "b", "a")


# ---- ipBlock against pod IPs, named ports (the reviewer's repros first) --------------------------

def pod(namespace: str, name: str, ips: tuple[str, ...] = (), ports: tuple[tuple[str, str], ...] = (), **labels: str) -> Pod:
    return Pod(namespace, name, labels, ips=ips, named_ports=frozenset(ports))


S2_S4 = namespaces("s2", "s4")
S2_S4_PODS = [pod("s2", "fe", ("10.244.1.5",), app="fe"), pod("s2", "be", ("10.244.2.7",), app="be"),
              pod("s4", "db-0", ("10.244.3.2",)), pod("s4", "db-1", ("10.244.3.3",))]


def test_an_ip_block_around_one_pod_ip_admits_that_pod():
    """The reviewer's repro: s4 admits s2/fe's /32 only. This read "none" (looks sealed); fe does get in."""
    from_fe = policy("s4", "from-fe", podSelector={}, ingress=[{"from": [{"ipBlock": {"cidr": "10.244.1.5/32"}}]}])
    e = Evaluation(S2_S4, S2_S4_PODS, [from_fe])
    cell = e.cell("s2", "s4")
    assert (cell.reach, cell.pairs_allowed, cell.pairs, cell.sources_reaching) == ("some", 2, 4, 1)
    assert ("ingress allowed by s4/from-fe rule 1 (from IP block 10.244.1.5/32; any port) to all 2 pods of s4 "
            "from 1 of 2 pods of s2") in texts(e, "s2", "s4")
    assert not any("no rule lets" in t for t in texts(e, "s2", "s4"))
    assert reach(e, "s4", "s4") == "none"  # s4's own pods are not in the block


def test_an_ip_block_covering_every_pod_ip_admits_every_pod():
    """The reviewer's second repro: 10.0.0.0/8 covers every pod IP here, so it is an allow-all for pods."""
    wide = policy("s4", "ten", podSelector={}, ingress=[{"from": [{"ipBlock": {"cidr": "10.0.0.0/8"}}]}])
    e = Evaluation(S2_S4, S2_S4_PODS, [wide])
    assert (reach(e, "s2", "s4"), reach(e, "s4", "s4")) == ("all", "all")
    assert ("ingress allowed by s4/ten rule 1 (from IP block 10.0.0.0/8; any port) to all 2 pods of s4 "
            "from all 2 pods of s2") in texts(e, "s2", "s4")


def test_an_except_carves_a_pod_out_of_its_block():
    """The e2e test "should enforce except clause while egress access to server in CIDR block", with pods of s4 as servers."""
    egress = policy("s2", "out", podSelector={}, policyTypes=["Egress"],
                    egress=[{"to": [{"ipBlock": {"cidr": "10.244.0.0/16", "except": ["10.244.3.3/32"]}}]}])
    e = Evaluation(S2_S4, S2_S4_PODS, [egress])
    cell = e.cell("s2", "s4")
    assert (cell.reach, cell.pairs_allowed, cell.targets_reached) == ("some", 2, 1)  # db-1 carved out, db-0 reached
    assert ("egress allowed by s2/out rule 1 (to IP block 10.244.0.0/16 except 10.244.3.3/32; any port) "
            "from all 2 pods of s2 to 1 of 2 pods of s4") in texts(e, "s2", "s4")
    assert reach(e, "s2", "s2") == "all"  # fe and be are in the block too
    # Another peer of the same rule may still match the carved-out pod: peers are an OR.
    either = policy("s2", "out", podSelector={}, policyTypes=["Egress"], egress=[{"to": [
        {"ipBlock": {"cidr": "10.244.0.0/16", "except": ["10.244.3.0/24"]}}, {"ipBlock": {"cidr": "10.244.3.3/32"}}]}])
    assert Evaluation(S2_S4, S2_S4_PODS, [either]).cell("s2", "s4").targets_reached == 1


def test_ip_blocks_match_ipv6_and_dual_stack_pods():
    spaces = namespaces("v6", "srv")
    everyone = [pod("v6", "dual", ("10.244.1.5", "fd00:10:244::5")), pod("v6", "v4-only", ("10.244.1.6",)),
                pod("v6", "v6-only", ("fd00:10:244::7",)), pod("srv", "server", ("fd00:10:244::9",))]
    only_v6 = policy("srv", "v6", podSelector={}, ingress=[{"from": [
        {"ipBlock": {"cidr": "fd00:10:244::/64", "except": ["fd00:10:244::7/128"]}}]}])
    e = Evaluation(spaces, everyone, [only_v6])
    cell = e.cell("v6", "srv")
    assert (cell.reach, cell.pairs_allowed) == ("some", 1)  # dual by its IPv6 address; v6-only excepted; v4-only outside
    assert ("ingress allowed by srv/v6 rule 1 (from IP block fd00:10:244::/64 except fd00:10:244::7/128; any port) "
            "to the only pod of srv from 1 of 3 pods of v6") in texts(e, "v6", "srv")
    everything_v4 = policy("srv", "v4", podSelector={}, ingress=[{"from": [{"ipBlock": {"cidr": "0.0.0.0/0"}}]}])
    assert Evaluation(spaces, everyone, [everything_v4]).cell("v6", "srv").pairs_allowed == 2  # not v6-only


def test_a_named_port_no_pod_declares_allows_nothing():
    """The reviewer's repro: a rule on a named port that none of the target pods declares read "all 18/18"."""
    spaces = namespaces("s1", "s4")
    everyone = [pod("s1", f"c-{i}", (f"10.244.1.{i}",), (("http", "TCP"),)) for i in range(6)] \
        + [pod("s4", f"w-{i}", (f"10.244.4.{i}",), (("web", "TCP"),)) for i in range(3)]
    rule = policy("s4", "named", podSelector={}, ingress=[{"ports": [{"port": "no-such-port"}]}])
    e = Evaluation(spaces, everyone, [rule])
    assert reach(e, "s1", "s4") == "none"
    assert ("ingress: s4/named rule 1 (from anywhere; port TCP/no-such-port) matches all 6 pods of s1, but none of the "
            "3 pods it selects in s4 declares its named port TCP/no-such-port: it admits nothing") in texts(e, "s1", "s4")
    assert "ingress: no rule lets s4's isolated pods accept connections from pods of s1" in texts(e, "s1", "s4")
    assert e.summary(e.cell("s1", "s4")).endswith("(blocked by s4's ingress)")
    # The name with another protocol is another port: a UDP "web" does not exist on these pods either.
    udp = policy("s4", "named", podSelector={}, ingress=[{"ports": [{"port": "web", "protocol": "UDP"}]}])
    assert reach(Evaluation(spaces, everyone, [udp]), "s1", "s4") == "none"
    # A number, a range or a whole protocol is reachable on any pod, declared or not; so is a rule that adds one to a name.
    for ports in ([{"port": 8080}], [{"port": 8000, "endPort": 9000}], [{"protocol": "UDP"}], [{"port": "nope"}, {"port": 53}]):
        numeric = policy("s4", "numeric", podSelector={}, ingress=[{"ports": ports}])
        assert reach(Evaluation(spaces, everyone, [numeric]), "s1", "s4") == "all", ports


def test_a_named_port_admits_only_the_selected_pods_that_declare_it():
    spaces = namespaces("a", "b")
    everyone = [pod("a", "web-0", ports=(("http", "TCP"),)), pod("a", "web-1", ports=(("http", "UDP"),)),
                pod("a", "web-2"), pod("b", "client")]
    rule = policy("a", "http", podSelector={}, ingress=[{"from": [{"namespaceSelector": {}}], "ports": [{"port": "http"}]}])
    e = Evaluation(spaces, everyone, [rule])
    cell = e.cell("b", "a")
    assert (cell.reach, cell.pairs_allowed, cell.targets_reached) == ("some", 1, 1)  # web-1's http is UDP
    assert ("ingress allowed by a/http rule 1 (from all pods in all namespaces; port TCP/http) to 1 of 3 pods of a "
            "from the only pod of b (1 of the 3 pods it selects in a declare its named port TCP/http)") in texts(e, "b", "a")


def test_an_egress_named_port_is_the_destination_pods_port():
    """Egress to a named port reaches the destination pods that declare it; the source's own ports do not count."""
    spaces = namespaces("a", "b")
    everyone = [pod("a", "scraper", ports=(("metrics", "TCP"),)), pod("b", "app", ports=(("metrics", "TCP"),)), pod("b", "db")]
    scrape = policy("a", "scrape", podSelector={}, policyTypes=["Egress"], egress=[{"ports": [{"port": "metrics"}]}])
    e = Evaluation(spaces, everyone, [scrape])
    cell = e.cell("a", "b")
    assert (cell.reach, cell.pairs_allowed, cell.targets_reached) == ("some", 1, 1)
    assert ("egress allowed by a/scrape rule 1 (to anywhere; port TCP/metrics) from the only pod of a to 1 of 2 pods of b "
            "(1 of the 2 pods its peers match in b declare its named port TCP/metrics)") in texts(e, "a", "b")
    lonely = Evaluation(namespaces("a", "c"), [everyone[0], pod("c", "db")], [scrape])
    assert reach(lonely, "a", "c") == "none"
    assert ("egress: a/scrape rule 1 (to anywhere; port TCP/metrics) applies to the only pod of a, but the pod its peers "
            "match in c does not declare its named port TCP/metrics: it allows nothing to them") in texts(lonely, "a", "c")
    empty = Evaluation(namespaces("a", "c"), [everyone[0]], [scrape])
    assert ("egress: a/scrape rule 1 (to anywhere; port TCP/metrics) applies to the only pod of a, but a new pod in c "
            "(it has no pods) declares no named port TCP/metrics: it allows nothing to them") in texts(empty, "a", "c")


def test_pods_from_raw_keep_ips_and_named_ports():
    raw = [
        {"metadata": {"namespace": "a", "name": "dual", "labels": {"app": "x"}},
         "spec": {"containers": [{"name": "main", "ports": [{"name": "http", "containerPort": 8080},
                                                            {"name": "dns", "containerPort": 53, "protocol": "UDP"},
                                                            {"containerPort": 9000}]}],
                  "initContainers": [{"name": "proxy", "restartPolicy": "Always", "ports": [{"name": "admin", "containerPort": 15000}]},
                                     {"name": "setup", "ports": [{"name": "setup", "containerPort": 1}]}]},
         "status": {"phase": "Running", "podIP": "10.244.0.5", "podIPs": [{"ip": "10.244.0.5"}, {"ip": "fd00::5"}]}},
        {"metadata": {"namespace": "a", "name": "old-style"}, "spec": {}, "status": {"phase": "Running", "podIP": "10.244.0.6"}},
        {"metadata": {"namespace": "a", "name": "pending"}, "spec": {"containers": "junk"}, "status": {"phase": "Pending", "podIPs": "junk"}},
        {"metadata": {"namespace": "a", "name": "done"}, "status": {"phase": "Succeeded", "podIP": "10.244.0.7"}},
    ]
    dual, old, pending = pods_from_raw(raw)
    assert dual.ips == ("10.244.0.5", "fd00::5") and old.ips == ("10.244.0.6",) and pending.ips == ()
    assert dual.named_ports == {("http", "TCP"), ("dns", "UDP"), ("admin", "TCP")}  # a sidecar's port counts, a setup step's not
    assert old.named_ports == pending.named_ports == frozenset()


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
