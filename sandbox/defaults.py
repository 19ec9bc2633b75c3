"""What kube-apiserver fills in that a client left out, kind by kind.

``fill`` is the defaulting a real server applies to every object it decodes (so on create
and on every update: a client that PUTs an object without them gets them back), and
``initial_status`` what a create resets the status to. Both only add what is missing,
so an object sent back as it was read stays the same. Custom resources (``Plan``) are
left as sent, as a CRD without defaults in its schema leaves them.
"""

from __future__ import annotations

from typing import Any

from sandbox.resources import ResourceType

Obj = dict[str, Any]

WITHOUT_SPEC = frozenset({"events", "serviceaccounts", "configmaps", "roles", "rolebindings", "clusterroles", "clusterrolebindings"})
CUSTOM_GROUPS = frozenset({"upgrade.cattle.io"})
TEMPLATED = frozenset({"deployments", "replicasets", "statefulsets", "daemonsets"})
RBAC_GROUP = "rbac.authorization.k8s.io"
NODE_INFO_FIELDS = ("machineID", "systemUUID", "bootID", "kernelVersion", "osImage", "containerRuntimeVersion", "kubeletVersion",
                    "kubeProxyVersion", "operatingSystem", "architecture")


def is_custom(resource: ResourceType) -> bool:
    return resource.group in CUSTOM_GROUPS


def has_spec(resource: ResourceType) -> bool:
    return resource.plural not in WITHOUT_SPEC and not is_custom(resource)


def _dict(parent: Obj, key: str) -> Obj:
    """``parent[key]`` as a dict, made one when missing or null."""
    value = parent.get(key)
    if not isinstance(value, dict):
        value = parent[key] = {}
    return value


def _image_pull_policy(image: Any) -> str:
    image = str(image or "")
    if "@" in image:
        return "IfNotPresent"
    last = image.rsplit("/", 1)[-1]
    tag = last.rsplit(":", 1)[1] if ":" in last else ""
    return "Always" if tag in ("", "latest") else "IfNotPresent"


def _container(container: Any) -> None:
    if not isinstance(container, dict):
        return
    container.setdefault("terminationMessagePath", "/dev/termination-log")
    container.setdefault("terminationMessagePolicy", "File")
    container.setdefault("imagePullPolicy", _image_pull_policy(container.get("image")))
    if container.get("resources") is None:
        container["resources"] = {}
    for port in container.get("ports") or []:
        if isinstance(port, dict):
            port.setdefault("protocol", "TCP")


def pod_spec(spec: Obj) -> None:
    """The defaults of a PodSpec (a pod's, or a workload's template's)."""
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("schedulerName", "default-scheduler")
    spec.setdefault("enableServiceLinks", True)
    if spec.get("securityContext") is None:
        spec["securityContext"] = {}
    for key in ("initContainers", "containers", "ephemeralContainers"):
        for container in spec.get(key) or []:
            _container(container)


def _template(spec: Obj) -> None:
    template = _dict(spec, "template")
    _dict(template, "metadata")
    pod_spec(_dict(template, "spec"))


