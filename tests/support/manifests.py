"""deploy/'s kustomizations rendered with ``kubectl kustomize``, and the parts of them the tests read."""

from __future__ import annotations

import copy
import shutil
import subprocess
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from tests.support.pod_security import containers, pod_templates
from tests.support.waits import require_service

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
OVERLAYS = ("production", "trial")
Obj = dict[str, Any]


def kubectl() -> str:
    found = shutil.which("kubectl")
    if found is None:
        require_service("kubectl (with kustomize built in)", "install kubectl (Debian: the kubernetes-client package)")
    assert found is not None
    return found


@cache
def _rendered(path: str) -> tuple[Obj, ...]:
    result = subprocess.run([kubectl(), "kustomize", path], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, f"kubectl kustomize {path} failed:\n{result.stderr}"
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    return tuple(obj for obj in yaml.load_all(result.stdout, Loader=loader) if obj)


def render(path: Path | str) -> list[Obj]:
    """The objects ``kubectl kustomize PATH`` prints (rendered once; a fresh copy each call: tests may change them)."""
    return copy.deepcopy(list(_rendered(str(path))))


def overlay(name: str) -> list[Obj]:
    return render(DEPLOY / "overlays" / name)


def base() -> list[Obj]:
    return render(DEPLOY / "base")


def find(objects: list[Obj], kind: str, name: str) -> Obj:
    for obj in objects:
        if obj["kind"] == kind and obj["metadata"]["name"] == name:
            return obj
    raise AssertionError(f"no {kind} {name} among {[(o['kind'], o['metadata']['name']) for o in objects]}")


def of_kind(objects: list[Obj], kind: str) -> list[Obj]:
    return [obj for obj in objects if obj["kind"] == kind]


def workloads(objects: list[Obj]) -> Iterator[tuple[str, Obj, Obj]]:
    """(name, the workload object, its pod template) for every object that holds a pod template."""
    for obj in objects:
        for name, template in pod_templates(obj):
            yield name, obj, template


def is_pksweb(template: Obj) -> bool:
    """A pod of pksweb itself (web, worker, beat), not the trial's PostgreSQL or Redis."""
    return (template.get("metadata") or {}).get("labels", {}).get("app.kubernetes.io/name") == "pksweb"


def pksweb_containers(objects: list[Obj]) -> Iterator[tuple[str, Obj]]:
    """("Deployment/web container migrate", the container) for every container of every pksweb pod."""
    for name, _, template in workloads(objects):
        if is_pksweb(template):
            for container in containers(template.get("spec") or {}):
                yield f"{name} container {container['name']}", container
