"""Who may do what in a sandbox cluster, and what its API server admits: authentication by bearer token, the
RBAC authorizer, Pod Security, the PodNodeSelector and PodTolerationRestriction admission plugins, and what a
ResourceQuota counts as used.

Authentication: the cluster's admin token (``ADMIN_USER``, allowed everything), its read-only token
(``VIEWER_USER``: get, list, watch), a token RBAC allows nothing (``DENIED_USER``), and tokens made by
``add_user`` for a user and groups, whom RBAC objects in the cluster decide for.

RBAC: a request is allowed when a ClusterRoleBinding, or a RoleBinding in the request's
namespace, names the user (``User``), one of its groups (``Group``) or, for the user
``system:serviceaccount:<ns>:<name>``, that ``ServiceAccount`` (a subject without a
namespace in a RoleBinding means the binding's namespace), and its role has a rule
matching the API group, the resource (``pods/eviction`` for subresources), the verb and,
when the rule lists them, the object's name. For the ``namespaces`` resource the
namespace of a request is the namespace named, so a RoleBinding can grant reading one's
own namespace. The groups are exactly those given: ``user_groups`` makes an authenticated
user's (``system:authenticated``, and a service account's ``system:serviceaccounts`` and
``system:serviceaccounts:<ns>``), as the authenticator and impersonation do; a
SubjectAccessReview asks about the groups it names and no others.

Pod Security: the namespace's ``pod-security.kubernetes.io/enforce`` level (baseline or
restricted) refuses pods that break it, with the API server's wording.

Pod placement (``admit_pod``): a namespace's ``scheduler.alpha.kubernetes.io/node-selector`` annotation
is merged into its pods' node selectors (a pod asking otherwise is refused) and its
``scheduler.alpha.kubernetes.io/defaultTolerations`` added to their tolerations.

Quota: ``quota_used`` is what the quota controller reports as used in a namespace (pods, CPU and
memory requests and limits, load balancers); nothing is refused for going over it.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable, Iterable

from sandbox import errors
from sandbox.resources import (
    CLUSTERROLEBINDINGS,
    CLUSTERROLES,
    NAMESPACES,
    PODS,
    ROLEBINDINGS,
    ROLES,
    SERVICES,
    ResourceType,
)
from sandbox.store import Obj, Store

ADMIN_USER = "system:serviceaccount:kube-system:pksweb-admin"
VIEWER_USER = "system:serviceaccount:kube-system:pksweb-viewer"
DENIED_USER = "system:serviceaccount:kube-system:pksweb-denied"
SELF_REVIEWS = frozenset({"selfsubjectaccessreviews", "selfsubjectrulesreviews"})
NODE_SELECTOR_ANNOTATION = "scheduler.alpha.kubernetes.io/node-selector"
DEFAULT_TOLERATIONS_ANNOTATION = "scheduler.alpha.kubernetes.io/defaultTolerations"
QUANTITY_UNITS = {"": 1, "m": 1e-3, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40}
ENFORCE_LABEL = "pod-security.kubernetes.io/enforce"
BASELINE_CAPABILITIES = frozenset({"AUDIT_WRITE", "CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "MKNOD", "NET_BIND_SERVICE",
                                   "SETFCAP", "SETGID", "SETPCAP", "SETUID", "SYS_CHROOT"})


def _rule_allows(rule: Obj, verb: str, resource: str, group: str, name: str) -> bool:
    groups, resources, verbs = rule.get("apiGroups") or [], rule.get("resources") or [], rule.get("verbs") or []
    names = rule.get("resourceNames") or []
    return (("*" in groups or group in groups) and ("*" in resources or resource in resources)
            and ("*" in verbs or verb in verbs) and (not names or name in names))


SERVICE_ACCOUNT_PREFIX = "system:serviceaccount:"
AUTHENTICATED = "system:authenticated"
UNAUTHENTICATED = "system:unauthenticated"
ANONYMOUS = "system:anonymous"


def service_account_of(user: str) -> tuple[str, str] | None:
    """(namespace, name) when ``user`` is a service account's user name, as the API server splits it."""
    if not user.startswith(SERVICE_ACCOUNT_PREFIX):
        return None
    namespace, sep, name = user[len(SERVICE_ACCOUNT_PREFIX):].partition(":")
    return (namespace, name) if sep and namespace and name and ":" not in name else None


