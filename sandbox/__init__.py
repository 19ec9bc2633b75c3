"""Simulated Kubernetes clusters served over real HTTP (see docs/architecture.md, "The sandbox").

The official ``kubernetes`` client talks to them, unmodified, through an ordinary
kubeconfig. ``Sandbox`` is the server; ``SandboxCluster`` one cluster's state and
simulation; ``Faults`` what can be made to go wrong.

Inside a cluster (``cluster.py`` builds it): ``store.py`` keeps the objects, resourceVersions
and watches and carries out writes; ``admission.py`` decides who may do what and what is
admitted (tokens, RBAC, Pod Security, a namespace's node selector and tolerations, quota use);
``scheduler.py`` places pods, ``kubelet.py`` runs the nodes and their pods, ``controllers.py``
the workload controllers, disruption budgets, garbage collection and the
system-upgrade-controller. ``api.py`` and ``server.py`` serve it over HTTP.

Upgrading a node through the Kubernetes API: set the node's annotation
``sandbox.pksweb.io/upgrade-to`` to a version (``1.31.2`` or ``v1.31.2``) with an ordinary
update or patch of the node, and its simulated kubelet is replaced exactly as the control
endpoint ``POST /c/<name>/sandbox/nodes/<node>/upgrade`` does: the node goes NotReady, and
after the cluster's ``node_ready_delay`` comes back Ready at that version (a control-plane
node's static pods too), in the same write that removes the annotation. A value that is not
such a version is refused with 422 Invalid. Each request is acted on once: a node in
``Faults.stuck_nodes`` stays NotReady with the annotation kept, and setting the same version
again does nothing until the annotation has been removed.
"""

from sandbox.cluster import SandboxCluster
from sandbox.faults import Faults
from sandbox.server import Sandbox

__all__ = ["Faults", "Sandbox", "SandboxCluster"]
