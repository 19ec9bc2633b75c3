"""NetworkPolicies and pods as a cluster lists them, normalised, and in words (the semantics: see
``tenants.netpol``)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Literal

from pksweb.text import bound

Obj = dict[str, Any]
Direction = Literal["ingress", "egress"]

NAME_LABEL = "kubernetes.io/metadata.name"
_TEXT_LIMIT = 80  # one label value or CIDR as shown
_SELECTOR_LIMIT = 240  # one selector as shown
_RULE_LIMIT = 1000  # one rule's peers and ports as shown
_PEERS_SHOWN = 4  # peers described per rule before "and N more"


# ---- label selectors ----------------------------------------------------------------

def selector_matches(selector: Mapping[str, Any] | None, labels: Mapping[str, str]) -> bool:
    """Kubernetes label-selector semantics (see ``tenants.netpol``)."""
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
    """Text from a cluster, cut to ``limit`` characters with a visible marker (and cleaned, as all such text is)."""
    return bound(text, limit)


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
        return f"IP block {_clip(block.get('cidr'))}" + (f" except {_join(excepted)}" if excepted else "")
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
    ips: tuple[str, ...] = ()  # status.podIPs (or podIP); none before the pod starts
    named_ports: frozenset[tuple[str, str]] = frozenset()  # (name, protocol) its containers declare


def _named_ports(ports: list[Obj] | None) -> frozenset[tuple[str, str]] | None:
    """The (name, protocol) ports a rule is limited to, or None when some port of it exists on every pod:
    no ports listed, or one that is a number, a range or absent (every port of a protocol)."""
    if not ports:
        return None
    names = set()
    for port in ports:
        port = port if isinstance(port, Mapping) else {}
        value = port.get("port")
        if not isinstance(value, str) or value.isascii() and value.isdigit():
            return None
        names.add((value, str(port.get("protocol") or "TCP")))
    return frozenset(names)


@dataclass
class Rule:
    policy: Policy
    direction: Direction
    index: int  # 1-based, as a person counts the rules of a policy
    peers: list[Obj] | None  # None: every peer (from/to missing or empty)
    ports: list[Obj] | None

    @cached_property
    def named_ports(self) -> frozenset[tuple[str, str]] | None:
        return _named_ports(self.ports)

    def named_text(self) -> str:
        names = sorted(self.named_ports or ())
        words = _join((f"{proto}/{name}" for name, proto in names), sep=" or ")
        return _clip(("named port " if len(names) == 1 else "named ports ") + words, _SELECTOR_LIMIT)

    @cached_property
    def has_ip_block(self) -> bool:
        return any(isinstance(peer, Mapping) and "ipBlock" in peer for peer in self.peers or [])

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
        sides: tuple[tuple[Direction, str], ...] = (("ingress", "from"), ("egress", "to"))
        for direction, peers_key in sides:
            rules = []
            if direction.capitalize() in policy.types:
                for index, rule in enumerate(spec.get(direction) or [], start=1):
                    rule = rule or {}
                    rules.append(Rule(policy, direction, index, rule.get(peers_key) or None, rule.get("ports") or None))
            policy.rules[direction] = rules
        return policy


def _dicts(value: Any) -> list[Mapping[str, Any]]:
    return [v for v in value if isinstance(v, Mapping)] if isinstance(value, list) else []


def pods_from_raw(items: Iterable[Mapping[str, Any]]) -> list[Pod]:
    """Pods as listed by the API (raw JSON); finished pods (Succeeded, Failed) have no network and are left out.

    Each keeps its IPs (``status.podIPs``, else ``status.podIP``) and the named ports of its containers and of its
    restartable init containers (sidecars, which serve ports like any container)."""
    pods = []
    for item in items:
        meta, spec, status = item.get("metadata") or {}, item.get("spec") or {}, item.get("status") or {}
        if status.get("phase") in ("Succeeded", "Failed"):
            continue
        ips = [str(entry.get("ip")) for entry in _dicts(status.get("podIPs")) if entry.get("ip")]
        if not ips and status.get("podIP"):
            ips = [str(status["podIP"])]
        containers = _dicts(spec.get("containers")) + [c for c in _dicts(spec.get("initContainers")) if c.get("restartPolicy") == "Always"]
        named = frozenset((port["name"], str(port.get("protocol") or "TCP")) for container in containers
                          for port in _dicts(container.get("ports")) if isinstance(port.get("name"), str) and port["name"])
        pods.append(Pod(meta.get("namespace") or "", meta.get("name") or "", dict(meta.get("labels") or {}),
                        ips=tuple(dict.fromkeys(ips)), named_ports=named))
    return pods
