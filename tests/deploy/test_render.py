"""``kubectl kustomize`` renders both overlays, with the shape the issue asks for."""

from __future__ import annotations

import pytest

from tests.support.manifests import OVERLAYS, find, of_kind, overlay, workloads

PKSWEB_DEPLOYMENTS = {"web": (2, ["web"]), "worker": (2, ["worker"]), "beat": (1, ["beat"])}


@pytest.mark.parametrize("name", OVERLAYS)
def test_the_overlay_renders_the_whole_installation(name):
    objects = overlay(name)
    kinds = {(obj["kind"], obj["metadata"]["name"]) for obj in objects}
    expected = {
        ("Namespace", "pksweb"), ("ServiceAccount", "pksweb"), ("Service", "web"),
        ("Deployment", "web"), ("Deployment", "worker"), ("Deployment", "beat"),
        ("PodDisruptionBudget", "web"), ("PodDisruptionBudget", "worker"),
        ("HorizontalPodAutoscaler", "web"), ("HorizontalPodAutoscaler", "worker"),
        ("NetworkPolicy", "default-deny"), ("NetworkPolicy", "web"), ("NetworkPolicy", "worker"),
        ("NetworkPolicy", "pksweb-egress"),
    }
    if name != "trial":  # the trial is reached through a port-forward: no Ingress naming a host it has not
        expected |= {("Ingress", "pksweb")}
    if name == "trial":
        expected |= {("StatefulSet", "postgres"), ("StatefulSet", "redis"), ("Service", "postgres"),
                     ("Service", "redis"), ("NetworkPolicy", "postgres"), ("NetworkPolicy", "redis")}
    configmaps = [obj["metadata"]["name"] for obj in of_kind(objects, "ConfigMap")]
    assert len(configmaps) == 1 and configmaps[0].startswith("pksweb-config-")  # hashed: a change rolls the pods
    assert kinds - {("ConfigMap", configmaps[0])} == expected


@pytest.mark.parametrize("name", OVERLAYS)
def test_no_secret_is_committed(name):
    """The Secret comes from `manage.py deploysecret` or the operator's secret store, never from git."""
    assert of_kind(overlay(name), "Secret") == []


@pytest.mark.parametrize("name", OVERLAYS)
def test_the_deployments_run_the_roles(name):
    objects = overlay(name)
    for deployment, (replicas, args) in PKSWEB_DEPLOYMENTS.items():
        spec = find(objects, "Deployment", deployment)["spec"]
        if name == "trial":
            assert spec["replicas"] == replicas
        pod = spec["template"]["spec"]
        assert [c["args"] for c in pod["containers"]] == [args]
        # Every role waits for the migrations (run under the advisory lock) before it starts.
        assert [(c["name"], c["args"]) for c in pod["initContainers"]] == [("migrate", ["migrate"])]
        assert {c["image"] for c in pod["initContainers"] + pod["containers"]} == {pod["containers"][0]["image"]}
        assert pod["serviceAccountName"] == "pksweb" and pod["automountServiceAccountToken"] is False
    assert find(objects, "Deployment", "beat")["spec"]["strategy"] == {"type": "Recreate"}
    for deployment in ("web", "worker"):
        assert find(objects, "Deployment", deployment)["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    assert find(objects, "ServiceAccount", "pksweb")["automountServiceAccountToken"] is False


def test_the_trial_runs_the_image_make_image_builds_and_its_own_databases():
    objects = overlay("trial")
    images = {workload: {c["image"] for c in template["spec"]["containers"]} for workload, _, template in workloads(objects)}
    assert images == {"Deployment/web": {"localhost/pksweb:latest"}, "Deployment/worker": {"localhost/pksweb:latest"},
                      "Deployment/beat": {"localhost/pksweb:latest"}, "StatefulSet/postgres": {"postgres:16-bookworm"},
                      "StatefulSet/redis": {"redis:7-bookworm"}}
    for _, _, template in workloads(objects):
        # A local image with the tag latest would be pulled (and fail) under the default Always.
        assert {c["imagePullPolicy"] for c in template["spec"]["containers"]} == {"IfNotPresent"}
    for name in ("postgres", "redis"):
        statefulset = find(objects, "StatefulSet", name)["spec"]
        assert statefulset["replicas"] == 1
        assert [claim["metadata"]["name"] for claim in statefulset["volumeClaimTemplates"]] == ["data"]
        pod = statefulset["template"]["spec"]
        assert pod["securityContext"]["runAsUser"] == 999 and pod["securityContext"]["fsGroup"] == 999
    postgres_env = {e["name"]: e for e in find(objects, "StatefulSet", "postgres")["spec"]["template"]["spec"]["containers"][0]["env"]}
    mount = find(objects, "StatefulSet", "postgres")["spec"]["template"]["spec"]["containers"][0]["volumeMounts"][0]
    assert postgres_env["PGDATA"]["value"].startswith(mount["mountPath"] + "/")  # a subfolder of the volume


def test_production_pins_an_image_and_sizes_the_autoscalers_with_the_replicas():
    objects = overlay("production")
    for deployment in ("web", "worker", "beat"):
        image = find(objects, "Deployment", deployment)["spec"]["template"]["spec"]["containers"][0]["image"]
        assert ":" in image.rsplit("/", 1)[-1] and not image.endswith(":latest")
    for name in ("web", "worker"):
        replicas = find(objects, "Deployment", name)["spec"]["replicas"]
        hpa = find(objects, "HorizontalPodAutoscaler", name)["spec"]
        assert hpa["minReplicas"] == replicas <= hpa["maxReplicas"]


def test_the_ingress_keeps_websockets_open_and_routes_to_the_web_service():
    for name in set(OVERLAYS) - {"trial"}:
        ingress = find(overlay(name), "Ingress", "pksweb")
        annotations = ingress["metadata"]["annotations"]
        assert int(annotations["nginx.ingress.kubernetes.io/proxy-read-timeout"]) >= 3600
        assert int(annotations["nginx.ingress.kubernetes.io/proxy-send-timeout"]) >= 3600
        backends = [p["backend"]["service"] for rule in ingress["spec"]["rules"] for p in rule["http"]["paths"]]
        assert backends == [{"name": "web", "port": {"name": "http"}}]
        assert [p["name"] for p in find(overlay(name), "Service", "web")["spec"]["ports"]] == ["http"]