def user_groups(user: str, groups: Iterable[str] = (), *, named: bool = False) -> tuple[str, ...]:
    """The groups an authenticated ``user`` acts with.

    ``groups`` are those the authenticator (a token's) or ``Impersonate-Group`` headers gave
    (``named``: the request named them). A service account gets ``system:serviceaccounts`` and
    ``system:serviceaccounts:<ns>`` unless the request named its groups; everyone but
    ``system:anonymous`` gets ``system:authenticated`` unless ``system:(un)authenticated`` is named.
    """
    found = list(dict.fromkeys(groups))
    account = service_account_of(user)
    if account is not None and not named:
        found += [g for g in ("system:serviceaccounts", f"system:serviceaccounts:{account[0]}") if g not in found]
    if user == ANONYMOUS:
        return (*found, *([UNAUTHENTICATED] if UNAUTHENTICATED not in found else []))
    if AUTHENTICATED not in found and UNAUTHENTICATED not in found:
        found.append(AUTHENTICATED)
    return tuple(found)


def _names_subject(subjects: Iterable[Obj] | None, user: str, groups: set[str], binding_namespace: str) -> bool:
    account = service_account_of(user)
    for subject in subjects or []:
        if not isinstance(subject, dict):
            continue
        kind, name = subject.get("kind"), subject.get("name")
        if kind == "User" and name == user:
            return True
        if kind == "Group" and name in groups:
            return True
        if kind == "ServiceAccount" and account is not None:
            # A RoleBinding's subject without a namespace is a service account of the binding's namespace.
            if account == (subject.get("namespace") or binding_namespace, name):
                return True
    return False


def rbac_allows(*, user: str, groups: Iterable[str], verb: str, resource: str, group: str, namespace: str, name: str,
                bindings: Iterable[Obj], role_rules: Callable[[Obj, str], list[Obj]]) -> bool:
    """Whether any binding (ClusterRoleBindings and the namespace's RoleBindings) grants the request.

    ``role_rules(roleRef, binding_namespace)`` returns the rules of the role a binding refers to.
    """
    member_of = set(groups)
    for binding in bindings:
        binding_namespace = (binding.get("metadata") or {}).get("namespace", "")
        if binding_namespace and binding_namespace != namespace:
            continue
        if not _names_subject(binding.get("subjects"), user, member_of, binding_namespace):
            continue
        if any(_rule_allows(rule, verb, resource, group, name) for rule in role_rules(binding.get("roleRef") or {}, binding_namespace)):
            return True
    return False


def _path_matches(pattern: str, path: str) -> bool:
    return pattern == "*" or pattern == path or (pattern.endswith("*") and path.startswith(pattern[:-1]))


def rbac_allows_path(*, user: str, groups: Iterable[str], verb: str, path: str, bindings: Iterable[Obj],
                     role_rules: Callable[[Obj, str], list[Obj]]) -> bool:
    """Whether a ClusterRoleBinding grants ``verb`` on the non-resource URL ``path`` (``/healthz``, ``/metrics``)."""
    member_of = set(groups)
    for binding in bindings:
        if (binding.get("metadata") or {}).get("namespace") or not _names_subject(binding.get("subjects"), user, member_of, ""):
            continue
        for rule in role_rules(binding.get("roleRef") or {}, ""):
            verbs = rule.get("verbs") or []
            if ("*" in verbs or verb in verbs) and any(_path_matches(p, path) for p in rule.get("nonResourceURLs") or []):
                return True
    return False


