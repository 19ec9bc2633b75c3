"""The ``Table`` form of objects (``meta.k8s.io/v1``), which ``kubectl get`` asks for.

kubectl sends ``Accept: application/json;as=Table;v=v1;g=meta.k8s.io,application/json``
and prints the server's columns as they come (upper-cased; NAMESPACE it adds itself
for ``-A``; priority-1 columns only with ``-o wide``). The columns and cells here follow
kube-apiserver's printers for the kinds an operator looks at most; other kinds get
NAME and AGE. ``includeObject`` (Object, Metadata by default, None) says what each row
carries besides its cells.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sandbox.resources import ResourceType

Obj = dict[str, Any]
Column = tuple[str, str, int]  # (name, type, priority)
TABLE_VERSIONS = ("meta.k8s.io/v1", "meta.k8s.io/v1beta1")
NAME_DOC = "Name must be unique within a namespace."
AGE_DOC = ("CreationTimestamp is a timestamp representing the server time when this object was created. It is not guaranteed "
           "to be set in happens-before order across separate operations. Clients may not set this value.")


def wanted(accept: str) -> str | None:
    """The Table apiVersion the Accept header asks for first, or None when it prefers plain JSON."""
    for entry in accept.split(","):
        kind, *params = (part.strip() for part in entry.split(";"))
        if kind not in ("application/json", "*/*", "application/*"):
            continue
        options = dict(p.partition("=")[::2] for p in params)
        if options.get("as") == "Table" and options.get("g") == "meta.k8s.io" and options.get("v") in ("v1", "v1beta1"):
            return f"meta.k8s.io/{options['v']}"
        if "as" not in options:
            return None
    return None


def content_type(version: str) -> str:
    group, _, v = version.partition("/")
    return f"application/json;as=Table;v={v};g={group}"


def age(stamp: Any, now: datetime | None = None) -> str:
    """How long ago ``stamp`` was, the way kubectl shows it (``HumanDuration``): 45s, 5m12s, 3h4m, 12d, 2y30d."""
    if not stamp:
        return "<unknown>"
    try:  # RFC 3339, with or without fractions of a second (an event's eventTime has them)
        then = datetime.strptime(str(stamp)[:19], "%Y-%m-%dT%H:%M:%S").replace(tzinfo=UTC)
    except ValueError:
        return "<unknown>"
    seconds = int(((now or datetime.now(UTC)) - then).total_seconds())
    if seconds < -1:
        return "<invalid>"
    if seconds < 0:
        return "0s"
    if seconds < 120:
        return f"{seconds}s"
    minutes = seconds // 60
    if minutes < 10:
        return f"{minutes}m{seconds % 60}s" if seconds % 60 else f"{minutes}m"
    if minutes < 180:
        return f"{minutes}m"
    hours = minutes // 60
    if hours < 8:
        return f"{hours}h{minutes % 60}m" if minutes % 60 else f"{hours}h"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        return f"{hours // 24}d{hours % 24}h" if hours % 24 else f"{hours // 24}d"
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    if hours < 24 * 365 * 8:
        days = hours // 24 % 365
        return f"{hours // 24 // 365}y{days}d" if days else f"{hours // 24 // 365}y"
    return f"{hours // 24 // 365}y"


def _meta(obj: Obj) -> Obj:
    return obj.get("metadata") or {}


def _spec(obj: Obj) -> Obj:
    return spec if isinstance(spec := obj.get("spec"), dict) else {}


def _status(obj: Obj) -> Obj:
    return status if isinstance(status := obj.get("status"), dict) else {}


def _created(obj: Obj) -> str:
    return age(_meta(obj).get("creationTimestamp"))


def _none(value: Any) -> Any:
    return value if value not in (None, "", []) else "<none>"


def _node(obj: Obj) -> list[Any]:
    status, labels = _status(obj), _meta(obj).get("labels") or {}
    ready = next((c for c in status.get("conditions") or [] if isinstance(c, dict) and c.get("type") == "Ready"), None)
    state = "Unknown" if ready is None or ready.get("status") not in ("True", "False") else (
        "Ready" if ready["status"] == "True" else "NotReady")
    if _spec(obj).get("unschedulable"):
        state += ",SchedulingDisabled"
    roles = sorted({k.split("/", 1)[1] for k in labels if k.startswith("node-role.kubernetes.io/") and k.split("/", 1)[1]}
                   | ({labels["kubernetes.io/role"]} if labels.get("kubernetes.io/role") else set()))
    info = status.get("nodeInfo") or {}
    addresses = [a for a in status.get("addresses") or [] if isinstance(a, dict)]

    def address(kind: str) -> str:
        return next((a.get("address", "") for a in addresses if a.get("type") == kind), "") or "<none>"

    return [_meta(obj).get("name", ""), state, ",".join(roles) or "<none>", _created(obj), info.get("kubeletVersion", ""),
            address("InternalIP"), address("ExternalIP"), info.get("osImage") or "<unknown>",
            info.get("kernelVersion") or "<unknown>", info.get("containerRuntimeVersion") or "<unknown>"]


def _pod(obj: Obj) -> list[Any]:
    spec, status = _spec(obj), _status(obj)
    containers = [c for c in spec.get("containers") or [] if isinstance(c, dict)]
    statuses = [c for c in status.get("containerStatuses") or [] if isinstance(c, dict)]
    reason = status.get("reason") or status.get("phase") or "Unknown"
    for container in reversed(statuses):
        state = container.get("state") or {}
        if (state.get("waiting") or {}).get("reason"):
            reason = state["waiting"]["reason"]
        elif (state.get("terminated") or {}).get("reason"):
            reason = state["terminated"]["reason"]
    if _meta(obj).get("deletionTimestamp"):
        reason = "Terminating"
    ready = sum(1 for c in statuses if c.get("ready"))
    restarts = sum(int(c.get("restartCount") or 0) for c in statuses)
    return [_meta(obj).get("name", ""), f"{ready}/{len(containers)}", reason, str(restarts), _created(obj),
            _none(status.get("podIP")), _none(spec.get("nodeName")), _none(status.get("nominatedNodeName")), "<none>"]


def _namespace(obj: Obj) -> list[Any]:
    return [_meta(obj).get("name", ""), _status(obj).get("phase", ""), _created(obj)]


def _pod_template(obj: Obj) -> tuple[str, str]:
    containers = [c for c in (_spec(obj).get("template") or {}).get("spec", {}).get("containers") or [] if isinstance(c, dict)]
    return ",".join(str(c.get("name", "")) for c in containers), ",".join(str(c.get("image", "")) for c in containers)


def _selector(selector: Any) -> str:
    if not isinstance(selector, dict):
        return "<none>"
    parts = [f"{k}={v}" for k, v in sorted((selector.get("matchLabels") or {}).items())]
    for expr in selector.get("matchExpressions") or []:
        if isinstance(expr, dict):
            op, values = expr.get("operator", ""), ",".join(expr.get("values") or [])
            parts.append({"In": f"{expr.get('key')} in ({values})", "NotIn": f"{expr.get('key')} notin ({values})",
                          "Exists": str(expr.get("key")), "DoesNotExist": f"!{expr.get('key')}"}.get(op, str(expr.get("key"))))
    return ",".join(parts) or "<none>"


def _deployment(obj: Obj) -> list[Any]:
    spec, status = _spec(obj), _status(obj)
    names, images = _pod_template(obj)
    return [_meta(obj).get("name", ""), f"{status.get('readyReplicas', 0)}/{spec.get('replicas', 0)}",
            status.get("updatedReplicas", 0), status.get("availableReplicas", 0), _created(obj), names, images,
            _selector(spec.get("selector"))]


def _replicaset(obj: Obj) -> list[Any]:
    spec, status = _spec(obj), _status(obj)
    names, images = _pod_template(obj)
    return [_meta(obj).get("name", ""), spec.get("replicas", 0), status.get("replicas", 0), status.get("readyReplicas", 0),
            _created(obj), names, images, _selector(spec.get("selector"))]


def _statefulset(obj: Obj) -> list[Any]:
    spec, status = _spec(obj), _status(obj)
    names, images = _pod_template(obj)
    return [_meta(obj).get("name", ""), f"{status.get('readyReplicas', 0)}/{spec.get('replicas', 0)}", _created(obj), names, images]


def _daemonset(obj: Obj) -> list[Any]:
    status = _status(obj)
    selector = ((_spec(obj).get("template") or {}).get("spec") or {}).get("nodeSelector") or {}
    names, images = _pod_template(obj)
    return [_meta(obj).get("name", ""), status.get("desiredNumberScheduled", 0), status.get("currentNumberScheduled", 0),
            status.get("numberReady", 0), status.get("updatedNumberScheduled", 0), status.get("numberAvailable", 0),
            ",".join(f"{k}={v}" for k, v in sorted(selector.items())) or "<none>", _created(obj), names, images,
            _selector(_spec(obj).get("selector"))]


def _service(obj: Obj) -> list[Any]:
    spec = _spec(obj)
    ports = ",".join(f"{p.get('port')}{':' + str(p['nodePort']) if p.get('nodePort') else ''}/{p.get('protocol', 'TCP')}"
                     for p in spec.get("ports") or [] if isinstance(p, dict)) or "<none>"
    ingress = (_status(obj).get("loadBalancer") or {}).get("ingress") or []
    external = ",".join(i.get("ip") or i.get("hostname", "") for i in ingress if isinstance(i, dict)) or (
        "<pending>" if spec.get("type") == "LoadBalancer" else "<none>")
    selector = ",".join(f"{k}={v}" for k, v in sorted((spec.get("selector") or {}).items())) or "<none>"
    return [_meta(obj).get("name", ""), spec.get("type", ""), _none(spec.get("clusterIP")), external, ports, _created(obj), selector]


def _budget(obj: Obj) -> list[Any]:
    spec = _spec(obj)
    return [_meta(obj).get("name", ""), spec.get("minAvailable", "N/A") if spec.get("minAvailable") is not None else "N/A",
            spec.get("maxUnavailable") if spec.get("maxUnavailable") is not None else "N/A",
            _status(obj).get("disruptionsAllowed", 0), _created(obj)]


def _event(obj: Obj) -> list[Any]:
    involved = obj.get("involvedObject") or {}
    source = obj.get("source") or {}
    source_text = ", ".join(s for s in (source.get("component") or obj.get("reportingComponent"), source.get("host")) if s)
    last = obj.get("lastTimestamp") or obj.get("eventTime") or _meta(obj).get("creationTimestamp")
    first = obj.get("firstTimestamp") or obj.get("eventTime") or _meta(obj).get("creationTimestamp")
    return [age(last), obj.get("type", ""), obj.get("reason", ""),
            f"{str(involved.get('kind', '')).lower()}/{involved.get('name', '')}", involved.get("fieldPath", ""), source_text,
            str(obj.get("message", "")).strip(), age(first), obj.get("count") or 1, _meta(obj).get("name", "")]


def _binding(obj: Obj) -> list[Any]:
    ref = given if isinstance(given := obj.get("roleRef"), dict) else {}
    subjects = [s for s in obj.get("subjects") or [] if isinstance(s, dict)]

    def names(kind: str) -> str:
        return ", ".join(f"{s.get('namespace', '')}/{s.get('name', '')}" if kind == "ServiceAccount" else str(s.get("name", ""))
                         for s in subjects if s.get("kind") == kind)

    return [_meta(obj).get("name", ""), f"{ref.get('kind', '')}/{ref.get('name', '')}", _created(obj), names("User"),
            names("Group"), names("ServiceAccount")]


def _role(obj: Obj) -> list[Any]:
    return [_meta(obj).get("name", ""), _meta(obj).get("creationTimestamp") or ""]


def _lease(obj: Obj) -> list[Any]:
    return [_meta(obj).get("name", ""), _none(_spec(obj).get("holderIdentity")), _created(obj)]


def _generic(obj: Obj) -> list[Any]:
    return [_meta(obj).get("name", ""), _created(obj)]


NAME: Column = ("Name", "string", 0)
AGE: Column = ("Age", "string", 0)
PRINTERS: dict[str, tuple[list[Column], Callable[[Obj], list[Any]]]] = {
    "leases": ([NAME, ("Holder", "string", 0), AGE], _lease),
    **{plural: ([NAME, ("Role", "string", 0), AGE, ("Users", "string", 1), ("Groups", "string", 1),
                 ("ServiceAccounts", "string", 1)], _binding) for plural in ("rolebindings", "clusterrolebindings")},
    **{plural: ([NAME, ("Created At", "date", 0)], _role) for plural in ("roles", "clusterroles")},
    "nodes": ([NAME, ("Status", "string", 0), ("Roles", "string", 0), AGE, ("Version", "string", 0), ("Internal-IP", "string", 1),
               ("External-IP", "string", 1), ("OS-Image", "string", 1), ("Kernel-Version", "string", 1),
               ("Container-Runtime", "string", 1)], _node),
    "pods": ([NAME, ("Ready", "string", 0), ("Status", "string", 0), ("Restarts", "string", 0), AGE, ("IP", "string", 1),
              ("Node", "string", 1), ("Nominated Node", "string", 1), ("Readiness Gates", "string", 1)], _pod),
    "namespaces": ([NAME, ("Status", "string", 0), AGE], _namespace),
    "deployments": ([NAME, ("Ready", "string", 0), ("Up-to-date", "integer", 0), ("Available", "integer", 0), AGE,
                     ("Containers", "string", 1), ("Images", "string", 1), ("Selector", "string", 1)], _deployment),
    "replicasets": ([NAME, ("Desired", "integer", 0), ("Current", "integer", 0), ("Ready", "integer", 0), AGE,
                     ("Containers", "string", 1), ("Images", "string", 1), ("Selector", "string", 1)], _replicaset),
    "statefulsets": ([NAME, ("Ready", "string", 0), AGE, ("Containers", "string", 1), ("Images", "string", 1)], _statefulset),
    "daemonsets": ([NAME, ("Desired", "integer", 0), ("Current", "integer", 0), ("Ready", "integer", 0), ("Up-to-date", "integer", 0),
                    ("Available", "integer", 0), ("Node Selector", "string", 0), AGE, ("Containers", "string", 1),
                    ("Images", "string", 1), ("Selector", "string", 1)], _daemonset),
    "services": ([NAME, ("Type", "string", 0), ("Cluster-IP", "string", 0), ("External-IP", "string", 0), ("Port(s)", "string", 0),
                  AGE, ("Selector", "string", 1)], _service),
    "poddisruptionbudgets": ([NAME, ("Min Available", "string", 0), ("Max Unavailable", "string", 0),
                              ("Allowed Disruptions", "integer", 0), AGE], _budget),
    "events": ([("Last Seen", "string", 0), ("Type", "string", 0), ("Reason", "string", 0), ("Object", "string", 0),
                ("Subobject", "string", 1), ("Source", "string", 1), ("Message", "string", 0), ("First Seen", "string", 1),
                ("Count", "string", 1), ("Name", "string", 1)], _event),
}


def _columns(resource: ResourceType) -> list[Obj]:
    columns, _ = PRINTERS.get(resource.plural, ([NAME, AGE], _generic))
    return [{"name": name, "type": kind, "format": "name" if name == "Name" and i == 0 else "",
             "description": NAME_DOC if name == "Name" else AGE_DOC if name == "Age" else f"The {name.lower()} of the object.",
             "priority": priority} for i, (name, kind, priority) in enumerate(columns)]


def _row(resource: ResourceType, obj: Obj, include: str) -> Obj:
    _, printer = PRINTERS.get(resource.plural, ([], _generic))
    row: Obj = {"cells": printer(obj)}
    if include == "Object":
        row["object"] = {"kind": resource.kind, "apiVersion": resource.api_version, **obj}
    elif include != "None":
        row["object"] = {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": _meta(obj)}
    return row


def table(resource: ResourceType, objects: list[Obj], *, version: str, include: str = "Metadata",
          metadata: Obj | None = None, headers: bool = True) -> Obj:
    """A ``Table`` of ``objects``; ``headers=False`` leaves the column definitions out (watch events after the first)."""
    return {"kind": "Table", "apiVersion": version, "metadata": metadata or {},
            "columnDefinitions": _columns(resource) if headers else [],
            "rows": [_row(resource, obj, include) for obj in objects]}
