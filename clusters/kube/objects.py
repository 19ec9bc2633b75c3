"""Generic get/create/replace/delete/list of the kinds in a tenant bundle, as plain dicts."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from kubernetes import client as k8s

from clusters.kube.errors import KubeError
from clusters.kube.retry import reads

if TYPE_CHECKING:
    from clusters.kube.gateway import Gateway

OBJECT_APIS: dict[str, tuple[str, str, bool]] = {
    "Namespace": ("CoreV1Api", "namespace", False),
    "ResourceQuota": ("CoreV1Api", "namespaced_resource_quota", True),
    "LimitRange": ("CoreV1Api", "namespaced_limit_range", True),
    "NetworkPolicy": ("NetworkingV1Api", "namespaced_network_policy", True),
    "RoleBinding": ("RbacAuthorizationV1Api", "namespaced_role_binding", True),
    "ClusterRole": ("RbacAuthorizationV1Api", "cluster_role", False),
    "Role": ("RbacAuthorizationV1Api", "namespaced_role", True),
}


class ObjectOps:
    """Generic get/create/replace/delete/list of the kinds pksweb manages, as plain dicts."""

    def __init__(self, gateway: Gateway) -> None:
        self.gw = gateway

    def _api(self, kind: str) -> tuple[Any, str, bool]:
        """The typed API of ``kind`` (e.g. ``RbacAuthorizationV1Api``), its methods' suffix, and whether it is namespaced."""
        cls, suffix, namespaced = OBJECT_APIS[kind]
        return getattr(k8s, cls)(self.gw.api), suffix, namespaced

    @reads("read an object")
    def get(self, kind: str, name: str, namespace: str = "") -> dict[str, Any] | None:
        api, suffix, namespaced = self._api(kind)
        args = (name, namespace) if namespaced else (name,)
        try:
            return self.gw.plain(self.gw.call(f"read {kind} {name}", getattr(api, f"read_{suffix}"), *args))
        except KubeError as exc:
            if exc.kind == "not_found":
                return None
            raise

    @reads("create an object")
    def create(self, obj: dict[str, Any]) -> dict[str, Any]:
        api, suffix, namespaced = self._api(obj["kind"])
        name = obj["metadata"]["name"]
        args = (obj["metadata"]["namespace"], obj) if namespaced else (obj,)
        return self.gw.plain(self.gw.call(f"create {obj['kind']} {name}", getattr(api, f"create_{suffix}"), *args))

    @reads("update an object")
    def replace(self, obj: dict[str, Any]) -> dict[str, Any]:
        api, suffix, namespaced = self._api(obj["kind"])
        name = obj["metadata"]["name"]
        args = (name, obj["metadata"]["namespace"], obj) if namespaced else (name, obj)
        return self.gw.plain(self.gw.call(f"update {obj['kind']} {name}", getattr(api, f"replace_{suffix}"), *args))

    def delete(self, kind: str, name: str, namespace: str = "") -> None:
        api, suffix, namespaced = self._api(kind)
        args = (name, namespace) if namespaced else (name,)
        try:
            self.gw.call(f"delete {kind} {name}", getattr(api, f"delete_{suffix}"), *args)
        except KubeError as exc:
            if exc.kind != "not_found":
                raise

    @reads("list objects")
    def list(self, kind: str, namespace: str = "", label_selector: str = "") -> list[dict[str, Any]]:
        api, suffix, namespaced = self._api(kind)
        if namespaced and namespace:
            result = self.gw.call(f"list {kind}", getattr(api, f"list_{suffix}"), namespace, label_selector=label_selector)
        elif namespaced:
            plural = suffix.replace("namespaced_", "")
            result = self.gw.call(f"list {kind}", getattr(api, f"list_{plural}_for_all_namespaces"), label_selector=label_selector)
        else:
            result = self.gw.call(f"list {kind}", getattr(api, f"list_{suffix}"), label_selector=label_selector)
        return [self.gw.plain(item) for item in result.items]