def rules_of(*, user: str, groups: Iterable[str], namespace: str, bindings: Iterable[Obj],
             role_rules: Callable[[Obj, str], list[Obj]]) -> list[Obj]:
    """Every rule the bindings (ClusterRoleBindings and ``namespace``'s RoleBindings) give the user."""
    member_of = set(groups)
    found = []
    for binding in bindings:
        binding_namespace = (binding.get("metadata") or {}).get("namespace", "")
        if (not binding_namespace or binding_namespace == namespace) and _names_subject(binding.get("subjects"), user, member_of,
                                                                                          binding_namespace):
            found += [rule for rule in role_rules(binding.get("roleRef") or {}, binding_namespace) if isinstance(rule, dict)]
    return found


def _containers(spec: Obj) -> list[Obj]:
    return [*(spec.get("initContainers") or []), *(spec.get("containers") or []), *(spec.get("ephemeralContainers") or [])]


def _baseline(spec: Obj) -> list[str]:
    found = []
    for field in ("hostNetwork", "hostPID", "hostIPC"):
        if spec.get(field):
            found.append(f"host namespaces ({field}=true)")
    for volume in spec.get("volumes") or []:
        if "hostPath" in volume:
            found.append(f'hostPath volumes (volume "{volume.get("name", "")}")')
    for container in _containers(spec):
        cname = container.get("name", "")
        context = container.get("securityContext") or {}
        if context.get("privileged"):
            found.append(f'privileged (container "{cname}" must not set securityContext.privileged=true)')
        added = [c for c in ((context.get("capabilities") or {}).get("add") or []) if c not in BASELINE_CAPABILITIES]
        if added:
            shown = ", ".join(f'"{c}"' for c in added)
            found.append(f'non-default capabilities (container "{cname}" must not include {shown} in securityContext.capabilities.add)')
        ports = [p.get("hostPort") for p in container.get("ports") or [] if p.get("hostPort")]
        if ports:
            found.append(f'hostPort (container "{cname}" uses hostPort {", ".join(str(p) for p in ports)})')
    return found


def _restricted(spec: Obj) -> list[str]:
    found = []
    pod_context = spec.get("securityContext") or {}
    for container in _containers(spec):
        cname = container.get("name", "")
        context = container.get("securityContext") or {}
        if context.get("allowPrivilegeEscalation") is not False:
            found.append(f'allowPrivilegeEscalation != false (container "{cname}" must set '
                         "securityContext.allowPrivilegeEscalation=false)")
        if "ALL" not in ((context.get("capabilities") or {}).get("drop") or []):
            found.append(f'unrestricted capabilities (container "{cname}" must set securityContext.capabilities.drop=["ALL"])')
        if not context.get("runAsNonRoot", pod_context.get("runAsNonRoot")):
            found.append(f'runAsNonRoot != true (pod or container "{cname}" must set securityContext.runAsNonRoot=true)')
        seccomp = (context.get("seccompProfile") or pod_context.get("seccompProfile") or {}).get("type")
        if seccomp not in ("RuntimeDefault", "Localhost"):
            found.append(f'seccompProfile (pod or container "{cname}" must set securityContext.seccompProfile.type to '
                         '"RuntimeDefault" or "Localhost")')
    return found


def pod_security_violations(namespace: Obj | None, pod: Obj) -> tuple[str, list[str]]:
    """(the enforced level, what the pod breaks of it); nothing for ``privileged`` or no label."""
    level = (((namespace or {}).get("metadata") or {}).get("labels") or {}).get(ENFORCE_LABEL, "privileged")
    spec = pod.get("spec") or {}
    if level == "baseline":
        return level, _baseline(spec)
    if level == "restricted":
        return level, _baseline(spec) + _restricted(spec)
    return level, []


def _quantity(value: object) -> float:
    match = re.match(r"^([0-9.]+)([a-zA-Z]*)$", str(value).strip())
    return float(match.group(1)) * QUANTITY_UNITS.get(match.group(2), 1) if match else 0.0


