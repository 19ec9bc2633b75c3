"""Every pod template deploy/ renders meets Pod Security "restricted", checked field by field
(tests/support/pod_security.py, written from the standard), and the checker refuses what breaks each rule."""

from __future__ import annotations

import copy
from collections.abc import Callable
from functools import cache
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.support.manifests import OVERLAYS, find, of_kind, overlay, workloads
from tests.support.pod_security import RULES, SAFE_SYSCTLS, restricted_violations

Obj = dict[str, Any]


@pytest.mark.parametrize("name", OVERLAYS)
def test_every_pod_template_meets_restricted(name):
    objects = overlay(name)
    found = {workload: [str(v) for v in restricted_violations(template)] for workload, _, template in workloads(objects)}
    expected = {"Deployment/web", "Deployment/worker", "Deployment/beat"} | (
        {"StatefulSet/postgres", "StatefulSet/redis"} if name == "trial" else set())
    assert set(found) == expected
    assert found == {workload: [] for workload in expected}


@pytest.mark.parametrize("name", OVERLAYS)
def test_the_namespace_enforces_restricted(name):
    namespace = of_kind(overlay(name), "Namespace")
    assert len(namespace) == 1
    labels = namespace[0]["metadata"]["labels"]
    for mode in ("enforce", "audit", "warn"):
        assert labels[f"pod-security.kubernetes.io/{mode}"] == "restricted"
    namespaced = [o for o in overlay(name) if o["kind"] != "Namespace"]
    assert {o["metadata"].get("namespace") for o in namespaced} == {namespace[0]["metadata"]["name"]}


@cache
def _shipped_web() -> Obj:
    return find(overlay("trial"), "Deployment", "web")["spec"]["template"]


def _web() -> Obj:
    """The web pod template as shipped (a copy to break)."""
    return copy.deepcopy(_shipped_web())


def _container(template: Obj, index: int = 0, init: bool = False) -> Obj:
    return template["spec"]["initContainers" if init else "containers"][index]


def _ctx(template: Obj, init: bool = False) -> Obj:
    return _container(template, init=init)["securityContext"]


# One way to break each rule of the standard, applied to the web pod template (which meets them all).
BREAKS: dict[str, list[Callable[[Obj], None]]] = {
    "HostProcess": [lambda t: _ctx(t).update(windowsOptions={"hostProcess": True})],
    "Host Namespaces": [lambda t, f=f: t["spec"].update({f: True}) for f in ("hostNetwork", "hostPID", "hostIPC")],
    "Privileged Containers": [lambda t: _ctx(t, init=True).update(privileged=True)],
    "Capabilities": [lambda t: _ctx(t)["capabilities"].update(add=["SYS_ADMIN"]),
                     lambda t: _ctx(t)["capabilities"].update(add=["CHOWN"]),
                     lambda t: _ctx(t, init=True)["capabilities"].update(drop=["NET_RAW"]),
                     lambda t: _ctx(t).pop("capabilities")],
    "HostPath Volumes": [lambda t: t["spec"]["volumes"].append({"name": "host", "hostPath": {"path": "/"}})],
    "Host Ports": [lambda t: _container(t)["ports"][0].update(hostPort=8000)],
    "Host Probes / Lifecycle Hooks": [lambda t: _container(t)["livenessProbe"]["httpGet"].update(host="10.0.0.1"),
                                      lambda t: _container(t)["lifecycle"].update(postStart={"tcpSocket": {"port": 1, "host": "x"}})],
    "AppArmor": [lambda t: _ctx(t).update(appArmorProfile={"type": "Unconfined"}),
                 lambda t: t["metadata"].setdefault("annotations", {}).update(
                     {"container.apparmor.security.beta.kubernetes.io/web": "unconfined"})],
    "SELinux": [lambda t: t["spec"]["securityContext"].update(seLinuxOptions={"type": "spc_t"}),
                lambda t: _ctx(t).update(seLinuxOptions={"user": "system_u"}),
                lambda t: _ctx(t).update(seLinuxOptions={"role": "sysadm_r"})],
    "/proc Mount Type": [lambda t: _ctx(t).update(procMount="Unmasked")],
    "Seccomp": [lambda t: _ctx(t).update(seccompProfile={"type": "Unconfined"}),
                lambda t: (t["spec"]["securityContext"].pop("seccompProfile"), _ctx(t, init=True).pop("seccompProfile"))],
    "Sysctls": [lambda t: t["spec"]["securityContext"].update(sysctls=[{"name": "kernel.msgmax", "value": "1"}])],
    "Volume Types": [lambda t: t["spec"]["volumes"].append({"name": "nfs", "nfs": {"server": "nfs", "path": "/"}}),
                     lambda t: t["spec"]["volumes"].append({"name": "repo", "gitRepo": {"repository": "x"}})],
    "Privilege Escalation": [lambda t: _ctx(t).pop("allowPrivilegeEscalation"),
                             lambda t: _ctx(t, init=True).update(allowPrivilegeEscalation=True)],
    "Running as Non-root": [lambda t: (t["spec"]["securityContext"].pop("runAsNonRoot"), _ctx(t).pop("runAsNonRoot")),
                            lambda t: _ctx(t).update(runAsNonRoot=False)],
    "Running as Non-root user": [lambda t: _ctx(t, init=True).update(runAsUser=0),
                                 lambda t: t["spec"]["securityContext"].update(runAsUser=0)],
}


