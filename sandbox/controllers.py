"""The simulated controller manager: Deployments, ReplicaSets, StatefulSets and DaemonSets keep their pods,
PodDisruptionBudgets and ResourceQuotas their status, ClusterRoles their aggregated rules; the garbage
collector and namespace lifecycle on delete; the Eviction API (which asks the disruption budgets); and the
system-upgrade-controller, which upgrades the nodes a Plan selects.

``reconcile`` is what the store runs after every change (``Store.settle``), for the namespaces
that changed, or for all of them when a node did.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math

from sandbox import bootstrap, errors
from sandbox.admission import Admission
from sandbox.faults import Faults
from sandbox.kubelet import Kubelets, pod_ready
from sandbox.matching import selector_object
from sandbox.resources import (
    CLUSTERROLES,
    DAEMONSETS,
    DEPLOYMENTS,
    LEASES,
    NAMESPACES,
    NODES,
    PDBS,
    PLANS,
    PODS,
    QUOTAS,
    REPLICASETS,
    RESOURCES,
    STATEFULSETS,
    ResourceType,
)
from sandbox.scheduler import Scheduler
from sandbox.store import Obj, Store, evolve, now


def owner_ref(owner: Obj) -> Obj:
    return {"apiVersion": owner["apiVersion"], "kind": owner["kind"], "name": owner["metadata"]["name"],
            "uid": owner["metadata"]["uid"], "controller": True, "blockOwnerDeletion": True}


def pod_from_template(owner: Obj, name: str, node_name: str = "") -> Obj:
    template = copy.deepcopy(owner["spec"]["template"])
    meta = template.get("metadata") or {}
    pod = {
        "metadata": {"name": name, "namespace": owner["metadata"]["namespace"], "labels": meta.get("labels") or {},
                     "annotations": meta.get("annotations") or {}, "ownerReferences": [owner_ref(owner)]},
        "spec": template["spec"],
    }
    if not pod["metadata"]["annotations"]:
        pod["metadata"].pop("annotations")
    if node_name:
        pod["spec"]["nodeName"] = node_name
    return pod


class Controllers:
    """The controllers of one cluster, acting on ``store``."""

    def __init__(self, store: Store, admission: Admission, scheduler: Scheduler, kubelets: Kubelets, faults: Faults, *,
                 namespace_finalize_delay: float) -> None:
        self.store = store
        self.admission = admission
        self.scheduler = scheduler
        self.kubelets = kubelets
        self.faults = faults
        self.namespace_finalize_delay = namespace_finalize_delay

    def reconcile(self, namespaces: set[str], nodes_changed: bool, roles_changed: bool) -> None:
        """One round of settling: what changed since the last round, then the scheduler."""
        step = self.store.step
        if roles_changed:
            step("the clusterrole aggregation controller", self._aggregate_cluster_roles)
        if nodes_changed:
            step("the kubelets' upgrade requests", self.kubelets.follow_upgrade_requests)
            namespaces |= {ns for (_, ns) in self.store.objects[NAMESPACES]}
        for ns in sorted(namespaces):
            self._reconcile_namespace(ns)
        step("the scheduler", self.scheduler.schedule_pending)

    def created(self, resource: ResourceType, obj: Obj) -> None:
        """A new Plan is the system-upgrade-controller's to carry out, shortly."""
        if resource is PLANS:
            self.store.after(0.05, lambda: self._run_upgrade_plan(obj))

    def _reconcile_namespace(self, ns: str) -> None:
        store, step = self.store, self.store.step
        for deployment in store.items(DEPLOYMENTS, ns):
            step(f"deployment {ns}/{deployment['metadata']['name']}", self._reconcile_deployment, deployment)
        for rs in store.items(REPLICASETS, ns):
            step(f"replicaset {ns}/{rs['metadata']['name']}", self._reconcile_replicas, REPLICASETS, rs)
        for sts in store.items(STATEFULSETS, ns):
            step(f"statefulset {ns}/{sts['metadata']['name']}", self._reconcile_replicas, STATEFULSETS, sts)
        for ds in store.items(DAEMONSETS, ns):
            step(f"daemonset {ns}/{ds['metadata']['name']}", self._reconcile_daemonset, ds)
        for pdb in store.items(PDBS, ns):
            step(f"poddisruptionbudget {ns}/{pdb['metadata']['name']}", self._refresh_budget, pdb)
        quotas = store.items(QUOTAS, ns)
        if quotas:
            used = self.admission.quota_used(ns)
            for quota in quotas:
                hard = dict((quota.get("spec") or {}).get("hard") or {})
                store.write_status(QUOTAS, quota, {"hard": hard, "used": {k: used.get(k, "0") for k in hard}})

    def _aggregate_cluster_roles(self) -> None:
        """Each ClusterRole with an ``aggregationRule`` gets the rules of the ClusterRoles it selects (``bootstrap.py``)."""
        roles = self.store.items(CLUSTERROLES)
        for role in roles:
            rules = bootstrap.aggregated_rules(role, roles)
            if rules is not None and rules != role.get("rules"):
                new = evolve(role)
                new["rules"] = rules
                self.store.write(CLUSTERROLES, new, "MODIFIED", role)

    def _owned(self, owner: Obj) -> list[Obj]:
        uid = owner["metadata"]["uid"]
        return [p for p in self.store.items(PODS, owner["metadata"]["namespace"])
                if any(r.get("uid") == uid for r in p["metadata"].get("ownerReferences") or [])]

    # ---- workloads ------------------------------------------------------------------

    def _reconcile_deployment(self, deployment: Obj) -> None:
        store = self.store
        ns = deployment["metadata"]["namespace"]
        template = deployment["spec"]["template"]
        template_hash = hashlib.sha256(json.dumps(template, sort_keys=True).encode()).hexdigest()[:10]
        owned_rs = [rs for rs in store.items(REPLICASETS, ns)
                    if any(r.get("uid") == deployment["metadata"]["uid"] for r in rs["metadata"].get("ownerReferences") or [])]
        rs_name = f"{deployment['metadata']['name']}-{template_hash}"
        current = next((rs for rs in owned_rs if rs["metadata"]["name"] == rs_name), None)
        replicas = deployment["spec"].get("replicas", 1)
        if current is None:
            labels = {**(template.get("metadata", {}).get("labels") or {}), "pod-template-hash": template_hash}
            tmpl = copy.deepcopy(template)
            tmpl.setdefault("metadata", {})["labels"] = labels
            selector = copy.deepcopy(deployment["spec"]["selector"])
            selector.setdefault("matchLabels", {})["pod-template-hash"] = template_hash
            current = store.create(REPLICASETS, {
                "metadata": {"name": rs_name, "namespace": ns, "labels": labels,
                             "ownerReferences": [owner_ref(deployment)]},
                "spec": {"replicas": replicas, "selector": selector, "template": tmpl},
            }, ns)
        elif current["spec"].get("replicas") != replicas:
            scaled = copy.deepcopy(current)
            scaled["spec"]["replicas"] = replicas
            current = store.write(REPLICASETS, scaled, "MODIFIED", current)
        for rs in owned_rs:
            if rs["metadata"]["name"] != rs_name and rs["spec"].get("replicas"):
                drained = copy.deepcopy(rs)
                drained["spec"]["replicas"] = 0
                store.write(REPLICASETS, drained, "MODIFIED", rs)
        pods = [p for rs in store.items(REPLICASETS, ns) for p in self._owned(rs)
                if any(r.get("uid") == deployment["metadata"]["uid"] for r in rs["metadata"].get("ownerReferences") or [])]
        ready = sum(1 for p in pods if pod_ready(p))
        updated = sum(1 for p in pods if p["metadata"].get("labels", {}).get("pod-template-hash") == template_hash)
        available = ready >= max(0, replicas - 1) if replicas else True
        status = {
            "observedGeneration": deployment["metadata"].get("generation", 1),
            "replicas": len(pods), "updatedReplicas": updated, "readyReplicas": ready, "availableReplicas": ready,
            "unavailableReplicas": max(0, replicas - ready),
            "conditions": [
                {"type": "Available", "status": "True" if available else "False",
                 "reason": "MinimumReplicasAvailable" if available else "MinimumReplicasUnavailable",
                 "message": "Deployment has minimum availability." if available else "Deployment does not have minimum availability."},
                {"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable",
                 "message": f'ReplicaSet "{rs_name}" has successfully progressed.'},
            ],
        }
        if not status["unavailableReplicas"]:
            status.pop("unavailableReplicas")
        store.write_status(DEPLOYMENTS, deployment, status)

    def _reconcile_replicas(self, resource: ResourceType, owner: Obj) -> None:
        store = self.store
        pods = [p for p in self._owned(owner) if not p["metadata"].get("deletionTimestamp")]
        want = owner["spec"].get("replicas", 1)
        if resource is STATEFULSETS:
            names = {p["metadata"]["name"] for p in pods}
            for i in range(want):
                name = f"{owner['metadata']['name']}-{i}"
                if name not in names:
                    pod = pod_from_template(owner, name)
                    pod["metadata"]["labels"] = {**pod["metadata"]["labels"], "statefulset.kubernetes.io/pod-name": name}
                    pod["spec"]["hostname"] = name
                    store.create(PODS, pod, owner["metadata"]["namespace"])
            for pod in pods:
                index = pod["metadata"]["name"].rsplit("-", 1)[-1]
                if index.isascii() and index.isdigit() and int(index) >= want:
                    self.delete(PODS, pod)
        else:
            for _ in range(want - len(pods)):
                name = store.free_name(PODS, owner["metadata"]["namespace"], f"{owner['metadata']['name']}-")
                store.create(PODS, pod_from_template(owner, name), owner["metadata"]["namespace"])
            for pod in pods[want:] if len(pods) > want else []:
                self.delete(PODS, pod)
        pods = self._owned(owner)
        ready = sum(1 for p in pods if pod_ready(p))
        status = {"observedGeneration": owner["metadata"].get("generation", 1), "replicas": len(pods),
                  "readyReplicas": ready, "availableReplicas": ready}
        if resource is STATEFULSETS:
            status.update({"currentReplicas": len(pods), "updatedReplicas": len(pods)})
        else:
            status["fullyLabeledReplicas"] = len(pods)
        store.write_status(resource, owner, status)

    def _reconcile_daemonset(self, ds: Obj) -> None:
        store, scheduler = self.store, self.scheduler
        pods = [p for p in self._owned(ds) if not p["metadata"].get("deletionTimestamp")]
        by_node = {p["spec"].get("nodeName"): p for p in pods}
        desired = 0
        tolerations = [{"key": "node.kubernetes.io/unschedulable", "operator": "Exists", "effect": "NoSchedule"},
                       {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute"}]
        counts = scheduler.pods_per_node()
        for node in store.items(NODES):
            probe = {"spec": {**ds["spec"]["template"]["spec"],
                              "tolerations": (ds["spec"]["template"]["spec"].get("tolerations") or []) + tolerations}}
            reason = scheduler.fits(probe, node, daemon=True, counts=counts)
            node_name = node["metadata"]["name"]
            if reason not in (None, "Too many pods"):
                continue
            desired += 1
            if node_name not in by_node:
                pod = pod_from_template(ds, store.free_name(PODS, ds["metadata"]["namespace"], f"{ds['metadata']['name']}-"), node_name)
                pod["spec"]["tolerations"] = (pod["spec"].get("tolerations") or []) + tolerations
                pod["spec"]["affinity"] = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
                    "nodeSelectorTerms": [{"matchFields": [{"key": "metadata.name", "operator": "In", "values": [node_name]}]}]}}}
                store.create(PODS, pod, ds["metadata"]["namespace"])
        pods = self._owned(ds)
        ready = sum(1 for p in pods if pod_ready(p))
        status = {"currentNumberScheduled": len(pods), "desiredNumberScheduled": desired, "numberMisscheduled": 0,
                  "numberReady": ready, "numberAvailable": ready, "updatedNumberScheduled": len(pods),
                  "observedGeneration": ds["metadata"].get("generation", 1)}
        if desired - ready > 0:
            status["numberUnavailable"] = desired - ready
        store.write_status(DAEMONSETS, ds, status)

    # ---- PodDisruptionBudgets and the Eviction API --------------------------------------

    def _pdb_status(self, pdb: Obj) -> Obj:
        ns = pdb["metadata"]["namespace"]
        match = selector_object(pdb["spec"].get("selector"))
        pods = [p for p in self.store.items(PODS, ns) if match(p["metadata"].get("labels") or {}) and not p["metadata"].get("deletionTimestamp")]
        owners: dict[str, int] = {}
        unowned = 0
        for pod in pods:
            ref = next((r for r in pod["metadata"].get("ownerReferences") or [] if r.get("controller")), None)
            owner = None
            if ref and ref.get("kind") in ("ReplicaSet", "StatefulSet"):
                owner = self.store.objects[REPLICASETS if ref["kind"] == "ReplicaSet" else STATEFULSETS].get((ns, ref.get("name", "")))
            if owner is not None:
                owners[owner["metadata"]["uid"]] = owner["spec"].get("replicas", 1)
            else:
                unowned += 1
        expected = sum(owners.values()) + unowned
        healthy = sum(1 for p in pods if pod_ready(p))
        spec = pdb["spec"]

        def scaled(value: object, round_up: bool) -> int:
            if isinstance(value, str) and value.endswith("%") and value[:-1].isascii() and value[:-1].isdigit():
                share = expected * int(value[:-1]) / 100
                return math.ceil(share) if round_up else math.floor(share)
            return value if isinstance(value, int) and not isinstance(value, bool) else 0

        if spec.get("maxUnavailable") is not None:
            desired = max(0, expected - scaled(spec["maxUnavailable"], True))
        elif spec.get("minAvailable") is not None:
            desired = scaled(spec["minAvailable"], True)
        else:
            desired = expected
        allowed = max(0, healthy - desired)
        key = f"{ns}/{pdb['metadata']['name']}"
        if "*" in self.faults.frozen_pdbs or key in self.faults.frozen_pdbs:
            allowed = 0
        return {
            "observedGeneration": pdb["metadata"].get("generation", 1),
            "currentHealthy": healthy, "desiredHealthy": desired, "disruptionsAllowed": allowed, "expectedPods": expected,
            "conditions": [{
                "type": "DisruptionAllowed", "status": "True" if allowed else "False",
                "reason": "SufficientPods" if allowed else "InsufficientPods", "message": "",
                "observedGeneration": pdb["metadata"].get("generation", 1), "lastTransitionTime": "1970-01-01T00:00:00Z",
            }],
        }

    def _refresh_budget(self, pdb: Obj) -> None:
        self.store.write_status(PDBS, pdb, self._pdb_status(pdb))

    def refresh_budgets(self) -> None:
        """Recompute every PodDisruptionBudget's status (after changing frozen_pdbs)."""
        with self.store.lock:
            for pdb in self.store.items(PDBS):
                self._refresh_budget(pdb)

    def evict(self, namespace: str, name: str) -> None:
        """The Eviction API: refuse with 429 when a PodDisruptionBudget forbids it."""
        store = self.store
        with store.lock:
            pod = store.objects[PODS].get((namespace, name))
            if pod is None:
                raise errors.not_found("pods", "", name)
            if pod["metadata"].get("deletionTimestamp"):
                return
            if pod["status"].get("phase") == "Running":
                budgets = [pdb for pdb in store.items(PDBS, namespace)
                           if selector_object(pdb["spec"].get("selector"))(pod["metadata"].get("labels") or {})]
                if len(budgets) > 1:
                    raise errors.internal_error("This pod has more than one PodDisruptionBudget, which the eviction subresource does not support.")
                if budgets:
                    status = self._pdb_status(budgets[0])
                    healthy = pod_ready(pod)
                    allowed = status["disruptionsAllowed"] > 0 if healthy else status["currentHealthy"] >= status["desiredHealthy"]
                    if not allowed:
                        pdb_name = budgets[0]["metadata"]["name"]
                        raise errors.too_many_requests(
                            "Cannot evict pod as it would violate the pod's disruption budget.",
                            causes=[{
                                "reason": "DisruptionBudget",
                                "message": f"The disruption budget {pdb_name} needs {status['desiredHealthy']} healthy pods "
                                           f"and has {status['currentHealthy']} currently",
                            }],
                        )
            self.delete(PODS, pod)
            store.event(pod, "Normal", "Killing", f"Stopping container {pod['spec']['containers'][0]['name']}")
            store.settle()

    # ---- deleting: the garbage collector and namespace lifecycle ---------------------------

    def delete(self, resource: ResourceType, old: Obj, propagation: str = "Background") -> Obj:
        """Delete a stored object (the caller holds the lock and settles) and, unless ``propagation`` is Orphan, what it owns."""
        store = self.store
        if resource is NAMESPACES:
            return self._terminate_namespace(old)
        gone = store.remove(resource, old)
        if propagation != "Orphan":
            # The garbage collector: dependents go with their owner.
            uid = old["metadata"]["uid"]
            for dep_resource in (REPLICASETS, PODS, LEASES):
                for dep in store.items(dep_resource):
                    if any(ref.get("uid") == uid for ref in dep["metadata"].get("ownerReferences") or []):
                        self.delete(dep_resource, dep, propagation)
        if resource is NODES:
            # The pod garbage collector: pods bound to a deleted node are removed.
            for pod in store.items(PODS):
                if pod["spec"].get("nodeName") == old["metadata"]["name"] and store.key(PODS, pod) in store.objects[PODS]:
                    self.delete(PODS, pod)
        return gone

    def _terminate_namespace(self, old: Obj) -> Obj:
        store = self.store
        if old["status"].get("phase") == "Terminating":
            return old
        terminating = evolve(old)
        terminating["metadata"]["deletionTimestamp"] = now()
        terminating["status"] = {"phase": "Terminating"}
        store.write(NAMESPACES, terminating, "MODIFIED", old)
        name = old["metadata"]["name"]

        def finalize() -> None:
            for resource in RESOURCES:
                if resource.namespaced:
                    for obj in store.items(resource, name):
                        if (resource.namespaced and obj["metadata"].get("namespace") == name
                                and store.key(resource, obj) in store.objects[resource]):
                            self.delete(resource, obj, "Orphan")
            current = store.objects[NAMESPACES].get(("", name))
            if current is not None:
                done = copy.deepcopy(current)
                done["spec"] = {"finalizers": []}
                store.write(NAMESPACES, done, "DELETED", current)

        store.after(self.namespace_finalize_delay, finalize)
        return terminating

    # ---- the system-upgrade-controller ------------------------------------------------

    def _run_upgrade_plan(self, plan: Obj) -> None:
        """What system-upgrade-controller does with a Plan: replace the kubelet of every node it selects."""
        spec = plan.get("spec") or {}
        version = str(spec.get("version") or "").lstrip("v")
        selector = spec.get("nodeSelector") or {}
        if not version:
            return
        for node in self.store.items(NODES):
            if selector_object(selector)(node["metadata"].get("labels") or {}):
                self.kubelets.upgrade_node(node["metadata"]["name"], version)
