"""The simulated kubelets: nodes that register, post their status and renew their Lease, pods that start
on them, and a node's kubelet being replaced by another version (an upgrade).

A node is upgraded by ``upgrade_node`` (the sandbox's control endpoint, a system-upgrade-controller Plan) or
by an ordinary update of the node setting its ``sandbox.pksweb.io/upgrade-to`` annotation to a version
(``follow_upgrade_requests``): it goes NotReady, comes back Ready at that version after the cluster's
``node_ready_delay``, and the annotation is removed as it does.
"""

from __future__ import annotations

import copy
import ipaddress
import uuid

from sandbox import errors
from sandbox.faults import Faults
from sandbox.resources import LEASES, NAMESPACES, NODES, PODS
from sandbox.store import Obj, Store, conditions, evolve, now, now_micro
from sandbox.validation import UPGRADE_ANNOTATION, upgrade_version

NODE_LEASE_NAMESPACE = "kube-node-lease"
NODE_LEASE_SECONDS = 40
MIRROR_ANNOTATION = "kubernetes.io/config.mirror"


def node_ready(node: Obj) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions(node))


def pod_ready(pod: Obj) -> bool:
    if pod["metadata"].get("deletionTimestamp") or (pod.get("status") or {}).get("phase") != "Running":
        return False
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions(pod))


def kubelet_version(node: Obj) -> str:
    info = (node.get("status") or {}).get("nodeInfo") or {}
    return str(info.get("kubeletVersion") or "") if isinstance(info, dict) else ""


def internal_ip(node: Obj) -> str:
    addresses = (node.get("status") or {}).get("addresses") or []
    found = [a.get("address", "") for a in addresses if isinstance(a, dict) and a.get("type") == "InternalIP"]
    return str(found[0]) if found else ""


def container_status(container: Obj, *, ready: bool, restarts: int = 0) -> Obj:
    state = {"running": {"startedAt": now()}} if ready else {"waiting": {"reason": "ContainerCreating"}}
    return {"name": container["name"], "image": container.get("image", ""), "imageID": "",
            "ready": ready, "started": ready, "restartCount": restarts, "state": state}


def _node_info(node: Obj) -> Obj:
    """A node's status.nodeInfo, made when missing (the node is a copy about to be written)."""
    status = node.get("status")
    if not isinstance(status, dict):
        status = node["status"] = {}
    info = status.get("nodeInfo")
    if not isinstance(info, dict):
        info = status["nodeInfo"] = {}
    return info


def _pod_cidr(index: int) -> str:
    return f"10.{244 + index // 256}.{index % 256}.0/24"


def _node_conditions(*, ready: bool, message: str = "") -> list[Obj]:
    stamp = now()
    found: list[Obj] = [
        {"type": t, "status": "False", "reason": f"KubeletHas{r}", "message": f"kubelet has {m}",
         "lastHeartbeatTime": stamp, "lastTransitionTime": stamp}
        for t, r, m in (("MemoryPressure", "SufficientMemory", "sufficient memory available"),
                        ("DiskPressure", "NoDiskPressure", "no disk pressure"),
                        ("PIDPressure", "SufficientPID", "sufficient PID available"))
    ]
    found.append({
        "type": "Ready", "status": "True" if ready else "False",
        "reason": "KubeletReady" if ready else "KubeletNotReady",
        "message": message or ("kubelet is posting ready status" if ready else "container runtime status check may not have completed yet"),
        "lastHeartbeatTime": stamp, "lastTransitionTime": stamp,
    })
    return found


