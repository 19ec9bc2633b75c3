"""NetworkPolicy evaluation: which pods may open connections to which, and why.

Pure functions and values, no I/O. The semantics are networking.k8s.io/v1's, as the
Kubernetes documentation ("Network Policies" and the API reference) states them:

- A pod is **isolated for ingress** (egress) when at least one NetworkPolicy in its own
  namespace selects it with ``spec.podSelector`` and has ``Ingress`` (``Egress``) in
  ``spec.policyTypes``. A missing ``podSelector`` is the empty selector ``{}`` (the API
  field is not a pointer), which selects every pod of the namespace. A missing or empty
  ``policyTypes`` is defaulted as the API server does on create: ``Ingress``, plus
  ``Egress`` when ``spec.egress`` has at least one rule (pksweb applies this itself, so an
  object written without the default still reads right).
- A pod that is not isolated in a direction allows everything in that direction. An
  isolated pod allows the union of the rules of the policies isolating it in that
  direction (rules of a policy count only for the directions in its ``policyTypes``).
- A connection from pod *a* to pod *b* needs *a*'s egress to allow *b* **and** *b*'s
  ingress to allow *a*.
- A rule allows traffic from (to) the union of its peers. A missing or empty
  ``from``/``to`` means every peer; a missing or empty ``ingress``/``egress`` list means
  no rule, so nothing is allowed.
- Peers: ``podSelector`` alone selects pods of the policy's own namespace;
  ``namespaceSelector`` alone selects every pod of the matching namespaces; both in one
  peer select the matching pods of the matching namespaces (AND); two peers are an OR.
  ``ipBlock`` describes addresses outside the cluster (the documentation: pod IPs are
  ephemeral and unpredictable) and so matches no pod here, even if a CIDR happens to
  cover pod addresses.
- Label selectors: ``matchLabels`` and ``matchExpressions`` are ANDed; ``In`` needs the
  key with one of the values, ``NotIn`` matches when the key is absent or has another
  value, ``Exists``/``DoesNotExist`` test the key only; ``{}`` selects everything; an
  absent selector (or an unknown operator, which the API server refuses) selects nothing.

What this does *not* model, on purpose:

- **Ports.** The question is whether *any* port may be reachable: a rule listing ports
  still allows some traffic, and the ports are shown in the rule's explanation. Egress
  ports and ingress ports are not intersected, so a pair may read "allowed" although the
  only allowed egress port is not an allowed ingress port.
- Traffic from a pod's own node, host-network pods and localhost, which NetworkPolicy
  does not govern; a pod's connection to itself is counted like any other pair.

Namespaces without pods are evaluated for one **hypothetical pod without labels**: what a
new, unlabelled pod there would get (it is selected by ``{}`` selectors such as a
default-deny). An operator looking at a fresh tenant namespace wants to know whether it
is sealed before the first workload lands, not a blank cell.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

Obj = dict[str, Any]
Direction = Literal["ingress", "egress"]
Reach = Literal["all", "some", "none"]

NAME_LABEL = "kubernetes.io/metadata.name"
_TEXT_LIMIT = 80  # one label value or CIDR as shown
_SELECTOR_LIMIT = 240  # one selector as shown
_RULE_LIMIT = 1000  # one rule's peers and ports as shown
_PEERS_SHOWN = 4  # peers described per rule before "and N more"


# ---- label selectors ----------------------------------------------------------------

def selector_matches(selector: Mapping[str, Any] | None, labels: Mapping[str, str]) -> bool:
    """Kubernetes label-selector semantics (see the module docstring)."""
    if selector is None:
        return False
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expression in selector.get("matchExpressions") or []:
        key, operator = expression.get("key"), expression.get("operator")
        values = expression.get("values") or []
        if operator == "In":
            ok = key in labels and labels[key] in values
        elif operator == "NotIn":
            ok = key not in labels or labels[key] not in values
        elif operator == "Exists":
            ok = key in labels
        elif operator == "DoesNotExist":
            ok = key not in labels
        else:
            return False
        if not ok:
            return False
    return True


def _clip(text: Any, limit: int = _TEXT_LIMIT) -> str:
    """Text from a cluster, cut to ``limit`` characters with a visible marker."""
    text = str(text)
    return text if len(text) <= limit else text[:limit - 1] + "…"


def _join(items: Iterable[Any], limit: int = 6, sep: str = ", ") -> str:
    """Items in words, the first ``limit`` of them, then "and N more": a cluster's lists can be any length."""
    items = list(items)
    shown = sep.join(_clip(i) for i in items[:limit])
    return shown + (f" and {len(items) - limit} more" if len(items) > limit else "")


