"""The sandbox's RBAC authorizer and Pod Security admission, as a real API server has them.

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
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

Obj = dict[str, Any]

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
