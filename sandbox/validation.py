"""What kube-apiserver refuses before storing an object: 400 for a body of the wrong shape
(the JSON decoder's complaint), 422 Invalid with causes for values its validation rejects.

The simulation behind the API (controllers, scheduler, kubelets) may then rely on the
shapes checked here; anything it reads beyond them it must read as optional.
"""

from __future__ import annotations

import re
from typing import Any

from sandbox import errors
from sandbox.matching import selector_object
from sandbox.resources import ResourceType

Obj = dict[str, Any]

DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
LABEL_VALUE = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")
QUALIFIED_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
QUANTITY = re.compile(r"^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$")
LABEL_MSG = (
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and "
    "end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is "
    "'[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
)
SUBDOMAIN_MSG = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must "
    "start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is "
    "'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
)
LABEL_VALUE_MSG = ("a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must "
                   "start and end with an alphanumeric character")
QUALIFIED_MSG = ("name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an "
                 "alphanumeric character")
QUANTITY_MSG = "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"
LABEL_NAMED = {"namespaces", "services"}
TEMPLATED = ("deployments", "replicasets", "daemonsets", "statefulsets")
MAX_ANNOTATIONS_BYTES = 256 * 1024
# A node annotated with a version is replaced by its kubelet at that version (``kubelet.py``).
UPGRADE_ANNOTATION = "sandbox.pksweb.io/upgrade-to"


def _undecodable(resource: ResourceType, where: str, expected: str, value: Any) -> errors.ApiError:
    got = {dict: "object", list: "array", str: "string", bool: "bool", type(None): "null"}.get(type(value), "number")
    return errors.bad_request(f'{resource.kind} in version "{resource.version}" cannot be handled as a {resource.kind}: '
                              f"json: cannot unmarshal {got} into Go struct field {where} of type {expected}")


def check_shape(resource: ResourceType, obj: Any) -> None:
    """400 for what the real server could not even decode into its types."""
    if not isinstance(obj, dict):
        raise _undecodable(resource, resource.kind, f"v1.{resource.kind}", obj)
    meta = obj.get("metadata")
    if meta is not None and not isinstance(meta, dict):
        raise _undecodable(resource, f"{resource.kind}.metadata", "v1.ObjectMeta", meta)
    for key in ("name", "generateName", "namespace", "resourceVersion", "uid"):
        value = (meta or {}).get(key)
        if value is not None and not isinstance(value, str):
            raise _undecodable(resource, f"ObjectMeta.metadata.{key}", "string", value)
    for key in ("labels", "annotations"):
        value = (meta or {}).get(key)
        if value is None:
            continue
        if not isinstance(value, dict):
            raise _undecodable(resource, f"ObjectMeta.metadata.{key}", "map[string]string", value)
        for item in value.values():
            if not isinstance(item, str):
                raise _undecodable(resource, f"ObjectMeta.metadata.{key}", "string", item)
    for key in ("spec", "status"):
        value = obj.get(key)
        if value is not None and not isinstance(value, dict):
            raise _undecodable(resource, f"{resource.kind}.{key}", f"v1.{resource.kind}{key.title()}", value)


def _qualified_key(key: str) -> str | None:
    """Why ``key`` is no valid label or annotation key, or None."""
    prefix, _, name = key.rpartition("/")
    if "/" in prefix:
        return "a qualified name must consist of an optional DNS subdomain prefix and a name, separated by '/'"
    if key.count("/") and not prefix:
        return "prefix part must be non-empty"
    if prefix and (len(prefix) > 253 or not DNS1123_SUBDOMAIN.match(prefix)):
        return f"prefix part {SUBDOMAIN_MSG}"
    if not name:
        return "name part must be non-empty"
    if len(name) > 63:
        return "name part must be no more than 63 characters"
    if not QUALIFIED_NAME.match(name):
        return QUALIFIED_MSG
    return None


def _name(resource: ResourceType, name: str) -> list[tuple[str, str]]:
    if not name:
        return [("metadata.name", "Required value: name or generateName is required")]
    if resource.plural in LABEL_NAMED:
        if len(name) > 63:
            return [("metadata.name", f'Invalid value: "{name}": must be no more than 63 characters')]
        if not DNS1123_LABEL.match(name):
            return [("metadata.name", f'Invalid value: "{name}": {LABEL_MSG}')]
    elif resource.group == "rbac.authorization.k8s.io":
        if "/" in name or "%" in name or name in (".", ".."):
            return [("metadata.name", f'Invalid value: "{name}": may not contain \'/\' or \'%\'')]
    elif len(name) > 253 or not DNS1123_SUBDOMAIN.match(name):
        return [("metadata.name", f'Invalid value: "{name}": {SUBDOMAIN_MSG}')]
    return []


