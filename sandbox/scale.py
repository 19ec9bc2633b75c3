"""The ``scale`` subresource of Deployments, ReplicaSets and StatefulSets: an ``autoscaling/v1`` Scale.

GET answers the Scale (``spec.replicas``; ``status.replicas`` and the selector as a string);
PUT and PATCH change the Scale and so the workload's ``spec.replicas``, and answer the new
Scale, as kube-apiserver does (``kubectl scale`` decodes the answer as a Scale). A Scale
naming another resourceVersion than the object's is a 409 Conflict.
"""

from __future__ import annotations

from typing import Any

from sandbox import errors

Obj = dict[str, Any]


def selector_text(selector: Any) -> str:
    """A label selector object as the text ``status.selector`` carries (``app=web,tier in (a,b)``)."""
    if not isinstance(selector, dict):
        return ""
    parts = [f"{k}={v}" for k, v in sorted((selector.get("matchLabels") or {}).items())]
    for expression in selector.get("matchExpressions") or []:
        if not isinstance(expression, dict):
            continue
        key, operator, values = expression.get("key", ""), expression.get("operator"), sorted(expression.get("values") or [])
        if operator in ("In", "NotIn"):
            parts.append(f"{key} {operator.lower()} ({','.join(values)})")
        elif operator in ("Exists", "DoesNotExist"):
            parts.append(key if operator == "Exists" else f"!{key}")
    return ",".join(sorted(parts))


def of(obj: Obj) -> Obj:
    """The Scale of a stored workload."""
    meta = obj.get("metadata") or {}
    return {"kind": "Scale", "apiVersion": "autoscaling/v1",
            "metadata": {k: meta[k] for k in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp") if k in meta},
            "spec": {"replicas": (obj.get("spec") or {}).get("replicas", 1)},
            "status": {"replicas": (obj.get("status") or {}).get("replicas", 0),
                       "selector": selector_text((obj.get("spec") or {}).get("selector"))}}


def applied(current: Obj, scale: Any) -> Obj:
    """``current`` (a copy to write) with the replicas of ``scale`` (the Scale a client sent, or a patched one)."""
    if not isinstance(scale, dict) or not isinstance(scale.get("spec") or {}, dict):
        raise errors.bad_request("the body of the request must be a Scale object")
    meta = given if isinstance(given := scale.get("metadata"), dict) else {}
    name = current["metadata"]["name"]
    if meta.get("name", name) != name:
        raise errors.bad_request("the name of the object does not match the name on the URL")
    replicas = (scale.get("spec") or {}).get("replicas", 0)  # omitted in JSON when 0
    if isinstance(replicas, bool) or not isinstance(replicas, int) or replicas < 0:
        raise errors.invalid("Scale", "autoscaling", name, [("spec.replicas", f'Invalid value: {replicas!r}: must be greater '
                                                                                "than or equal to 0")])
    current.setdefault("spec", {})["replicas"] = replicas
    if meta.get("resourceVersion"):
        current["metadata"]["resourceVersion"] = meta["resourceVersion"]  # a stale one is a 409, as for the object
    return current
