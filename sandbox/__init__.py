"""Simulated Kubernetes clusters served over real HTTP (see DESIGN.md, "The sandbox").

The official ``kubernetes`` client talks to them, unmodified, through an ordinary
kubeconfig. ``Sandbox`` is the server; ``SandboxCluster`` one cluster's state and
simulation; ``Faults`` what can be made to go wrong.
"""

from sandbox.cluster import SandboxCluster
from sandbox.faults import Faults
from sandbox.server import Sandbox

__all__ = ["Faults", "Sandbox", "SandboxCluster"]