def selector_text(selector: Mapping[str, Any] | None) -> str:
    """kubectl's way of writing a selector: ``app=web, tier in (a, b), !legacy``."""
    if selector is None:
        return "(nothing)"
    parts = [f"{_clip(k)}={_clip(v)}" for k, v in sorted((selector.get("matchLabels") or {}).items())]
    for expression in selector.get("matchExpressions") or []:
        key, operator = _clip(expression.get("key")), expression.get("operator")
        values = _join(expression.get("values") or [])
        parts.append({"In": f"{key} in ({values})", "NotIn": f"{key} notin ({values})", "Exists": key,
                      "DoesNotExist": f"!{key}"}.get(str(operator), f"{key} {_clip(operator)} ({values})"))
    return _clip(_join(parts, limit=8), _SELECTOR_LIMIT) if parts else "(all)"


def _namespaces_text(selector: Mapping[str, Any]) -> str:
    labels, expressions = selector.get("matchLabels") or {}, selector.get("matchExpressions") or []
    if not labels and not expressions:
        return "all namespaces"
    if list(labels) == [NAME_LABEL] and not expressions:
        return f"namespace {_clip(labels[NAME_LABEL])}"
    if not labels and len(expressions) == 1 and expressions[0].get("key") == NAME_LABEL \
            and expressions[0].get("operator") == "In":
        names = expressions[0].get("values") or []
        return f"namespace{'s' if len(names) != 1 else ''} {_join(names)}"
    return f"namespaces {selector_text(selector)}"


def peer_text(peer: Mapping[str, Any], namespace: str) -> str:
    """One ``from``/``to`` entry in words."""
    if "ipBlock" in peer:
        block = peer.get("ipBlock") or {}
        excepted = block.get("except") or []
        text = f"IP block {_clip(block.get('cidr'))}" + (f" except {_join(excepted)}" if excepted else "")
        return text + " (outside the cluster: matches no pod here)"
    pods, spaces = peer.get("podSelector"), peer.get("namespaceSelector")
    every = pods is None or not (pods.get("matchLabels") or pods.get("matchExpressions"))
    if spaces is not None:
        where = _namespaces_text(spaces)
        return f"all pods in {where}" if every else f"pods {selector_text(pods)} in {where}"
    if pods is not None:
        return f"all pods of {namespace}" if every else f"pods {selector_text(pods)} of {namespace}"
    return "(an empty peer: matches nothing)"


def ports_text(ports: list[Obj] | None) -> str:
    if not ports:
        return "any port"
    shown = []
    for port in ports:
        port = port or {}
        protocol, number, end = _clip(port.get("protocol") or "TCP"), port.get("port"), port.get("endPort")
        if number is None:
            shown.append(f"{protocol}/any")
        else:
            shown.append(f"{protocol}/{_clip(number)}" + (f"-{_clip(end)}" if end is not None else ""))
    return "port" + ("s " if len(shown) > 1 else " ") + _join(shown, limit=8)


# ---- policies, normalised --------------------------------------------------------------

@dataclass(frozen=True)
class Pod:
    namespace: str
    name: str
    labels: Mapping[str, str]
    hypothetical: bool = False


