"""Access reviews (``authorization.k8s.io/v1``), answered from the cluster's RBAC: created, never stored.

- ``SelfSubjectAccessReview``: may I do this? (``kubectl auth can-i``; anyone authenticated may ask);
- ``SelfSubjectRulesReview``: what may I do in this namespace? (``kubectl auth can-i --list``);
- ``SubjectAccessReview`` / ``LocalSubjectAccessReview``: may that user (and groups) do this? (needs
  ``create`` on the review's resource, as a real cluster's RBAC asks).
"""

from __future__ import annotations

from typing import Any

from sandbox import errors
from sandbox.cluster import SandboxCluster
from sandbox.resources import ResourceType

Obj = dict[str, Any]
GROUP = "authorization.k8s.io"


def _invalid(resource: ResourceType, field: str, message: str) -> errors.ApiError:
    return errors.invalid(resource.kind, GROUP, "", [(field, message)])


def _decide(cluster: SandboxCluster, resource: ResourceType, spec: Obj, subject: str, groups: list[str] | None,
            namespace: str) -> Obj:
    attributes, non_resource = spec.get("resourceAttributes"), spec.get("nonResourceAttributes")
    if (attributes is None) == (non_resource is None):
        raise _invalid(resource, "spec.resourceAttributes",
                       "Invalid value: \"null\": exactly one of nonResourceAttributes or resourceAttributes must be specified")
    if non_resource is not None:
        if not isinstance(non_resource, dict):
            raise errors.bad_request("spec.nonResourceAttributes must be an object")
        verb, path = str(non_resource.get("verb") or ""), str(non_resource.get("path") or "")
        allowed = cluster.may(subject, verb, path=path or "/", groups=groups)
        return {"allowed": allowed, **({"reason": "allowed by the sandbox's RBAC"} if allowed else {})}
    if not isinstance(attributes, dict):
        raise errors.bad_request("spec.resourceAttributes must be an object")
    target = str(attributes.get("namespace") or "")
    if resource.namespaced and target != namespace:
        raise _invalid(resource, "spec.resourceAttributes.namespace",
                       f'Invalid value: "{target}": must match metadata.namespace')
    plural = str(attributes.get("resource") or "")
    if attributes.get("subresource"):
        plural = f"{plural}/{attributes['subresource']}"
    allowed = cluster.may(subject, str(attributes.get("verb") or ""), plural, str(attributes.get("group") or ""), target,
                          str(attributes.get("name") or ""), groups=groups)
    return {"allowed": allowed, **({"reason": "allowed by the sandbox's RBAC"} if allowed else {})}


def create(cluster: SandboxCluster, user: str, resource: ResourceType, body: Any, namespace: str,
           user_groups: tuple[str, ...] | None = None) -> Obj:
    """The review ``body`` with its ``status`` filled in (``user_groups``: the asker's, when the request named them)."""
    if not isinstance(body, dict) or not isinstance(body.get("spec") or {}, dict):
        raise errors.bad_request(f'{resource.kind} in version "v1" cannot be handled as a {resource.kind}: the body must be an object '
                                 "with a spec object")
    spec = body.get("spec") or {}
    if not cluster.may(user, "create", resource.plural, GROUP, namespace, groups=user_groups):
        raise errors.forbidden(user, "create", resource.plural, GROUP, namespace)
    groups: list[str] | None
    if resource.plural in ("subjectaccessreviews", "localsubjectaccessreviews"):
        subject, groups = str(spec.get("user") or ""), [str(g) for g in spec.get("groups") or []]
        if not subject and not groups:
            raise _invalid(resource, "spec.user", 'Invalid value: "": at least one of user or group must be specified')
    else:
        subject, groups = user, list(user_groups) if user_groups is not None else None
    if resource.plural == "selfsubjectrulesreviews":
        target = str(spec.get("namespace") or "")
        resource_rules, path_rules = cluster.rules(subject, target, groups)
        status: Obj = {"resourceRules": resource_rules, "nonResourceRules": path_rules, "incomplete": False}
    else:
        status = _decide(cluster, resource, spec, subject, groups, namespace)
    return {"kind": resource.kind, "apiVersion": resource.api_version,
            "metadata": {"creationTimestamp": None, **({"namespace": namespace} if resource.namespaced else {})},
            "spec": spec, "status": status}