def _metadata(meta: Obj) -> list[tuple[str, str]]:
    causes = []
    for key, value in (meta.get("labels") or {}).items():
        why = _qualified_key(str(key))
        if why:
            causes.append(("metadata.labels", f'Invalid value: "{key}": {why}'))
        if len(value) > 63 or (value and not LABEL_VALUE.match(value)):
            causes.append(("metadata.labels", f'Invalid value: "{value}": {LABEL_VALUE_MSG}'))
    annotations = meta.get("annotations") or {}
    for key in annotations:
        why = _qualified_key(str(key))
        if why:
            causes.append(("metadata.annotations", f'Invalid value: "{key}": {why}'))
    if sum(len(k) + len(v) for k, v in annotations.items()) > MAX_ANNOTATIONS_BYTES:
        causes.append(("metadata.annotations", f"Too long: must have at most {MAX_ANNOTATIONS_BYTES} bytes"))
    return causes


def _containers(spec: Any, where: str) -> list[tuple[str, str]]:
    containers = spec.get("containers") if isinstance(spec, dict) else None
    if not containers:
        return [(f"{where}.containers", "Required value")]
    if not isinstance(containers, list):
        return [(f"{where}.containers", "Invalid value: must be a list")]
    causes, seen = [], set()
    for i, container in enumerate(containers):
        at = f"{where}.containers[{i}]"
        if not isinstance(container, dict):
            causes.append((at, "Invalid value: must be an object"))
            continue
        name = container.get("name")
        if not name:
            causes.append((f"{at}.name", "Required value"))
        elif not isinstance(name, str) or len(name) > 63 or not DNS1123_LABEL.match(name):
            causes.append((f"{at}.name", f'Invalid value: "{name}": {LABEL_MSG}'))
        elif name in seen:
            causes.append((f"{at}.name", f'Duplicate value: "{name}"'))
        seen.add(name)
        if not container.get("image") or not isinstance(container.get("image"), str):
            causes.append((f"{at}.image", "Required value"))
    return causes


def _quantities(values: Any, where: str) -> list[tuple[str, str]]:
    if not isinstance(values, dict):
        return []
    return [(f"{where}[{name}]", f'Invalid value: "{q}": {QUANTITY_MSG}') for name, q in values.items() if not QUANTITY.match(str(q))]


def _selector(selector: Any, where: str) -> list[tuple[str, str]]:
    """A LabelSelector's shape: matchLabels valid labels, matchExpressions with a key and a known operator."""
    if selector is None:
        return []
    if not isinstance(selector, dict):
        return [(where, "Invalid value: must be an object")]
    causes = [(f"{where}.matchLabels", f'Invalid value: "{k}": {why}')
              for k in (selector.get("matchLabels") or {}) if (why := _qualified_key(str(k)))]
    for i, expr in enumerate(selector.get("matchExpressions") or []):
        at = f"{where}.matchExpressions[{i}]"
        if not isinstance(expr, dict) or not expr.get("key"):
            causes.append((f"{at}.key", "Required value"))
            continue
        operator, values = expr.get("operator"), expr.get("values") or []
        if operator not in ("In", "NotIn", "Exists", "DoesNotExist"):
            causes.append((f"{at}.operator", f'Invalid value: "{operator}": not a valid selector operator'))
        elif operator in ("In", "NotIn") and not values:
            causes.append((f"{at}.values", "Required value: must be specified when `operator` is 'In' or 'NotIn'"))
        elif operator in ("Exists", "DoesNotExist") and values:
            causes.append((f"{at}.values", "Forbidden: may not be specified when `operator` is 'Exists' or 'DoesNotExist'"))
    return causes


def _int_or_percent(value: Any, where: str) -> list[tuple[str, str]]:
    if value is None or (isinstance(value, int) and not isinstance(value, bool) and value >= 0):
        return []
    if isinstance(value, str) and value.endswith("%") and value[:-1].isascii() and value[:-1].isdigit():
        return []
    return [(where, f'Invalid value: "{value}": a valid percent string must be a numeric string followed by an ending \'%\' '
                    "or a non-negative integer")]


def _rbac(plural: str, obj: Obj) -> list[tuple[str, str]]:
    causes = []
    if plural in ("roles", "clusterroles"):
        for i, rule in enumerate(obj.get("rules") or []):
            if not isinstance(rule, dict) or not rule.get("verbs"):
                causes.append((f"rules[{i}].verbs", "Required value: verbs must contain at least one value"))
    else:
        for i, subject in enumerate(obj.get("subjects") or []):
            if not isinstance(subject, dict) or not subject.get("name"):
                causes.append((f"subjects[{i}].name", "Required value"))
            elif subject.get("kind") not in ("User", "Group", "ServiceAccount"):
                causes.append((f"subjects[{i}].kind", f'Unsupported value: "{subject.get("kind", "")}": supported values: '
                                                       '"Group", "ServiceAccount", "User"'))
    return causes


def upgrade_version(text: object) -> str | None:
    """The version a node upgrade asks for (``1.31.2`` or ``v1.31.2`` both give ``1.31.2``); None when it is not one."""
    version = str(text).lstrip("v")
    parts = version.split(".")
    return version if version and len(parts) == 3 and all(p.isascii() and p.isdigit() for p in parts) else None