@dataclass
class Rule:
    policy: Policy
    direction: Direction
    index: int  # 1-based, as a person counts the rules of a policy
    peers: list[Obj] | None  # None: every peer (from/to missing or empty)
    ports: list[Obj] | None

    def text(self) -> str:
        word = "from" if self.direction == "ingress" else "to"
        if self.peers is None:
            who = "anywhere"
        else:
            described = [peer_text(p or {}, self.policy.namespace) for p in self.peers[:_PEERS_SHOWN]]
            more = len(self.peers) - _PEERS_SHOWN
            who = " or ".join(described) + (f" or {more} more peers" if more > 0 else "")
        return _clip(f"{word} {who}; {ports_text(self.ports)}", _RULE_LIMIT)


@dataclass
class Policy:
    namespace: str
    name: str
    pod_selector: Obj
    types: frozenset[str]
    rules: dict[str, list[Rule]] = field(default_factory=dict)

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"

    @classmethod
    def of(cls, obj: Mapping[str, Any]) -> Policy:
        """A NetworkPolicy object, with what the API server would default filled in."""
        meta, spec = obj.get("metadata") or {}, obj.get("spec") or {}
        types = list(spec.get("policyTypes") or [])
        if not types:  # the API server's defaulting (SetDefaults_NetworkPolicy)
            types = ["Ingress"] + (["Egress"] if spec.get("egress") else [])
        selector = spec.get("podSelector")
        policy = cls(meta.get("namespace") or "", meta.get("name") or "", {} if selector is None else selector,
                     frozenset(types))
        for direction, peers_key in (("ingress", "from"), ("egress", "to")):
            rules = []
            if direction.capitalize() in policy.types:
                for index, rule in enumerate(spec.get(direction) or [], start=1):
                    rule = rule or {}
                    rules.append(Rule(policy, direction, index, rule.get(peers_key) or None, rule.get("ports") or None))
            policy.rules[direction] = rules
        return policy


# ---- evaluation over bit sets -----------------------------------------------------------

def _bits(mask: int) -> Iterable[int]:
    while mask:
        low = mask & -mask
        yield low.bit_length() - 1
        mask ^= low


@dataclass(frozen=True)
class Reason:
    """One fact behind a cell: a side (egress of the source, ingress of the target), the
    policy and rule it comes from (empty when it is the absence of one), in words."""

    direction: Direction
    policy: str
    rule: int | None
    text: str


@dataclass(frozen=True)
class Cell:
    """Reachability from every pod of ``source`` to every pod of ``target``.

    ``reach`` is over source→target pod pairs: ``all`` when every pair may connect,
    ``none`` when no pair may, ``some`` otherwise. ``allowed`` is "any pair may".
    """

    source: str
    target: str
    reach: Reach
    pairs_allowed: int
    pairs: int
    sources_reaching: int
    targets_reached: int
    source_pods: int  # real pods; 0 when the namespace was evaluated for a hypothetical pod
    target_pods: int

    @property
    def allowed(self) -> bool:
        return self.reach != "none"


