"""NetworkPolicy evaluation: which pods may open connections to which, and why.

Pure functions and values, no I/O: ``objects`` reads NetworkPolicies and pods as a cluster lists them
(and says them in words), ``evaluation`` answers who may reach whom from them. The semantics are networking.k8s.io/v1's, as the
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
- ``ipBlock`` matches the pods whose IP (``status.podIPs``, else ``status.podIP``; IPv4
  and IPv6) lies in ``cidr`` and in none of its ``except`` ranges; a dual-stack pod
  matches when either of its addresses does. The documentation advises CIDRs outside the
  cluster, but nothing stops one from covering pod IPs, and the Kubernetes e2e tests
  ("allow egress access to server in CIDR block", "should enforce except clause while
  egress access to server in CIDR block") and the common CNIs apply it to them: a policy
  that reads as sealed would not be. A pod **without an IP** (not started yet, or the
  hypothetical pod of an empty namespace below) matches no ``ipBlock``; a CIDR the API
  server would refuse matches nothing, an ``except`` entry it would refuse is ignored.
- Ports: ``port`` a number (with or without ``endPort``), or absent, is taken as
  reachable on every pod (containers may listen on ports they do not declare). A
  **named** port only exists on pods whose containers (and restartable init containers,
  the sidecars) declare a port of that name and protocol (default TCP on both sides): for
  ingress the rule's own selected pods, for egress the *destination* pods. A rule whose
  ports all name ports a pod does not declare allows nothing to that pod.
- Label selectors: ``matchLabels`` and ``matchExpressions`` are ANDed; ``In`` needs the
  key with one of the values, ``NotIn`` matches when the key is absent or has another
  value, ``Exists``/``DoesNotExist`` test the key only; ``{}`` selects everything; an
  absent selector (or an unknown operator, which the API server refuses) selects nothing.

What this does *not* model, on purpose:

- **Which port.** The question is whether *any* port may be reachable: a rule listing
  numeric ports still allows some traffic, and the ports are shown in the rule's
  explanation. Egress ports and ingress ports are not intersected, so a pair may read
  "allowed" although the only allowed egress port is not an allowed ingress port.
- Address translation: an ``ipBlock`` is compared with pod IPs as they are, as if no
  CNI or service mesh rewrote source or destination addresses between pods.
- Traffic from a pod's own node, host-network pods and localhost, which NetworkPolicy
  does not govern; a pod's connection to itself is counted like any other pair.

Namespaces without pods are evaluated for one **hypothetical pod without labels**: what a
new, unlabelled pod there would get (it is selected by ``{}`` selectors such as a
default-deny). An operator looking at a fresh tenant namespace wants to know whether it
is sealed before the first workload lands, not a blank cell. That pod has no IP and
declares no ports: no ``ipBlock`` and no named port reaches it (the reasons say so).
"""
