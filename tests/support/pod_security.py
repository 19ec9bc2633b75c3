"""The Pod Security Standards' ``restricted`` profile, checked field by field on a pod template.

Written from the standard (kubernetes.io, "Pod Security Standards", profile details): every control of the
Baseline policy, then every control the Restricted policy adds. Each violation names its control as the
standard does ("Host Namespaces", "Volume Types", ...), so a test can say which rule a template breaks.
The controls marked "Linux only" (privilege escalation, seccomp, capabilities of the restricted profile) do not
apply to a pod whose ``spec.os.name`` is ``windows``, as the standard says.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

Obj = dict[str, Any]

BASELINE_CAPABILITIES = frozenset({
    "AUDIT_WRITE", "CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "MKNOD", "NET_BIND_SERVICE", "SETFCAP",
    "SETGID", "SETPCAP", "SETUID", "SYS_CHROOT",
})
RESTRICTED_ADD = frozenset({"NET_BIND_SERVICE"})
SAFE_SYSCTLS = frozenset({
    "kernel.shm_rmid_forced", "net.ipv4.ip_local_port_range", "net.ipv4.ip_unprivileged_port_start",
    "net.ipv4.tcp_syncookies", "net.ipv4.ping_group_range", "net.ipv4.ip_local_reserved_ports",
    "net.ipv4.tcp_keepalive_time", "net.ipv4.tcp_fin_timeout", "net.ipv4.tcp_keepalive_intvl",
    "net.ipv4.tcp_keepalive_probes",
})
SELINUX_TYPES = frozenset({"", "container_t", "container_init_t", "container_kvm_t", "container_engine_t"})
APPARMOR_TYPES = frozenset({"RuntimeDefault", "Localhost"})
SECCOMP_TYPES = frozenset({"RuntimeDefault", "Localhost"})
RESTRICTED_VOLUMES = frozenset({
    "configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim", "projected", "secret",
})
APPARMOR_ANNOTATION = "container.apparmor.security.beta.kubernetes.io/"
CONTAINER_LISTS = ("containers", "initContainers", "ephemeralContainers")
PROBES = ("livenessProbe", "readinessProbe", "startupProbe")
# Every control, by the name the standard gives it (the tests prove each can fail).
RULES = (
    "HostProcess", "Host Namespaces", "Privileged Containers", "Capabilities", "HostPath Volumes", "Host Ports",
    "Host Probes / Lifecycle Hooks", "AppArmor", "SELinux", "/proc Mount Type", "Seccomp", "Sysctls",
    "Volume Types", "Privilege Escalation", "Running as Non-root", "Running as Non-root user",
)


@dataclass(frozen=True)
class Violation:
    rule: str
    detail: str

    def __str__(self) -> str:
        return f"{self.rule}: {self.detail}"


def pod_templates(obj: Obj) -> Iterator[tuple[str, Obj]]:
    """(a name for messages, the pod template: metadata and spec) of every workload kind that holds one."""
    kind, name = obj.get("kind", ""), (obj.get("metadata") or {}).get("name", "")
    spec = obj.get("spec") or {}
    if kind == "Pod":
        yield f"Pod/{name}", obj
    elif kind in ("Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "ReplicationController", "Job"):
        yield f"{kind}/{name}", spec.get("template") or {}
    elif kind == "CronJob":
        yield f"{kind}/{name}", ((spec.get("jobTemplate") or {}).get("spec") or {}).get("template") or {}


def containers(spec: Obj) -> Iterator[Obj]:
    for field in CONTAINER_LISTS:
        yield from spec.get(field) or []


def _context(container: Obj) -> Obj:
    return container.get("securityContext") or {}


def _baseline(template: Obj) -> Iterator[Violation]:
    spec = template.get("spec") or {}
    pod_ctx = spec.get("securityContext") or {}
    annotations = (template.get("metadata") or {}).get("annotations") or {}
    everything = [("pod", pod_ctx), *((f"container {c.get('name')}", _context(c)) for c in containers(spec))]

    for where, ctx in everything:
        if (ctx.get("windowsOptions") or {}).get("hostProcess"):
            yield Violation("HostProcess", f"{where} sets windowsOptions.hostProcess")
    for field in ("hostNetwork", "hostPID", "hostIPC"):
        if spec.get(field):
            yield Violation("Host Namespaces", f"spec.{field} is true")
    for container in containers(spec):
        cname, ctx = container.get("name"), _context(container)
        if ctx.get("privileged"):
            yield Violation("Privileged Containers", f"container {cname} is privileged")
        extra = set((ctx.get("capabilities") or {}).get("add") or []) - BASELINE_CAPABILITIES
        if extra:
            yield Violation("Capabilities", f"container {cname} adds {sorted(extra)} beyond the baseline set")
        for port in container.get("ports") or []:
            if port.get("hostPort") not in (None, 0):
                yield Violation("Host Ports", f"container {cname} uses hostPort {port.get('hostPort')}")
        handlers = [container.get(p) or {} for p in PROBES]
        handlers += [h or {} for h in (container.get("lifecycle") or {}).values()]
        for handler in handlers:
            for action in ("httpGet", "tcpSocket"):
                if (handler.get(action) or {}).get("host"):
                    yield Violation("Host Probes / Lifecycle Hooks", f"container {cname} sets {action}.host")
        if ctx.get("procMount") not in (None, "Default"):
            yield Violation("/proc Mount Type", f"container {cname} sets procMount {ctx.get('procMount')}")
    for volume in spec.get("volumes") or []:
        if volume.get("hostPath") is not None:
            yield Violation("HostPath Volumes", f"volume {volume.get('name')} is a hostPath")
    for where, ctx in everything:
        apparmor = (ctx.get("appArmorProfile") or {}).get("type")
        if apparmor is not None and apparmor not in APPARMOR_TYPES:
            yield Violation("AppArmor", f"{where} sets appArmorProfile {apparmor}")
        selinux = ctx.get("seLinuxOptions") or {}
        if (selinux.get("type") or "") not in SELINUX_TYPES:
            yield Violation("SELinux", f"{where} sets seLinuxOptions.type {selinux.get('type')}")
        for field in ("user", "role"):
            if selinux.get(field):
                yield Violation("SELinux", f"{where} sets seLinuxOptions.{field}")
        if (ctx.get("seccompProfile") or {}).get("type") == "Unconfined":
            yield Violation("Seccomp", f"{where} sets seccompProfile Unconfined")
    for key, value in annotations.items():
        if key.startswith(APPARMOR_ANNOTATION) and not (value == "runtime/default" or str(value).startswith("localhost/")):
            yield Violation("AppArmor", f"annotation {key} is {value}")
    for sysctl in pod_ctx.get("sysctls") or []:
        if sysctl.get("name") not in SAFE_SYSCTLS:
            yield Violation("Sysctls", f"sysctl {sysctl.get('name')} is not in the safe set")


def _restricted(template: Obj) -> Iterator[Violation]:
    spec = template.get("spec") or {}
    pod_ctx = spec.get("securityContext") or {}
    linux = (spec.get("os") or {}).get("name") != "windows"

    for volume in spec.get("volumes") or []:
        if not any(volume.get(kind) is not None for kind in RESTRICTED_VOLUMES):
            kinds = sorted(set(volume) - {"name"})
            yield Violation("Volume Types", f"volume {volume.get('name')} is {kinds}, not one the profile allows")

    if pod_ctx.get("runAsNonRoot") is False:
        yield Violation("Running as Non-root", "the pod sets runAsNonRoot false")
    if pod_ctx.get("runAsUser") == 0:
        yield Violation("Running as Non-root user", "the pod sets runAsUser 0")
    pod_seccomp = (pod_ctx.get("seccompProfile") or {}).get("type")
    if linux and pod_seccomp is not None and pod_seccomp not in SECCOMP_TYPES:
        yield Violation("Seccomp", f"the pod sets seccompProfile {pod_seccomp}")

    for container in containers(spec):
        cname, ctx = container.get("name"), _context(container)
        non_root = ctx.get("runAsNonRoot")
        if non_root is False or (non_root is None and pod_ctx.get("runAsNonRoot") is not True):
            yield Violation("Running as Non-root", f"neither the pod nor container {cname} sets runAsNonRoot true")
        if ctx.get("runAsUser") == 0:
            yield Violation("Running as Non-root user", f"container {cname} sets runAsUser 0")
        if not linux:
            continue
        if ctx.get("allowPrivilegeEscalation") is not False:
            yield Violation("Privilege Escalation", f"container {cname} does not set allowPrivilegeEscalation false")
        seccomp = (ctx.get("seccompProfile") or {}).get("type")
        if seccomp is None and pod_seccomp is None:
            yield Violation("Seccomp", f"neither the pod nor container {cname} sets a seccompProfile")
        elif seccomp is not None and seccomp not in SECCOMP_TYPES:
            yield Violation("Seccomp", f"container {cname} sets seccompProfile {seccomp}")
        capabilities = ctx.get("capabilities") or {}
        if "ALL" not in (capabilities.get("drop") or []):
            yield Violation("Capabilities", f"container {cname} does not drop ALL")
        extra = set(capabilities.get("add") or []) - RESTRICTED_ADD
        if extra:
            yield Violation("Capabilities", f"container {cname} adds {sorted(extra)}; only NET_BIND_SERVICE may be added")


def restricted_violations(template: Obj) -> list[Violation]:
    """Everything a pod template (``metadata`` and ``spec``) breaks of the restricted profile."""
    return [*_baseline(template), *_restricted(template)]