class Evaluation:
    """Every pod's allowed peers, computed once; cells and explanations read from it.

    Pods are bits of Python integers: each policy's selected pods, each rule's peer pods
    and each pod's allowed peers are one integer, so a cell is a few AND and popcount
    operations per source pod instead of a walk over every policy for every pod pair.
    """

    def __init__(self, namespaces: Mapping[str, Mapping[str, str]], pods: Iterable[Pod],
                 policies: Iterable[Mapping[str, Any]]) -> None:
        self.namespace_labels = {name: dict(labels or {}) for name, labels in namespaces.items()}
        by_ns: dict[str, list[Pod]] = {name: [] for name in self.namespace_labels}
        for pod in pods:
            if pod.namespace in by_ns:
                by_ns[pod.namespace].append(pod)
        self.real_pods = {name: len(found) for name, found in by_ns.items()}
        self.pods: list[Pod] = []
        self.ns_mask: dict[str, int] = {}
        for name, found in by_ns.items():
            found = found or [Pod(name, "", {}, hypothetical=True)]
            start = len(self.pods)
            self.pods += found
            self.ns_mask[name] = ((1 << len(found)) - 1) << start
        self.everyone = (1 << len(self.pods)) - 1
        self._cache: dict[tuple[str, str], int] = {}

        self.policies = [Policy.of(p) for p in policies]
        self.policies = [p for p in self.policies if p.namespace in self.ns_mask]
        self.policies.sort(key=lambda p: p.key)
        self.selected = {id(p): self._pods_matching(p.pod_selector, p.namespace) for p in self.policies}
        self.peer_mask: dict[int, int] = {}  # id(rule) -> pods its peers match
        self.isolated = {"ingress": 0, "egress": 0}
        accept = [0] * len(self.pods)  # pod -> pods whose ingress admits it
        egress = [0] * len(self.pods)  # pod -> pods its egress allows
        for policy in self.policies:
            chosen = self.selected[id(policy)]
            for direction in ("ingress", "egress"):
                if direction.capitalize() in policy.types:
                    self.isolated[direction] |= chosen
                for rule in policy.rules[direction]:
                    peers = self._rule_peers(rule)
                    self.peer_mask[id(rule)] = peers
                    if direction == "ingress":
                        for i in _bits(peers):
                            accept[i] |= chosen
                    else:
                        for i in _bits(chosen):
                            egress[i] |= peers
        open_ingress = self.everyone & ~self.isolated["ingress"]
        self.egress = [self.everyone if not self.isolated["egress"] >> i & 1 else egress[i] for i in range(len(self.pods))]
        self.accept = [accept[i] | open_ingress for i in range(len(self.pods))]
        self.allowed = [self.egress[i] & self.accept[i] for i in range(len(self.pods))]

    # -- selection --

    def _pods_matching(self, selector: Mapping[str, Any] | None, namespace: str) -> int:
        key = (json.dumps(selector, sort_keys=True), namespace)
        if key not in self._cache:
            mask = 0
            if selector is not None:
                for i in _bits(self.ns_mask.get(namespace, 0)):
                    if selector_matches(selector, self.pods[i].labels):
                        mask |= 1 << i
            self._cache[key] = mask
        return self._cache[key]

    def _peer_pods(self, peer: Mapping[str, Any], namespace: str) -> int:
        if "ipBlock" in peer:
            return 0
        pods, spaces = peer.get("podSelector"), peer.get("namespaceSelector")
        if spaces is None:
            return self._pods_matching(pods, namespace) if pods is not None else 0
        mask = 0
        for name, labels in self.namespace_labels.items():
            if selector_matches(spaces, labels):
                mask |= self.ns_mask[name] if pods is None else self._pods_matching(pods, name)
        return mask

    def _rule_peers(self, rule: Rule) -> int:
        if rule.peers is None:
            return self.everyone
        mask = 0
        for peer in rule.peers:
            mask |= self._peer_pods(peer or {}, rule.policy.namespace)
        return mask

    # -- cells --

    def cell(self, source: str, target: str) -> Cell:
        targets = self.ns_mask[target]
        n_source, n_target = self.ns_mask[source].bit_count(), targets.bit_count()
        pairs = reaching = 0
        reached = 0
        for i in _bits(self.ns_mask[source]):
            hit = self.allowed[i] & targets
            if hit:
                pairs += hit.bit_count()
                reaching += 1
                reached |= hit
        total = n_source * n_target
        reach: Reach = "all" if pairs == total else "none" if pairs == 0 else "some"
        return Cell(source, target, reach, pairs, total, reaching, reached.bit_count(),
                    self.real_pods[source], self.real_pods[target])

    def _hypothetical(self, namespace: str) -> bool:
        return self.real_pods[namespace] == 0

    def _some(self, count: int, namespace: str) -> str:
        """``count`` of ``namespace``'s pods, in words ("3 of 5 pods of shop")."""
        total = self.real_pods[namespace]
        if total == 0:
            return f"a new pod in {namespace} (it has no pods)"
        if count == total:
            return f"the only pod of {namespace}" if total == 1 else f"all {total} pods of {namespace}"
        return f"{count} of {total} pods of {namespace}"

    def summary(self, cell: Cell) -> str:
        """The verdict in one sentence."""
        s, t = cell.source, cell.target
        n_s, n_t = self.ns_mask[s].bit_count(), self.ns_mask[t].bit_count()
        if cell.reach == "all":
            return f"all: {self._some(n_s, s)} may connect to {self._some(n_t, t)}"
        if cell.reach == "some":
            return (f"some: {cell.pairs_allowed} of {cell.pairs} pod pairs allowed; {self._some(cell.sources_reaching, s)} "
                    f"may connect to {self._some(cell.targets_reached, t)}")
        return f"none: {self._some(n_s, s)} may not connect to {self._some(n_t, t)} ({self._blocked_by(s, t)})"

    def _blocked_by(self, source: str, target: str) -> str:
        targets = self.ns_mask[target]
        egress = any(self.egress[i] & targets for i in _bits(self.ns_mask[source]))
        ingress = any(self.accept[i] & targets for i in _bits(self.ns_mask[source]))
        if not egress and not ingress:
            return f"blocked by {source}'s egress and by {target}'s ingress"
        if not egress:
            return f"blocked by {source}'s egress"
        if not ingress:
            return f"blocked by {target}'s ingress"
        return "the pods egress allows are not the pods whose ingress admits them"

    def reasons(self, source: str, target: str) -> list[Reason]:
        """The policies and rules that decide the cell: the source's egress, then the target's ingress."""
        return self._side("egress", source, target) + self._side("ingress", target, source)

    def _side(self, direction: Direction, own: str, other: str) -> list[Reason]:
        """Reasons on ``own``'s side: its pods' isolation in ``direction``, and the rules that reach ``other``."""
        mine, theirs = self.ns_mask[own], self.ns_mask[other]
        isolated = self.isolated[direction] & mine
        verb = "connect to" if direction == "egress" else "accept connections from"
        if not isolated:
            return [Reason(direction, "", None, f"{direction}: no policy isolates {own}'s pods for {direction}, "
                                                f"so they may {verb} any pod")]
        reasons = []
        policies = [p for p in self.policies if p.namespace == own and self.selected[id(p)] & mine]
        for policy in policies:
            if direction.capitalize() in policy.types:
                chosen = self.selected[id(policy)]
                reasons.append(Reason(direction, policy.key, None,
                                      f"{direction}: {policy.key} isolates {self._some(chosen.bit_count(), own)} for {direction}"))
        if isolated != mine:
            free = (mine & ~isolated).bit_count()
            reasons.append(Reason(direction, "", None, f"{direction}: {self._some(free, own)} not isolated for {direction}: "
                                                       f"they may {verb} any pod"))
        allowing = False
        for policy in policies:
            chosen = self.selected[id(policy)].bit_count()
            for rule in policy.rules[direction]:
                hit = self.peer_mask[id(rule)] & theirs
                if not hit:
                    continue
                allowing = True
                if direction == "egress":
                    text = (f"egress allowed by {policy.key} rule {rule.index} ({rule.text()}) "
                            f"from {self._some(chosen, own)} to {self._some(hit.bit_count(), other)}")
                else:
                    text = (f"ingress allowed by {policy.key} rule {rule.index} ({rule.text()}) "
                            f"to {self._some(chosen, own)} from {self._some(hit.bit_count(), other)}")
                reasons.append(Reason(direction, policy.key, rule.index, text))
        if not allowing:
            side = "connect to" if direction == "egress" else "accept connections from"
            reasons.append(Reason(direction, "", None, f"{direction}: no rule lets {own}'s isolated pods {side} pods of {other}"))
        return reasons


def pods_from_raw(items: Iterable[Mapping[str, Any]]) -> list[Pod]:
    """Pods as listed by the API (raw JSON); finished pods (Succeeded, Failed) have no network and are left out."""
    pods = []
    for item in items:
        meta, status = item.get("metadata") or {}, item.get("status") or {}
        if status.get("phase") in ("Succeeded", "Failed"):
            continue
        pods.append(Pod(meta.get("namespace") or "", meta.get("name") or "", dict(meta.get("labels") or {})))
    return pods