def validate(resource: ResourceType, obj: Obj) -> None:
    """422 Invalid, naming every field at fault, for an object the real server would not store."""
    meta = obj.get("metadata") or {}
    name = meta.get("name", "")
    causes = _name(resource, name) + _metadata(meta)
    spec = obj.get("spec") or {}
    plural = resource.plural
    if plural == "pods":
        causes += _containers(spec, "spec")
    if plural in TEMPLATED:
        selector = spec.get("selector")
        if not isinstance(selector, dict) or not (selector.get("matchLabels") or selector.get("matchExpressions")):
            causes.append(("spec.selector", "Required value" if not selector else "Invalid value: empty selector is invalid for "
                                                                                "deployment"))
        else:
            template_labels = ((spec.get("template") or {}).get("metadata") or {}).get("labels") or {}
            try:
                matches = selector_object(selector)(template_labels)
            except (KeyError, TypeError, AttributeError):
                matches = False
            if not matches:
                causes.append(("spec.template.metadata.labels",
                               f"Invalid value: {template_labels}: `selector` does not match template `labels`"))
        causes += _selector(selector, "spec.selector")
        causes += _containers((spec.get("template") or {}).get("spec"), "spec.template.spec")
        replicas = spec.get("replicas")
        if replicas is not None and (isinstance(replicas, bool) or not isinstance(replicas, int) or replicas < 0):
            causes.append(("spec.replicas", f"Invalid value: {replicas}: must be greater than or equal to 0"))
    if plural == "services" and spec.get("type") != "ExternalName" and spec.get("clusterIP") != "None" and not spec.get("ports"):
        causes.append(("spec.ports", "Required value"))
    if plural == "poddisruptionbudgets":
        causes += _selector(spec.get("selector"), "spec.selector")
        causes += _int_or_percent(spec.get("minAvailable"), "spec.minAvailable")
        causes += _int_or_percent(spec.get("maxUnavailable"), "spec.maxUnavailable")
        if spec.get("minAvailable") is not None and spec.get("maxUnavailable") is not None:
            causes.append(("spec", "Invalid value: minAvailable and maxUnavailable cannot be both set"))
    if plural == "networkpolicies":
        causes += _selector(spec.get("podSelector"), "spec.podSelector")
        for kind in spec.get("policyTypes") or []:
            if kind not in ("Ingress", "Egress"):
                causes.append(("spec.policyTypes", f'Unsupported value: "{kind}": supported values: "Egress", "Ingress"'))
    if resource.group == "rbac.authorization.k8s.io":
        causes += _rbac(plural, obj)
    if plural in ("rolebindings", "clusterrolebindings"):
        ref = given if isinstance(given := obj.get("roleRef"), dict) else {}
        if not ref.get("name"):
            causes.append(("roleRef.name", "Required value"))
        if ref.get("kind") not in ("Role", "ClusterRole") or (plural == "clusterrolebindings" and ref.get("kind") != "ClusterRole"):
            causes.append(("roleRef.kind", f'Unsupported value: "{ref.get("kind", "")}": supported values: "ClusterRole"'
                                           + ("" if plural == "clusterrolebindings" else ', "Role"')))
    if plural == "events":
        involved = given if isinstance(given := obj.get("involvedObject"), dict) else {}
        namespace = meta.get("namespace", "")
        if involved.get("namespace") and involved["namespace"] != namespace:
            causes.append(("involvedObject.namespace", f'Invalid value: "{involved["namespace"]}": does not match event.namespace'))
    if plural == "nodes":
        wanted = (meta.get("annotations") or {}).get(UPGRADE_ANNOTATION)
        if wanted is not None and upgrade_version(wanted) is None:
            causes.append((f"metadata.annotations[{UPGRADE_ANNOTATION}]", f'Invalid value: "{wanted}": must be a version like 1.31.2'))
    if plural == "resourcequotas":
        causes += _quantities(spec.get("hard"), "spec.hard")
    if plural == "limitranges":
        for i, limit in enumerate(spec.get("limits") or []):
            for section in ("default", "defaultRequest", "max", "min"):
                causes += _quantities((limit or {}).get(section) if isinstance(limit, dict) else None, f"spec.limits[{i}].{section}")
    if causes:
        raise errors.invalid(resource.kind, resource.group, name or meta.get("generateName", ""), causes)


def check_pod_update(old: Obj, new: Obj) -> None:
    """Pods are mostly immutable: only images, tolerations (added) and a few fields may change."""
    old_spec, new_spec = dict(old.get("spec") or {}), dict(new.get("spec") or {})
    for spec in (old_spec, new_spec):
        spec.pop("activeDeadlineSeconds", None)
        spec.pop("tolerations", None)
        spec["containers"] = [{k: v for k, v in c.items() if k != "image"} for c in spec.get("containers") or []]
    if old_spec != new_spec:
        raise errors.invalid("Pod", "", old["metadata"]["name"], [(
            "spec", "Forbidden: pod updates may not change fields other than `spec.containers[*].image`,"
            "`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations)"
            ",`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)",
        )])