class Kubelets:
    """Every node's kubelet, acting on ``store``."""

    def __init__(self, store: Store, faults: Faults, *, version: str, pod_start_delay: float, node_ready_delay: float) -> None:
        self.store = store
        self.faults = faults
        self.version = version
        self.pod_start_delay = pod_start_delay
        self.node_ready_delay = node_ready_delay
        # Node -> the version its upgrade-to annotation asked for and was acted on (each request once).
        self.requested: dict[str, str] = {}

    # ---- nodes ------------------------------------------------------------------------

    def add_node(self, name: str, *, control_plane: bool = False, version: str | None = None,
                 cpu: str = "4", memory: str = "16Gi", pods: str = "110", labels: dict[str, str] | None = None) -> Obj:
        store = self.store
        version = "v" + (version or self.version).lstrip("v")
        node_labels = {
            "kubernetes.io/hostname": name,
            "kubernetes.io/os": "linux",
            "kubernetes.io/arch": "amd64",
            **({"node-role.kubernetes.io/control-plane": ""} if control_plane else {"node-role.kubernetes.io/worker": ""}),
            **(labels or {}),
        }
        # The node's pod CIDR (10.244.<index>.0/24 for the first 255) and address: the first index no node has.
        taken = {str((n.get("spec") or {}).get("podCIDR", "")) for n in store.objects[NODES].values()}
        index = next(i for i in range(1, len(taken) + 2) if _pod_cidr(i) not in taken)
        node = {
            "metadata": {"name": name, "labels": node_labels, "annotations": {"node.alpha.kubernetes.io/ttl": "0"}},
            "spec": {"podCIDR": _pod_cidr(index), "podCIDRs": [_pod_cidr(index)],
                     **({"taints": [{"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}]} if control_plane else {})},
            "status": {
                "capacity": {"cpu": cpu, "memory": memory, "pods": pods, "ephemeral-storage": "100Gi"},
                "allocatable": {"cpu": cpu, "memory": memory, "pods": pods, "ephemeral-storage": "95Gi"},
                "conditions": _node_conditions(ready=True),
                "addresses": [{"type": "InternalIP", "address": f"172.18.{(index + 1) // 256}.{(index + 1) % 256}"},
                              {"type": "Hostname", "address": name}],
                "nodeInfo": {
                    "architecture": "amd64", "bootID": store.uid(), "containerRuntimeVersion": "containerd://1.7.18",
                    "kernelVersion": "6.1.0-25-amd64", "kubeProxyVersion": version, "kubeletVersion": version,
                    "machineID": uuid.UUID(int=store.random.getrandbits(128)).hex, "operatingSystem": "linux",
                    "osImage": "Debian GNU/Linux 12 (bookworm)", "systemUUID": store.uid(),
                },
                "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
            },
        }
        with store.lock:
            created = store.create(NODES, node)
            self._renew_lease(created)
            if control_plane:
                for component in ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler"):
                    store.create(PODS, self._mirror_pod(component, created, version))
            store.settle()
            return created

    def _mirror_pod(self, component: str, node: Obj, version: str) -> Obj:
        node_name = node["metadata"]["name"]
        return {
            "metadata": {
                "name": f"{component}-{node_name}", "namespace": "kube-system",
                "labels": {"component": component, "tier": "control-plane"},
                "annotations": {MIRROR_ANNOTATION: uuid.UUID(int=self.store.random.getrandbits(128)).hex},
                "ownerReferences": [{"apiVersion": "v1", "kind": "Node", "name": node_name,
                                     "uid": node["metadata"]["uid"], "controller": True}],
            },
            "spec": {"nodeName": node_name, "priorityClassName": "system-node-critical", "hostNetwork": True,
                     "containers": [{"name": component, "image": f"registry.k8s.io/{component}:{version if component != 'etcd' else '3.5.15-0'}"}],
                     "tolerations": [{"operator": "Exists", "effect": "NoExecute"}]},
        }

    def set_node_condition(self, name: str, condition: str, status: str, reason: str = "", message: str = "") -> Obj:
        """Set one node condition (e.g. MemoryPressure True) as its kubelet would."""
        store = self.store
        with store.lock:
            old = store.objects[NODES].get(("", name))
            if old is None:
                raise errors.not_found("nodes", "", name)
            node = evolve(old)
            found = conditions(node, create=True)
            if not any(c.get("type") == condition for c in found):
                found.append({"type": condition, "status": "Unknown", "lastTransitionTime": now()})
            for cond in found:
                if cond.get("type") == condition:
                    if cond.get("status") != status:
                        cond["lastTransitionTime"] = now()
                    cond.update({"status": status, "lastHeartbeatTime": now()})
                    if reason:
                        cond["reason"] = reason
                    if message:
                        cond["message"] = message
            written = store.write(NODES, node, "MODIFIED", old)
            if condition == "Ready":
                store.event(node, "Normal" if status == "True" else "Warning", "NodeReady" if status == "True" else "NodeNotReady",
                            f"Node {name} status is now: {'NodeReady' if status == 'True' else 'NodeNotReady'}")
                self._pods_on_node_ready(name, status == "True")
            store.settle()
            return written

    def upgrade_node(self, name: str, version: str, delay: float | None = None) -> None:
        """Replace a node's kubelet with ``version``: NotReady now, Ready at that version after ``delay``.

        A node listed in ``faults.stuck_nodes`` never comes back.
        """
        store = self.store
        version = "v" + version.lstrip("v")
        with store.lock:
            if ("", name) not in store.objects[NODES]:
                raise errors.not_found("nodes", "", name)
            self.set_node_condition(name, "Ready", "False", "KubeletNotReady", f"kubelet is being replaced (upgrade to {version})")

        def come_back() -> None:
            if name in self.faults.stuck_nodes or ("", name) not in store.objects[NODES]:
                return
            old = store.objects[NODES][("", name)]
            node = copy.deepcopy(old)
            info = _node_info(node)
            info["kubeletVersion"] = version
            info["kubeProxyVersion"] = version
            info["bootID"] = store.uid()
            annotations = node["metadata"].get("annotations") or {}
            if upgrade_version(annotations.get(UPGRADE_ANNOTATION)) == version.lstrip("v"):
                del annotations[UPGRADE_ANNOTATION]  # the request is done
            store.write(NODES, node, "MODIFIED", old)
            for pod in store.items(PODS):
                if pod["spec"].get("nodeName") == name and MIRROR_ANNOTATION in (pod["metadata"].get("annotations") or {}):
                    image = pod["spec"]["containers"][0]["image"]
                    if "etcd" not in image:
                        updated = copy.deepcopy(pod)
                        updated["spec"]["containers"][0]["image"] = image.rsplit(":", 1)[0] + ":" + version
                        store.write(PODS, updated, "MODIFIED", pod)
            self.set_node_condition(name, "Ready", "True", "KubeletReady", "kubelet is posting ready status")
            self._renew_lease(store.objects[NODES][("", name)])

        with store.lock:
            store.after(self.node_ready_delay if delay is None else delay, come_back)
            store.settle()  # a zero delay runs at the next settle: now

    def follow_upgrade_requests(self) -> None:
        """Upgrade each node whose ``sandbox.pksweb.io/upgrade-to`` annotation names a version not yet acted on.

        A request is acted on once: setting the same version again does nothing until the annotation
        has been removed (by the upgrade finishing, or by hand when a stuck node never came back).
        """
        requested: dict[str, str] = {}
        for node in self.store.items(NODES):
            name = node["metadata"]["name"]
            version = upgrade_version((node["metadata"].get("annotations") or {}).get(UPGRADE_ANNOTATION, ""))
            if version is None:
                continue
            requested[name] = version
            if self.requested.get(name) != version:
                self.upgrade_node(name, version)
        self.requested = requested

    def heartbeat(self) -> None:
        """Kubelets post their status: refresh lastHeartbeatTime on Ready nodes."""
        store = self.store
        with store.lock:
            stamp = now()
            for old in store.items(NODES):
                node = evolve(old)
                for cond in conditions(node):
                    cond["lastHeartbeatTime"] = stamp
                store.write(NODES, node, "MODIFIED", old)
                if node_ready(node):  # a kubelet being replaced renews nothing
                    self._renew_lease(node)
            store.settle()

    def _renew_lease(self, node: Obj) -> None:
        """The node's kubelet renews its Lease in kube-node-lease (made when missing; none without that namespace)."""
        store = self.store
        name = node["metadata"]["name"]
        if ("", NODE_LEASE_NAMESPACE) not in store.objects[NAMESPACES]:
            return
        old = store.objects[LEASES].get((NODE_LEASE_NAMESPACE, name))
        if old is None:
            store.create(LEASES, {"metadata": {"name": name, "ownerReferences": [
                {"apiVersion": "v1", "kind": "Node", "name": name, "uid": node["metadata"]["uid"]}]},
                "spec": {"holderIdentity": name, "leaseDurationSeconds": NODE_LEASE_SECONDS, "renewTime": now_micro()}},
                NODE_LEASE_NAMESPACE)
            return
        lease = copy.deepcopy(old)
        lease.setdefault("spec", {})["renewTime"] = now_micro()
        store.write(LEASES, lease, "MODIFIED", old)

    def _pods_on_node_ready(self, node_name: str, ready: bool) -> None:
        for pod in self.store.items(PODS):
            if pod["spec"].get("nodeName") == node_name and (pod.get("status") or {}).get("phase") == "Running":
                self._set_pod_ready(pod, ready, restarted=ready)

    # ---- pods -------------------------------------------------------------------------

    def start_later(self, pod: Obj) -> None:
        """Start a pod just bound to its node after the cluster's pod start delay (unless it changed meanwhile)."""
        store = self.store
        key = (pod["metadata"]["namespace"], pod["metadata"]["name"])
        uid = pod["metadata"].get("uid")

        def start() -> None:
            current = store.objects[PODS].get(key)
            if current is None or (uid and current["metadata"].get("uid") != uid) or current["status"].get("phase") != "Pending":
                return
            self._run(current)

        store.after(self.pod_start_delay, start)

    def start_pending_now(self) -> None:
        """Start every Pending pod bound to a node at once (a seeded cluster without waiting for pod start delays)."""
        store = self.store
        with store.lock:
            for pod in store.items(PODS):
                if pod["status"].get("phase") == "Pending" and pod["spec"].get("nodeName"):
                    self._run(pod)
            store.settle()

    def _run(self, pod: Obj) -> None:
        """A pending pod's containers start: Running with an address, Ready when its node is."""
        node = self.store.objects[NODES].get(("", pod["spec"]["nodeName"]))
        started = evolve(pod)
        started["status"]["phase"] = "Running"
        self._set_pod_ip(started)
        self.store.write(PODS, started, "MODIFIED", pod)
        self._set_pod_ready(started, node is not None and node_ready(node))

    def _set_pod_ip(self, pod: Obj) -> None:
        """``status.podIP(s)`` of a starting pod: the node's address for a host-network pod, else the lowest
        address of the node's pod CIDR that no pod on the node has (as a CNI's host-local IPAM hands them out)."""
        store = self.store
        node = store.objects[NODES].get(("", pod["spec"].get("nodeName", "")))
        ip = ""
        if node is not None and pod["spec"].get("hostNetwork"):
            ip = internal_ip(node)
        elif node is not None:
            try:
                network = ipaddress.ip_network(str((node.get("spec") or {}).get("podCIDR", "")))
            except ValueError:
                network = None
            if network is not None:
                used = {(p.get("status") or {}).get("podIP") for p in store.objects[PODS].values()
                        if p["spec"].get("nodeName") == node["metadata"]["name"] and p["metadata"]["uid"] != pod["metadata"]["uid"]}
                ip = next((str(a) for a in network.hosts() if a != network.network_address + 1 and str(a) not in used), "")
        if ip:
            pod["status"]["podIP"], pod["status"]["podIPs"] = ip, [{"ip": ip}]

    def _set_pod_ready(self, pod: Obj, ready: bool, restarted: bool = False) -> None:
        store = self.store
        current = store.objects[PODS].get((pod["metadata"]["namespace"], pod["metadata"]["name"]))
        if current is None:
            return
        new = evolve(current)
        stamp = now()
        status = "True" if ready else "False"
        found = [c for c in conditions(new) if c.get("type") not in ("Ready", "ContainersReady", "Initialized")]
        found += [
            {"type": "Initialized", "status": "True", "lastTransitionTime": stamp},
            {"type": "Ready", "status": status, "lastTransitionTime": stamp},
            {"type": "ContainersReady", "status": status, "lastTransitionTime": stamp},
        ]
        new["status"]["conditions"] = found
        restarts = [cs.get("restartCount", 0) + (1 if restarted else 0) for cs in new["status"].get("containerStatuses") or []]
        new["status"]["containerStatuses"] = [
            container_status(c, ready=ready, restarts=restarts[i] if i < len(restarts) else 0)
            for i, c in enumerate(new["spec"]["containers"])
        ]
        store.write(PODS, new, "MODIFIED", current)