def fill(resource: ResourceType, obj: Obj) -> None:
    """Apply the defaults of ``resource`` to ``obj`` in place (only what is missing)."""
    plural = resource.plural
    meta = _dict(obj, "metadata")
    if plural == "namespaces":
        _dict(meta, "labels")["kubernetes.io/metadata.name"] = meta.get("name", "")
    if plural in ("rolebindings", "clusterrolebindings"):
        for subject in obj.get("subjects") or []:
            if isinstance(subject, dict) and subject.get("kind") in ("User", "Group"):
                subject.setdefault("apiGroup", RBAC_GROUP)
    if plural == "events":
        for key in ("reportingComponent", "reportingInstance"):
            obj.setdefault(key, "")
        for key in ("eventTime", "firstTimestamp", "lastTimestamp"):
            obj.setdefault(key, None)
        _dict(obj, "involvedObject")
        _dict(obj, "source")
    if not has_spec(resource):
        return
    spec = _dict(obj, "spec")
    if plural == "pods":
        pod_spec(spec)
        spec.setdefault("serviceAccountName", "default")
        spec.setdefault("priority", 0)
        spec.setdefault("preemptionPolicy", "PreemptLowerPriority")
    elif plural in TEMPLATED:
        _template(spec)
        spec.setdefault("revisionHistoryLimit", 10)
        if plural != "daemonsets":
            spec.setdefault("replicas", 1)
        if plural == "deployments":
            spec.setdefault("progressDeadlineSeconds", 600)
            strategy = _dict(spec, "strategy")
            strategy.setdefault("type", "RollingUpdate")
            if strategy["type"] == "RollingUpdate":
                rolling = _dict(strategy, "rollingUpdate")
                rolling.setdefault("maxSurge", "25%")
                rolling.setdefault("maxUnavailable", "25%")
        elif plural == "statefulsets":
            spec.setdefault("serviceName", meta.get("name", ""))
            spec.setdefault("podManagementPolicy", "OrderedReady")
            strategy = _dict(spec, "updateStrategy")
            strategy.setdefault("type", "RollingUpdate")
            if strategy["type"] == "RollingUpdate":
                _dict(strategy, "rollingUpdate").setdefault("partition", 0)
            retention = _dict(spec, "persistentVolumeClaimRetentionPolicy")
            retention.setdefault("whenDeleted", "Retain")
            retention.setdefault("whenScaled", "Retain")
        elif plural == "daemonsets":
            strategy = _dict(spec, "updateStrategy")
            strategy.setdefault("type", "RollingUpdate")
            if strategy["type"] == "RollingUpdate":
                rolling = _dict(strategy, "rollingUpdate")
                rolling.setdefault("maxUnavailable", 1)
                rolling.setdefault("maxSurge", 0)
    elif plural == "services":
        spec.setdefault("type", "ClusterIP")
        spec.setdefault("sessionAffinity", "None")
        if spec["type"] != "ExternalName":
            spec.setdefault("ipFamilies", ["IPv4"])
            spec.setdefault("ipFamilyPolicy", "SingleStack")
            spec.setdefault("internalTrafficPolicy", "Cluster")
        for port in spec.get("ports") or []:
            if isinstance(port, dict):
                port.setdefault("protocol", "TCP")
                if "port" in port:
                    port.setdefault("targetPort", port["port"])
    elif plural == "networkpolicies":
        _dict(spec, "podSelector")
        if not spec.get("policyTypes"):
            # What a real API server derives: Ingress always, Egress when egress rules are given.
            spec["policyTypes"] = ["Ingress", *(["Egress"] if spec.get("egress") else [])]
    elif plural == "namespaces":
        if spec.get("finalizers") is None:
            spec["finalizers"] = ["kubernetes"]
    elif plural == "limitranges":
        if spec.get("limits") is None:
            spec["limits"] = []  # the API type has no omitempty here; clients' models require the list


def initial_status(resource: ResourceType, obj: Obj) -> None:
    """The status a create leaves: reset for most kinds, kept (blanks filled) for nodes, as sent for custom resources."""
    plural = resource.plural
    if not resource.has_status or is_custom(resource):
        return
    if plural == "nodes":
        status = _dict(obj, "status")
        _dict(_dict(status, "daemonEndpoints"), "kubeletEndpoint").setdefault("Port", 0)
        info = _dict(status, "nodeInfo")
        for key in NODE_INFO_FIELDS:
            info.setdefault(key, "")
        return
    obj["status"] = {
        "namespaces": {"phase": "Active"},
        "pods": {"phase": "Pending", "qosClass": qos_class(obj.get("spec") or {})},
        "deployments": {"replicas": 0, "observedGeneration": 0},
        "replicasets": {"replicas": 0},
        "statefulsets": {"replicas": 0, "availableReplicas": 0},
        "daemonsets": {"currentNumberScheduled": 0, "desiredNumberScheduled": 0, "numberMisscheduled": 0, "numberReady": 0},
        "poddisruptionbudgets": {"currentHealthy": 0, "desiredHealthy": 0, "disruptionsAllowed": 0, "expectedPods": 0},
        "services": {"loadBalancer": {}},
        "resourcequotas": {"hard": dict((obj.get("spec") or {}).get("hard") or {}), "used": {}},
    }.get(plural, {})


def qos_class(spec: Obj) -> str:
    """Guaranteed when every container limits CPU and memory and requests what it limits; BestEffort when none
    asks for anything; Burstable otherwise."""
    containers = [c for c in [*(spec.get("initContainers") or []), *(spec.get("containers") or [])] if isinstance(c, dict)]
    asked = False
    guaranteed = bool(containers)
    for container in containers:
        resources = container.get("resources") or {}
        limits, requests = resources.get("limits") or {}, {**(resources.get("limits") or {}), **(resources.get("requests") or {})}
        if limits or requests:
            asked = True
        if any(limits.get(r) is None or str(requests.get(r)) != str(limits.get(r)) for r in ("cpu", "memory")):
            guaranteed = False
    return "Guaranteed" if asked and guaranteed else "Burstable" if asked else "BestEffort"