def test_every_rule_of_the_standard_has_a_way_to_break_it():
    assert set(BREAKS) == set(RULES)


@pytest.mark.parametrize(("rule", "index"), [(rule, i) for rule, breaks in BREAKS.items() for i in range(len(breaks))])
def test_the_checker_refuses_a_template_breaking_a_rule_by_its_name(rule, index):
    template = _web()
    BREAKS[rule][index](template)
    assert rule in {v.rule for v in restricted_violations(template)}


@settings(max_examples=60, deadline=None)
@given(st.lists(st.sampled_from([(rule, i) for rule, breaks in BREAKS.items() for i in range(len(breaks))]),
                min_size=1, max_size=4, unique=True))
def test_several_breaks_at_once_are_each_named(breaks):
    template = _web()
    for rule, index in breaks:
        BREAKS[rule][index](template)
    assert {rule for rule, _ in breaks} <= {v.rule for v in restricted_violations(template)}


# What the standard allows beyond the shipped templates: each must still pass.
ALLOWED = st.sampled_from([
    lambda t: _ctx(t)["capabilities"].update(add=["NET_BIND_SERVICE"]),
    lambda t: _ctx(t).update(seccompProfile={"type": "Localhost", "localhostProfile": "profiles/pksweb.json"}),
    lambda t: _ctx(t).update(appArmorProfile={"type": "RuntimeDefault"}),
    lambda t: t["metadata"].setdefault("annotations", {}).update(
        {"container.apparmor.security.beta.kubernetes.io/web": "localhost/pksweb"}),
    lambda t: _ctx(t).update(seLinuxOptions={"type": "container_init_t", "level": "s0:c1,c2"}),
    lambda t: _ctx(t).update(procMount="Default"),
    lambda t: _container(t)["ports"][0].update(hostPort=0),
    lambda t: t["spec"]["volumes"].append({"name": "pvc", "persistentVolumeClaim": {"claimName": "x"}}),
    lambda t: t["spec"]["volumes"].append({"name": "proj", "projected": {"sources": []}}),
    lambda t: _ctx(t).pop("runAsNonRoot", None),  # the pod-level true covers it
    lambda t: _ctx(t).pop("seccompProfile", None),  # the pod-level profile covers it
    lambda t: _ctx(t).pop("runAsUser", None),
])


@settings(max_examples=60, deadline=None)
@given(st.lists(ALLOWED, min_size=1, max_size=5), st.lists(st.sampled_from(sorted(SAFE_SYSCTLS)), max_size=3, unique=True))
def test_what_the_standard_allows_passes(changes, sysctls):
    template = _web()
    for change in changes:
        change(template)
    template["spec"]["securityContext"]["sysctls"] = [{"name": name, "value": "1"} for name in sysctls]
    assert restricted_violations(template) == []


def test_linux_only_rules_do_not_apply_to_a_windows_pod():
    template = _web()
    template["spec"]["os"] = {"name": "windows"}
    for init in (False, True):
        ctx = _ctx(template, init=init)
        for field in ("allowPrivilegeEscalation", "seccompProfile", "capabilities"):
            ctx.pop(field)
    template["spec"]["securityContext"].pop("seccompProfile")
    assert restricted_violations(template) == []
