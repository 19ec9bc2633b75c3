"""The simulated kube-scheduler: binds each pending pod to the least busy node it fits on (Ready,
schedulable, taints tolerated, node selector matched, room for another pod), or says why none fits
in the pod's PodScheduled condition and a FailedScheduling event."""

from __future__ import annotations

import copy

from sandbox.kubelet import Kubelets, container_status, internal_ip, node_ready
from sandbox.resources import NODES, PODS, ResourceType
from sandbox.store import Obj, Store, evolve, now


def tolerates(tolerations: list[Obj], taints: list[Obj]) -> bool:
    for taint in taints:
        if taint.get("effect") not in ("NoSchedule", "NoExecute"):
            continue
        if not any(
            (t.get("operator") == "Exists" and (not t.get("key") or t.get("key") == taint.get("key")))
            or (t.get("key") == taint.get("key") and t.get("value", "") == taint.get("value", ""))
            for t in tolerations
            if not t.get("effect") or t.get("effect") == taint.get("effect")
        ):
            return False
    return True


class Scheduler:
    """Places pods of ``store`` on its nodes; the node's kubelet (``kubelets``) then starts them."""

    def __init__(self, store: Store, kubelets: Kubelets) -> None:
        self.store = store
        self.kubelets = kubelets

    def admit(self, resource: ResourceType, pod: Obj) -> None:
        """A pod created with its node already named (a DaemonSet's, a mirror pod) is bound as it is stored."""
        if resource is PODS and pod["spec"].get("nodeName"):
            self.bind(pod, pod["spec"]["nodeName"], write=False)

    def bind(self, pod: Obj, node_name: str, write: bool = True) -> Obj:
        """Put ``pod`` on ``node_name`` (``write``: store it; else it is a new pod about to be stored) and start it later."""
        old = pod if write else None
        new = copy.deepcopy(pod) if write else pod
        new["spec"]["nodeName"] = node_name
        node = self.store.objects[NODES].get(("", node_name))
        stamp = now()
        new["status"] = {
            "phase": "Pending", "qosClass": new["status"].get("qosClass", "BestEffort"),
            "hostIP": internal_ip(node) if node else "",
            "conditions": [{"type": "PodScheduled", "status": "True", "lastTransitionTime": stamp}],
            "containerStatuses": [container_status(c, ready=False) for c in new["spec"]["containers"]],
            "startTime": stamp,
        }
        if write:
            self.store.write(PODS, new, "MODIFIED", old)
        self.kubelets.start_later(new)
        return new

    def pods_per_node(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for pod in self.store.objects[PODS].values():
            node = pod["spec"].get("nodeName")
            if node:
                counts[node] = counts.get(node, 0) + 1
        return counts

    def fits(self, pod: Obj, node: Obj, *, daemon: bool = False, counts: dict[str, int] | None = None) -> str | None:
        """Why ``pod`` cannot run on ``node``, or None when it can.

        A DaemonSet's pods (``daemon``) go to unschedulable and not-ready nodes too. ``counts``
        (pods per node) saves a pass over every pod when many pods are placed at once.
        """
        spec = pod["spec"]
        if not daemon and not node_ready(node):
            return "node(s) were not ready"
        node_spec = node.get("spec") or {}
        if node_spec.get("unschedulable") and not daemon:
            return "node(s) were unschedulable"
        if not tolerates(spec.get("tolerations") or [], node_spec.get("taints") or []):
            return "node(s) had untolerated taint(s)"
        labels = node["metadata"].get("labels") or {}
        if any(labels.get(k) != v for k, v in (spec.get("nodeSelector") or {}).items()):
            return "node(s) didn't match Pod's node affinity/selector"
        pods = str(((node.get("status") or {}).get("allocatable") or {}).get("pods", "110"))
        capacity = int(pods) if pods.isascii() and pods.isdigit() else 110
        if (counts if counts is not None else self.pods_per_node()).get(node["metadata"]["name"], 0) >= capacity:
            return "Too many pods"
        return None

    def schedule_pending(self) -> None:
        store = self.store
        nodes = store.items(NODES)
        counts = self.pods_per_node()
        for pod in store.items(PODS):
            if pod["spec"].get("nodeName") or pod["metadata"].get("deletionTimestamp"):
                continue
            reasons: dict[str, int] = {}
            candidates = []
            for node in nodes:
                reason = self.fits(pod, node, counts=counts)
                if reason is None:
                    candidates.append(node)
                else:
                    reasons[reason] = reasons.get(reason, 0) + 1
            if candidates:
                target = min(candidates, key=lambda n: (counts.get(n["metadata"]["name"], 0), n["metadata"]["name"]))["metadata"]["name"]
                self.bind(pod, target)
                counts[target] = counts.get(target, 0) + 1
            else:
                message = f"0/{len(nodes)} nodes are available: " + ", ".join(f"{n} {r}" for r, n in sorted(reasons.items())) + "."
                found = [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": message}]
                if pod["status"].get("conditions") != found:
                    new = evolve(pod)
                    new["status"]["conditions"] = found
                    store.write(PODS, new, "MODIFIED", pod)
                    store.event(pod, "Warning", "FailedScheduling", message)
