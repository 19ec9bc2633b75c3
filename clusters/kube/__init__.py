"""The one gateway to Kubernetes. Nothing outside this package imports ``kubernetes``.

- ``credentials``: parse kubeconfigs and tokens into a ``Credential`` (no plugins run,
  no files read);
- ``client``: one ``ApiClient`` per credential, never the global kubeconfig;
- ``errors``: every failure becomes a ``KubeError`` in words an operator acts on;
- ``retry``: when a failed call is tried again;
- ``types``: what the gateway answers (nodes, pods, events, probes, evictions);
- ``gateway``: typed operations (probe, nodes, cordon, evict, annotate, ...) with timeouts;
- ``objects``: get/create/replace/delete/list of the kinds in a tenant bundle;
- ``drain``: cordon a node and evict its pods, respecting PodDisruptionBudgets.
"""

from clusters.kube.credentials import Credential, KubeConfigError, kubeconfig_contexts, parse_kubeconfig
from clusters.kube.errors import UNREADABLE, KubeError
from clusters.kube.gateway import Gateway
from clusters.kube.types import Expectation, NodeInfo, PodInfo, ProbeResult

__all__ = [
    "UNREADABLE",
    "Credential", "Expectation", "Gateway", "KubeConfigError", "KubeError", "NodeInfo", "PodInfo", "ProbeResult",
    "kubeconfig_contexts", "parse_kubeconfig",
]
