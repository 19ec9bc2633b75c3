"""Preflight: can this plan run? Failures block submission and start; warnings go to approvers.

Reads clusters through the gateway; changes nothing.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from django.conf import settings
from django.utils import timezone

from clusters.choices import UpgradeDriver as Driver
from clusters.connect import gateway_for
from clusters.kube import UNREADABLE, Gateway, KubeError
from clusters.kube.gateway import MIRROR_ANNOTATION
from clusters.models import Cluster, ClusterNode
from pksweb.text import bound
from upgrades import drivers, versions

FINDING_LIMIT = 1000


@dataclass
class Finding:
    cluster: str
    check: str
    message: str


@dataclass
class Preflight:
    failures: list[Finding] = field(default_factory=list)
    warnings: list[Finding] = field(default_factory=list)

    def fail(self, cluster: str, check: str, message: str) -> None:
        self.failures.append(Finding(cluster, check, bound(message, FINDING_LIMIT)))

    def warn(self, cluster: str, check: str, message: str) -> None:
        self.warnings.append(Finding(cluster, check, bound(message, FINDING_LIMIT)))

    def as_dict(self) -> dict[str, Any]:
        return {"ok": not self.failures, "failures": [asdict(f) for f in self.failures],
                "warnings": [asdict(w) for w in self.warnings], "checked_at": timezone.now().isoformat()}


def _selector_matches(selector: dict[str, Any] | None, labels: dict[str, str]) -> bool:
    if not selector:
        return False
    if any(labels.get(k) != v for k, v in (selector.get("matchLabels") or {}).items()):
        return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr.get("key"), expr.get("operator"), set(expr.get("values") or [])
        if (op == "In" and labels.get(key) not in values) or (op == "NotIn" and labels.get(key) in values) or \
                (op == "Exists" and key not in labels) or (op == "DoesNotExist" and key in labels):
            return False
    return True


def _tolerates(tolerations: list[dict[str, Any]], taints: list[dict[str, Any]]) -> bool:
    for taint in taints:
        if taint.get("effect") not in ("NoSchedule", "NoExecute"):
            continue
        if not any((t.get("operator") == "Exists" and (not t.get("key") or t.get("key") == taint.get("key")))
                   or (t.get("key") == taint.get("key") and t.get("value", "") == taint.get("value", ""))
                   for t in tolerations if not t.get("effect") or t.get("effect") == taint.get("effect")):
            return False
    return True


def check_versions(report: Preflight, cluster: Cluster, nodes: list[ClusterNode], target: str) -> None:
    current = versions.parse(cluster.version)
    wanted = versions.parse(target)
    if wanted is None:
        report.fail(cluster.name, "version", f"{target!r} is not a Kubernetes version (write it like 1.31.2).")
        return
    if current is None:
        report.fail(cluster.name, "version", "The cluster's version is unknown: probe it first.")
        return
    if wanted < current:
        report.fail(cluster.name, "version", f"{target} is older than the cluster's {cluster.version}: pksweb never downgrades.")
    elif wanted[:2] > (current[0], current[1] + 1):
        report.fail(cluster.name, "version", f"The control plane moves one minor at a time: {cluster.version} → {target} must go "
                                             f"through {current[0]}.{current[1] + 1} first.")
    elif wanted == current:
        report.warn(cluster.name, "version", f"The control plane already runs {target}; only nodes behind it are upgraded.")
    for node in nodes:
        if node.unschedulable:
            report.warn(cluster.name, "cordoned", f"Node {node.name} is cordoned: it is upgraded and left cordoned, as someone "
                                                  "wanted it (uncordon it first to have it back in service after its upgrade).")
        kubelet = versions.parse(node.kubelet_version)
        if kubelet is None:
            continue
        if kubelet[:2] > wanted[:2]:
            report.fail(cluster.name, "skew", f"Node {node.name} runs kubelet {node.kubelet_version}, newer than the target {target}: "
                                              "a kubelet may never be newer than the control plane.")
        elif wanted[1] - kubelet[1] > versions.KUBELET_SKEW:
            report.fail(cluster.name, "skew", f"Node {node.name} runs kubelet {node.kubelet_version}: more than "
                                              f"{versions.KUBELET_SKEW} minors behind {target} once the control plane moves.")


def check_driver(report: Preflight, cluster: Cluster) -> None:
    if cluster.upgrade_driver not in drivers.DRIVERS:
        report.fail(cluster.name, "driver", "No upgrade driver is configured for this cluster: set one on the cluster's page.")
    elif cluster.upgrade_driver == Driver.COMMAND:
        if not settings.PKSWEB_ALLOW_COMMAND_DRIVER:
            report.fail(cluster.name, "driver", "The command driver is off in this deployment (PKSWEB_ALLOW_COMMAND_DRIVER=1 turns it on).")
        elif not cluster.upgrade_command:
            report.fail(cluster.name, "driver", "The command driver needs a command (argv with {cluster}, {node}, {version}).")


def check_removed_apis(report: Preflight, cluster: Cluster, gateway: Gateway, target: str) -> None:
    removed = versions.removed_between(cluster.version, target)
    if not removed:
        return
    try:
        served = gateway.served_group_versions()
    except KubeError as exc:
        report.fail(cluster.name, "removed-api", f"Could not read which APIs the cluster serves, so objects in APIs that "
                                                 f"{target} removes could not be counted: {exc.message}")
        return
    for group_version, (resources, minor) in sorted(removed.items()):
        if group_version not in served:
            continue
        for resource in resources:
            try:
                count = gateway.count_stored(group_version, resource)
            except KubeError as exc:
                # Never a silent pass: what could not be counted could block the upgrade.
                report.fail(cluster.name, "removed-api", f"Could not count {resource} served through {group_version}, which "
                                                         f"Kubernetes 1.{minor} removes: {exc.message}")
                continue
            if count:
                report.fail(cluster.name, "removed-api", f"{count} {resource} are still served through {group_version}, "
                                                         f"which Kubernetes 1.{minor} removes: migrate them first.")


def _controller(pod: dict[str, Any]) -> dict[str, Any] | None:
    return next((r for r in (pod["metadata"].get("ownerReferences") or []) if r and r.get("controller")), None)


def check_drains(report: Preflight, cluster: Cluster, gateway: Gateway, nodes: list[ClusterNode], max_unavailable: int = 1) -> None:
    pods = gateway.pods_raw()
    running = [p for p in pods if (p.get("status") or {}).get("phase") in ("Running", "Pending")
               and not (p.get("metadata") or {}).get("deletionTimestamp")]
    for pdb in gateway.pdbs():
        meta, spec, status = pdb["metadata"], pdb.get("spec") or {}, pdb.get("status") or {}
        protected = [p["metadata"]["name"] for p in running if p["metadata"].get("namespace") == meta["namespace"]
                     and _selector_matches(spec.get("selector"), p["metadata"].get("labels") or {})]
        if not protected:
            continue
        expected = status.get("expectedPods", len(protected))
        never = spec.get("maxUnavailable") in (0, "0", "0%") or (isinstance(spec.get("minAvailable"), int) and spec["minAvailable"] >= expected)
        name = f"{meta['namespace']}/{meta['name']}"
        if never:
            report.fail(cluster.name, "pdb", f"PodDisruptionBudget {name} allows no disruption at all "
                                             f"({'maxUnavailable: 0' if 'maxUnavailable' in spec else 'minAvailable: ' + str(spec.get('minAvailable'))}); "
                                             f"it would block evicting {', '.join(sorted(protected)[:6])}.")
        elif status.get("disruptionsAllowed", 1) == 0:
            report.warn(cluster.name, "pdb", f"PodDisruptionBudget {name} allows no disruption right now "
                                             f"({status.get('currentHealthy')} healthy, {status.get('desiredHealthy')} needed); "
                                             f"drains of nodes running {', '.join(sorted(protected)[:6])} will wait.")
    by_node: dict[str, int] = {}
    for pod in running:
        node = (pod.get("spec") or {}).get("nodeName")
        if node:
            by_node[node] = by_node.get(node, 0) + 1
    for node in nodes:
        if node.is_control_plane:
            continue
        # The drain's own rules (clusters.kube.drain.node_drain): DaemonSet and mirror pods stay, a pod whose
        # controller is none is refused; both read the controller owner, as the gateway's PodInfo does.
        movable = [p for p in running if (p.get("spec") or {}).get("nodeName") == node.name
                   and (_controller(p) or {}).get("kind") != "DaemonSet"
                   and MIRROR_ANNOTATION not in (p["metadata"].get("annotations") or {})]
        bare = sorted(f"{p['metadata'].get('namespace')}/{p['metadata'].get('name')}" for p in movable if _controller(p) is None)
        if bare:
            report.fail(cluster.name, "unmanaged", f"{len(bare)} pod(s) on {node.name} have no controller ({', '.join(bare[:6])}"
                                                   f"{' …' if len(bare) > 6 else ''}): draining would delete them for good, so "
                                                   "pksweb's drain refuses; delete or move them first.")
        for pod in movable:
            spec = pod.get("spec") or {}
            targets = [
                other for other in nodes
                if other.name != node.name and other.ready and not other.unschedulable
                and _tolerates(spec.get("tolerations") or [], [_taint(t) for t in other.taints])
                and all(other.labels.get(k) == v for k, v in (spec.get("nodeSelector") or {}).items())
            ]
            name = f"{pod['metadata']['namespace']}/{pod['metadata']['name']}"
            if not targets:
                report.fail(cluster.name, "capacity", f"Pod {name} on {node.name} would have nowhere to go while its node is "
                                                      "drained (cordons, taints, node selectors leave no other node).")
                break
            if len(targets) < max_unavailable:
                # The worst case: every other node it could go to is drained at the same time.
                report.fail(cluster.name, "capacity", f"Pod {name} on {node.name} could have nowhere to go with {max_unavailable} "
                                                      f"nodes drained at once (only {len(targets)} other node"
                                                      f"{'s' if len(targets) != 1 else ''} can take it): lower max_unavailable.")
                break


def _taint(text: str) -> dict[str, str]:
    key_value, _, effect = text.rpartition(":")
    key, _, value = key_value.partition("=")
    return {"key": key, "value": value, "effect": effect}


def run(*, clusters: list[Cluster], target: str, max_unavailable: int = 1, missing: list[str] | None = None,
        nodes: int | None = None) -> Preflight:
    """Every check for every cluster; a cluster that cannot be read is a failure, not a crash. ``missing``:
    clusters the plan names that pksweb no longer has; ``nodes``: the flight plan's length (none is a failure:
    a rollout of nothing would report every node upgraded)."""

    report = Preflight()
    if versions.parse(target) is None:
        report.fail("", "version", f"{target!r} is not a Kubernetes version (write it like 1.31.2).")
        return report
    for name in missing or []:
        report.fail(name, "clusters", f"Cluster {name} is no longer in pksweb (it was removed): take it out of the waves.")
    if nodes == 0 and not missing:
        report.fail("", "nodes", "The plan has no nodes to upgrade: its clusters have no nodes pksweb has seen yet "
                                 "(wait for a probe, or check the clusters).")
    for cluster in clusters:
        seen = list(ClusterNode.objects.filter(cluster=cluster).order_by("name"))
        check_versions(report, cluster, seen, target)
        check_driver(report, cluster)
        if cluster.status != "healthy":
            reasons = "; ".join(cluster.reasons[:2]) if cluster.reasons else "no probe yet"
            report.fail(cluster.name, "health", f"Cluster {cluster.name} is {cluster.status}: {reasons}.")
        try:
            gateway = gateway_for(cluster)
            check_removed_apis(report, cluster, gateway, target)
            check_drains(report, cluster, gateway, seen, max_unavailable)
        except KubeError as exc:
            report.fail(cluster.name, "reachable", exc.message)
        except UNREADABLE as exc:
            # Objects in a shape no Kubernetes API gives: the checks could not look, which is a failure.
            report.fail(cluster.name, "reachable", f"The cluster sent objects pksweb could not read, so the drain and "
                                                   f"capacity checks could not run ({type(exc).__name__}: {bound(str(exc), 200)}).")
    return report
