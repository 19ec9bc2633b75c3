"""Who may reach whom, computed once over every pod and policy of a cluster, and why (the semantics: see
``tenants.netpol``)."""

from __future__ import annotations

import ipaddress
import json
from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from tenants.choices import Reach
from tenants.netpol.objects import Direction, Pod, Policy, Rule, selector_matches

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
        self._ip_cache: dict[str, int] = {}
        self._ip_table: dict[int, tuple[list[int], list[int]]] | None = None  # built at the first ipBlock
        self.with_port: dict[tuple[str, str], int] = {}  # (name, protocol) -> pods declaring it
        for i, pod in enumerate(self.pods):
            for named in pod.named_ports:
                self.with_port[named] = self.with_port.get(named, 0) | 1 << i

        self.policies = [Policy.of(p) for p in policies]
        self.policies = [p for p in self.policies if p.namespace in self.ns_mask]
        self.policies.sort(key=lambda p: p.key)
        self.selected = {id(p): self._pods_matching(p.pod_selector, p.namespace) for p in self.policies}
        self.peer_mask: dict[int, int] = {}  # id(rule) -> pods its peers match
        self.port_mask: dict[int, int] = {}  # id(rule) -> pods on which some port of it exists
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
                    ported = self._ported(rule)
                    self.peer_mask[id(rule)], self.port_mask[id(rule)] = peers, ported
                    if direction == "ingress":  # named ports are the selected pods' own
                        for i in _bits(peers):
                            accept[i] |= chosen & ported
                    else:  # named ports are the destination's
                        for i in _bits(chosen):
                            egress[i] |= peers & ported
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

    def _ported(self, rule: Rule) -> int:
        """The pods on which some port of ``rule`` exists (every pod unless all its ports are named)."""
        names = rule.named_ports
        if names is None:
            return self.everyone
        mask = 0
        for named in names:
            mask |= self.with_port.get(named, 0)
        return mask

    def _ip_index(self) -> dict[int, tuple[list[int], list[int]]]:
        """Per IP version, the pods' addresses as sorted integers and the pod owning each."""
        if self._ip_table is None:
            found: dict[int, list[tuple[int, int]]] = {4: [], 6: []}
            for i, pod in enumerate(self.pods):
                for text in pod.ips:
                    try:
                        address = ipaddress.ip_address(text)
                    except ValueError:
                        continue
                    found[address.version].append((int(address), i))
            self._ip_table = {version: ([a for a, _ in pairs], [i for _, i in pairs])
                              for version, pairs in ((v, sorted(p)) for v, p in found.items())}
        return self._ip_table

    @cached_property
    def ipless(self) -> int:
        """The pods without an address (not started, hypothetical, or only addresses that do not parse)."""
        with_ip = 0
        for _, owners in self._ip_index().values():
            for i in owners:
                with_ip |= 1 << i
        return self.everyone & ~with_ip

    def _ip_block_pods(self, block: Any) -> int:
        """The pods with an address in ``cidr`` and outside every ``except`` range.

        Addresses are sorted once per family, so a block costs two bisections plus its matches."""
        block = block if isinstance(block, Mapping) else {}
        key = json.dumps(block, sort_keys=True, default=str)
        if key in self._ip_cache:
            return self._ip_cache[key]
        table = self._ip_index()
        mask = 0
        try:
            network = ipaddress.ip_network(str(block.get("cidr")), strict=False)
        except ValueError:  # the API server refuses such a CIDR: nothing to match
            network = None
        if network is not None:
            carved = []
            excepted = block.get("except")
            for text in excepted if isinstance(excepted, list) else []:
                try:
                    out = ipaddress.ip_network(str(text), strict=False)
                except ValueError:
                    continue
                if out.version == network.version:
                    carved.append((int(out.network_address), int(out.broadcast_address)))
            addresses, owners = table[network.version]
            low, high = int(network.network_address), int(network.broadcast_address)
            for k in range(bisect_left(addresses, low), bisect_right(addresses, high)):
                if not any(a <= addresses[k] <= b for a, b in carved):
                    mask |= 1 << owners[k]
        self._ip_cache[key] = mask
        return mask

    def _peer_pods(self, peer: Mapping[str, Any], namespace: str) -> int:
        if "ipBlock" in peer:
            return self._ip_block_pods(peer.get("ipBlock"))
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
        reach = Reach.ALL if pairs == total else Reach.NONE if pairs == 0 else Reach.SOME
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

    def _undeclared(self, count: int, namespace: str, named: str, where: str) -> str:
        """Pods that do not declare a rule's named ports, in words."""
        if self._hypothetical(namespace):
            return f"a new pod in {namespace} (it has no pods) declares no {named}"
        if count == 1:
            return f"the pod {where} {namespace} does not declare its {named}"
        return f"none of the {count} pods {where} {namespace} declares its {named}"

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
        allowing = ip_blocks = False
        for policy in policies:
            selected = self.selected[id(policy)]
            chosen = selected.bit_count()
            for rule in policy.rules[direction]:
                ip_blocks = ip_blocks or rule.has_ip_block
                hit = self.peer_mask[id(rule)] & theirs
                if not hit:
                    continue
                ported = self.port_mask[id(rule)]
                # Named ports exist on the destination: the rule's own pods for ingress, the peers for egress.
                narrowed, among, where = (hit, hit & ported, "its peers match in") if direction == "egress" \
                    else (selected, selected & ported, "it selects in")
                destination = other if direction == "egress" else own
                if not among:
                    undeclared = self._undeclared(narrowed.bit_count(), destination, rule.named_text(), where)
                    text = (f"egress: {policy.key} rule {rule.index} ({rule.text()}) applies to {self._some(chosen, own)}, "
                            f"but {undeclared}: it allows nothing to them") if direction == "egress" else \
                        (f"ingress: {policy.key} rule {rule.index} ({rule.text()}) matches {self._some(hit.bit_count(), other)}, "
                         f"but {undeclared}: it admits nothing")
                    reasons.append(Reason(direction, policy.key, rule.index, text))
                    continue
                allowing = True
                if direction == "egress":
                    text = (f"egress allowed by {policy.key} rule {rule.index} ({rule.text()}) "
                            f"from {self._some(chosen, own)} to {self._some(among.bit_count(), other)}")
                else:
                    text = (f"ingress allowed by {policy.key} rule {rule.index} ({rule.text()}) "
                            f"to {self._some(among.bit_count(), own)} from {self._some(hit.bit_count(), other)}")
                if among != narrowed:
                    text += (f" ({among.bit_count()} of the {narrowed.bit_count()} pods {where} {destination} "
                             f"declare its {rule.named_text()})")
                reasons.append(Reason(direction, policy.key, rule.index, text))
        ipless = (self.ipless & theirs).bit_count() if ip_blocks else 0
        if ipless:
            verb = "has" if ipless == 1 else "have"
            reasons.append(Reason(direction, "", None, f"{direction}: {self._some(ipless, other)} {verb} no IP yet: "
                                                       f"no IP block matches {'it' if ipless == 1 else 'them'}"))
        if not allowing:
            side = "connect to" if direction == "egress" else "accept connections from"
            reasons.append(Reason(direction, "", None, f"{direction}: no rule lets {own}'s isolated pods {side} pods of {other}"))
        return reasons