class Admission:
    """Authentication, authorization and admission for one cluster, reading its RBAC objects and namespaces from ``store``."""

    def __init__(self, store: Store, *, token: str, readonly_token: str, denied_token: str) -> None:
        self.store = store
        self.tokens = {token: ADMIN_USER, readonly_token: VIEWER_USER, denied_token: DENIED_USER}
        # Other users (``add_user``): token -> (user name, groups); what they may do is decided by RBAC.
        self.users: dict[str, tuple[str, tuple[str, ...]]] = {}

    # ---- identity -------------------------------------------------------------------

    def user_for(self, token: str | None) -> str | None:
        """The user a bearer token authenticates, or None."""
        if token and token in self.tokens:
            return self.tokens[token]
        if token and token in self.users:
            return self.users[token][0]
        return None

    def add_user(self, name: str, groups: list[str] | tuple[str, ...] = ()) -> str:
        """A bearer token for ``name`` in ``groups``; what it may do is what RBAC objects in the cluster grant."""
        token = f"{self.store.name}-user-{uuid.uuid4().hex}"
        self.users[token] = (name, tuple(groups))
        return token

    def _token_groups(self, user: str) -> tuple[str, ...]:
        """The groups ``add_user`` gave ``user``'s token (none for a user it does not know)."""
        return next((g for u, g in self.users.values() if u == user), ())

    # ---- RBAC -----------------------------------------------------------------------

    def may(self, user: str, verb: str, resource: str = "", group: str = "", namespace: str = "", name: str = "", *,
            groups: tuple[str, ...] | list[str] | None = None, path: str = "") -> bool:
        """Whether RBAC lets ``user`` do ``verb`` on ``resource`` (``pods/eviction`` for a subresource) or, given
        ``path``, on that non-resource URL. ``groups``: exactly the user's groups (an impersonated user's, or those
        a SubjectAccessReview names); None: those of the user's token (``add_user``) plus what every authenticated
        user (and service account) has (``user_groups``)."""
        if user == ADMIN_USER:
            return True
        if user in (VIEWER_USER, DENIED_USER) and verb == "create" and group == "authorization.k8s.io" and resource in SELF_REVIEWS:
            return True  # system:basic-user
        if user == DENIED_USER:
            return False
        if user == VIEWER_USER:
            return verb in ("get", "list", "watch")
        if groups is None:
            groups = user_groups(user, self._token_groups(user))
        with self.store.lock:
            bindings = self._bindings(namespace)
            if path:
                return rbac_allows_path(user=user, groups=groups, verb=verb, path=path, bindings=bindings,
                                        role_rules=self._role_rules)
            return rbac_allows(user=user, groups=groups, verb=verb, resource=resource, group=group, namespace=namespace,
                               name=name, bindings=bindings, role_rules=self._role_rules)

    def rules(self, user: str, namespace: str, groups: tuple[str, ...] | list[str] | None = None) -> tuple[list[Obj], list[Obj]]:
        """(resource rules, non-resource rules) ``user`` has in ``namespace``: a SelfSubjectRulesReview's answer."""
        basic: list[Obj] = [{"verbs": ["create"], "apiGroups": ["authorization.k8s.io"], "resources": sorted(SELF_REVIEWS)}]
        if user == DENIED_USER:
            return basic, []
        if user == ADMIN_USER:
            return [{"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}, *basic], [{"verbs": ["*"], "nonResourceURLs": ["*"]}]
        if user == VIEWER_USER:
            return [{"verbs": ["get", "list", "watch"], "apiGroups": ["*"], "resources": ["*"]}, *basic], [
                {"verbs": ["get"], "nonResourceURLs": ["*"]}]
        if groups is None:
            groups = user_groups(user, self._token_groups(user))
        with self.store.lock:
            found = rules_of(user=user, groups=groups, namespace=namespace, bindings=self._bindings(namespace),
                             role_rules=self._role_rules)
        resource_rules: list[Obj] = []
        path_rules: list[Obj] = []
        for rule in found:  # each once, as the rules review lists them
            shown = {k: rule[k] for k in ("verbs", "apiGroups", "resources", "resourceNames") if rule.get(k)}
            if rule.get("resources") and shown not in resource_rules:
                resource_rules.append(shown)
            shown = {k: rule[k] for k in ("verbs", "nonResourceURLs") if rule.get(k)}
            if rule.get("nonResourceURLs") and shown not in path_rules:
                path_rules.append(shown)
        return resource_rules, path_rules

    def _bindings(self, namespace: str) -> list[Obj]:
        """The ClusterRoleBindings and ``namespace``'s RoleBindings (the caller holds the lock)."""
        objects = self.store.objects
        return [*objects[CLUSTERROLEBINDINGS].values(),
                *(b for (ns, _), b in objects[ROLEBINDINGS].items() if namespace and ns == namespace)]

    def _role_rules(self, ref: Obj, namespace: str) -> list[Obj]:
        if ref.get("kind") == "ClusterRole":
            role = self.store.objects[CLUSTERROLES].get(("", ref.get("name", "")))
        else:
            role = self.store.objects[ROLES].get((namespace, ref.get("name", "")))
        return list((role or {}).get("rules") or [])

    # ---- admission ------------------------------------------------------------------

    def admit_pod_security(self, namespace: str, pod: Obj) -> None:
        """Pod Security admission for a pod sent to the API: refuse what the namespace's level forbids."""
        with self.store.lock:
            ns = self.store.objects[NAMESPACES].get(("", namespace))
        level, violations = pod_security_violations(ns, pod)
        if violations:
            name = (pod.get("metadata") or {}).get("name", "")
            raise errors.ApiError(403, "Forbidden", f'pods "{name}" is forbidden: violates PodSecurity "{level}:latest": '
                                  f'{", ".join(violations)}', {"name": name, "kind": "pods"})

    def admit_pod(self, resource: ResourceType, pod: Obj) -> None:
        """PodNodeSelector and PodTolerationRestriction, from the namespace's annotations (a new pod, before it is stored)."""
        if resource is not PODS:
            return
        ns = self.store.objects[NAMESPACES].get(("", pod["metadata"].get("namespace", "")))
        annotations = (ns or {}).get("metadata", {}).get("annotations") or {}
        spec = pod.setdefault("spec", {})
        if annotations.get(NODE_SELECTOR_ANNOTATION):
            selector = dict(spec.get("nodeSelector") or {})
            for pair in annotations[NODE_SELECTOR_ANNOTATION].split(","):
                key, _, value = pair.partition("=")
                if key.strip():
                    if selector.get(key.strip(), value.strip()) != value.strip():
                        raise errors.forbidden("system:admission", "create", "pods", "", pod["metadata"].get("namespace", ""))
                    selector[key.strip()] = value.strip()
            spec["nodeSelector"] = selector
        if annotations.get(DEFAULT_TOLERATIONS_ANNOTATION):
            try:
                defaults = json.loads(annotations[DEFAULT_TOLERATIONS_ANNOTATION])
            except ValueError:
                defaults = []
            tolerations = list(spec.get("tolerations") or [])
            for toleration in defaults:
                if toleration not in tolerations:
                    tolerations.append(toleration)
            spec["tolerations"] = tolerations

    def quota_used(self, ns: str) -> dict[str, str]:
        """What the quota controller would report as used in ``ns`` (pods, CPU and memory requests/limits)."""
        pods = [p for p in self.store.items(PODS, ns) if p["status"].get("phase") not in ("Succeeded", "Failed")
                and not p["metadata"].get("deletionTimestamp")]
        totals = {"requests.cpu": 0.0, "limits.cpu": 0.0, "requests.memory": 0.0, "limits.memory": 0.0}
        for pod in pods:
            for container in pod["spec"].get("containers") or []:
                resources = container.get("resources") or {}
                for section in ("requests", "limits"):
                    for resource in ("cpu", "memory"):
                        value = (resources.get(section) or {}).get(resource)
                        if value is not None:
                            totals[f"{section}.{resource}"] += _quantity(value)
        used = {"pods": str(len(pods)), "services.loadbalancers": str(sum(
            1 for s in self.store.items(SERVICES, ns) if (s.get("spec") or {}).get("type") == "LoadBalancer"))}
        for key, value in totals.items():
            used[key] = f"{round(value * 1000)}m" if key.endswith("cpu") else f"{round(value / 2**20)}Mi"
        used["cpu"], used["memory"] = used["requests.cpu"], used["requests.memory"]
        used["requests.storage"] = "0"
        return used
