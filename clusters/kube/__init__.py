"""The one gateway to Kubernetes. Nothing outside this package imports ``kubernetes``.

- ``credentials``: parse kubeconfigs and tokens into a ``Credential`` (no plugins run,
  no files read);
- ``client``: one ``ApiClient`` per credential, never the global kubeconfig;
- ``errors``: every failure becomes a ``KubeError`` in words an operator acts on;
- ``gateway``: typed operations (probe, nodes, cordon, evict, ...) with timeouts.
"""

from clusters.kube.credentials import Credential, KubeConfigError, kubeconfig_contexts, parse_kubeconfig
from clusters.kube.errors import UNREADABLE, KubeError
from clusters.kube.gateway import Expectation, Gateway, NodeInfo, PodInfo, ProbeResult

__all__ = [
    "UNREADABLE",
    "Credential", "Expectation", "Gateway", "KubeConfigError", "KubeError", "NodeInfo", "PodInfo", "ProbeResult",
    "kubeconfig_contexts", "parse_kubeconfig",
]
