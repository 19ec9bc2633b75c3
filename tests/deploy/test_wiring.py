"""The parts of the manifests that must agree with each other: selectors and the pods they mean, ports,
probes, sizes, graceful shutdown, metrics scraping and the network policies."""

from __future__ import annotations

import re
import shutil

import pytest

from sandbox.matching import selector_object
from tests.support.manifests import (
    DEPLOY,
    OVERLAYS,
    find,
    is_pksweb,
    of_kind,
    overlay,
    pksweb_containers,
    render,
    workloads,
)
from tests.support.pod_security import containers

UNITS = {"": 1, "m": 1e-3, "k": 1e3, "M": 1e6, "G": 1e9, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30}


def _quantity(value: object) -> float:
    match = re.fullmatch(r"([0-9.]+)([a-zA-Z]*)", str(value))
    assert match and match.group(2) in UNITS, f"{value!r} is not a quantity this test reads"
    return float(match.group(1)) * UNITS[match.group(2)]


def _pod_labels(objects, kind: str, name: str) -> dict[str, str]:
    return find(objects, kind, name)["spec"]["template"]["metadata"]["labels"]


def _all_pod_labels(objects) -> dict[str, dict[str, str]]:
    return {workload: template["metadata"]["labels"] for workload, _, template in workloads(objects)}


def _selected(selector, objects) -> set[str]:
    return {workload for workload, labels in _all_pod_labels(objects).items() if selector_object(selector)(labels)}


@pytest.mark.parametrize("name", OVERLAYS)
def test_every_container_has_requests_and_limits(name):
    for workload, _, template in workloads(overlay(name)):
        for container in containers(template["spec"]):
            resources = container.get("resources") or {}
            for resource in ("cpu", "memory"):
                request, limit = (resources.get("requests") or {}).get(resource), (resources.get("limits") or {}).get(resource)
                assert request and limit, f"{workload} container {container['name']} lacks a {resource} request or limit"
                assert _quantity(request) <= _quantity(limit), f"{workload} container {container['name']}: {resource}"


@pytest.mark.parametrize("name", OVERLAYS)
def test_every_container_writes_only_to_its_volumes(name):
    for workload, _, template in workloads(overlay(name)):
        spec = template["spec"]
        volumes = {v["name"]: v for v in spec.get("volumes") or []}
        claims = {c["metadata"]["name"] for c in (find(overlay(name), *workload.split("/"))["spec"].get("volumeClaimTemplates") or [])}
        for container in containers(spec):
            assert container["securityContext"]["readOnlyRootFilesystem"] is True, workload
            mounts = {m["mountPath"]: m["name"] for m in container.get("volumeMounts") or []}
            assert set(mounts.values()) <= set(volumes) | claims
            if is_pksweb(template):
                assert container["securityContext"]["runAsUser"] == 10001
                assert {path for path in mounts} == {"/data", "/tmp"}
                assert all("emptyDir" in volumes[mounts[path]] for path in ("/data", "/tmp"))


@pytest.mark.parametrize("name", OVERLAYS)
def test_web_is_probed_with_a_host_django_allows(name):
    objects = overlay(name)
    web = find(objects, "Deployment", "web")["spec"]["template"]["spec"]["containers"][0]
    allowed = of_kind(objects, "ConfigMap")[0]["data"]["ALLOWED_HOSTS"].split(",")
    ports = {p["name"]: p["containerPort"] for p in web["ports"]}
    paths = {}
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        get = web[probe]["httpGet"]
        paths[probe] = get["path"]
        assert get["port"] in ports
        hosts = [h["value"] for h in get.get("httpHeaders") or [] if h["name"].lower() == "host"]
        assert hosts and hosts[0] in allowed, f"{probe} would be answered 400 (DisallowedHost)"
    assert paths == {"startupProbe": "/healthz", "readinessProbe": "/readyz", "livenessProbe": "/healthz"}


@pytest.mark.parametrize("name", OVERLAYS)
def test_shutdown_leaves_time_to_drain(name):
    objects = overlay(name)
    web = find(objects, "Deployment", "web")["spec"]["template"]["spec"]
    container = web["containers"][0]
    grace = int({e["name"]: e.get("value") for e in container["env"]}["PKSWEB_WEB_GRACE_SECONDS"])
    sleep = container["lifecycle"]["preStop"]["sleep"]["seconds"]
    # The endpoints drain during the sleep, then uvicorn closes the sockets with a reconnect hint within its grace.
    assert sleep >= 3 and sleep + grace < web["terminationGracePeriodSeconds"]
    worker = find(objects, "Deployment", "worker")["spec"]["template"]["spec"]
    assert worker["terminationGracePeriodSeconds"] >= 30


@pytest.mark.parametrize("name", OVERLAYS)
def test_budgets_and_autoscalers_select_their_deployments(name):
    objects = overlay(name)
    for deployment in ("web", "worker"):
        pdb = find(objects, "PodDisruptionBudget", deployment)
        assert _selected(pdb["spec"]["selector"], objects) == {f"Deployment/{deployment}"}
        hpa = find(objects, "HorizontalPodAutoscaler", deployment)
        assert hpa["apiVersion"] == "autoscaling/v2"
        target = hpa["spec"]["scaleTargetRef"]
        assert (target["kind"], target["name"]) == ("Deployment", deployment)
        workload = find(objects, "Deployment", deployment)
        assert _selected(workload["spec"]["selector"], objects) == {f"Deployment/{deployment}"}
        assert hpa["spec"]["minReplicas"] == workload["spec"]["replicas"]


@pytest.mark.parametrize("name", OVERLAYS)
def test_services_select_their_pods_on_ports_they_open(name):
    objects = overlay(name)
    expected = {"web": "Deployment/web", "postgres": "StatefulSet/postgres", "redis": "StatefulSet/redis"}
    for service in of_kind(objects, "Service"):
        service_name = service["metadata"]["name"]
        chosen = _selected({"matchLabels": service["spec"]["selector"]}, objects)
        assert chosen == {expected[service_name]}
        kind, workload = expected[service_name].split("/")
        ports = {p["name"] for c in find(objects, kind, workload)["spec"]["template"]["spec"]["containers"] for p in c["ports"]}
        assert {p["targetPort"] for p in service["spec"]["ports"]} <= ports


@pytest.mark.parametrize("name", OVERLAYS)
def test_metrics_are_scraped_where_they_are_served(name):
    objects = overlay(name)
    for deployment, port in (("web", 8000), ("worker", 9100)):
        template = find(objects, "Deployment", deployment)["spec"]["template"]
        annotations = template["metadata"]["annotations"]
        assert annotations["prometheus.io/scrape"] == "true" and annotations["prometheus.io/path"] == "/metrics"
        assert int(annotations["prometheus.io/port"]) == port
        assert port in {p["containerPort"] for p in template["spec"]["containers"][0]["ports"]}
    worker = find(objects, "Deployment", "worker")["spec"]["template"]["spec"]["containers"][0]
    assert {e["name"]: e.get("value") for e in worker["env"]}["PKSWEB_WORKER_METRICS_PORT"] == "9100"


def _policy(objects, name):
    return find(objects, "NetworkPolicy", name)["spec"]


@pytest.mark.parametrize("name", OVERLAYS)
def test_network_policies(name):
    objects = overlay(name)
    everything = set(_all_pod_labels(objects))
    pksweb = {w for w, _, t in workloads(objects) if is_pksweb(t)}
    assert pksweb == {"Deployment/web", "Deployment/worker", "Deployment/beat"}

    deny = _policy(objects, "default-deny")
    assert deny["podSelector"] == {} and set(deny["policyTypes"]) == {"Ingress", "Egress"}
    assert "ingress" not in deny and "egress" not in deny

    web = _policy(objects, "web")
    assert _selected(web["podSelector"], objects) == {"Deployment/web"}
    sources = [peer["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"] for peer in web["ingress"][0]["from"]]
    assert sources == ["ingress-nginx", "monitoring"] and all(len(peer) == 1 for peer in web["ingress"][0]["from"])
    assert [p["port"] for p in web["ingress"][0]["ports"]] == [8000]
    worker = _policy(objects, "worker")
    assert _selected(worker["podSelector"], objects) == {"Deployment/worker"}
    assert [p["port"] for p in worker["ingress"][0]["ports"]] == [9100]

    egress = _policy(objects, "pksweb-egress")
    assert _selected(egress["podSelector"], objects) == pksweb  # the trial's databases reach nothing
    allowed = {(p.get("protocol", "TCP"), p["port"]) for rule in egress["egress"] for p in rule["ports"]}
    assert allowed == {("UDP", 53), ("TCP", 53), ("TCP", 5432), ("TCP", 6379), ("TCP", 443), ("TCP", 6443)}
    dns = [rule for rule in egress["egress"] if ("UDP", 53) in {(p["protocol"], p["port"]) for p in rule["ports"]}]
    assert dns[0]["to"] == [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}}}]

    if name == "trial":
        for database, port in (("postgres", 5432), ("redis", 6379)):
            policy = _policy(objects, database)
            assert _selected(policy["podSelector"], objects) == {f"StatefulSet/{database}"}
            assert set(policy["policyTypes"]) == {"Ingress", "Egress"} and "egress" not in policy
            [rule] = policy["ingress"]
            assert [p["port"] for p in rule["ports"]] == [port]
            [peer] = rule["from"]
            assert set(peer) == {"podSelector"}  # this namespace only
            assert _selected(peer["podSelector"], objects) == pksweb
    assert everything >= pksweb


def test_the_commented_egress_narrowing_of_production_works(tmp_path):
    """The production overlay shows how to narrow egress to addresses; the example, uncommented, renders."""
    text = (DEPLOY / "overlays" / "production" / "kustomization.yaml").read_text()
    uncommented = re.sub(r"^  # (- target: \{kind: NetworkPolicy.*)$", r"  \1", text, flags=re.M)
    uncommented = re.sub(r"^  #   ", "    ", uncommented, flags=re.M)
    shutil.copytree(DEPLOY / "base", tmp_path / "base")  # kustomize takes no absolute path to a base
    overlay_dir = tmp_path / "overlays" / "narrowed"
    overlay_dir.mkdir(parents=True)
    (overlay_dir / "kustomization.yaml").write_text(uncommented)
    egress = find(render(overlay_dir), "NetworkPolicy", "pksweb-egress")["spec"]["egress"]
    assert [rule.get("to") for rule in egress[1:]] == [
        [{"ipBlock": {"cidr": "10.20.0.15/32"}}], [{"ipBlock": {"cidr": "10.20.0.16/32"}}], [{"ipBlock": {"cidr": "10.30.0.0/16"}}]]


def test_pksweb_containers_are_all_found():
    assert sorted(where for where, _ in pksweb_containers(overlay("trial"))) == [
        "Deployment/beat container beat", "Deployment/beat container migrate", "Deployment/web container migrate",
        "Deployment/web container web", "Deployment/worker container migrate", "Deployment/worker container worker"]


def _kubelet_environment(objects, container, pod_ip: str) -> dict[str, str]:
    """The environment the kubelet gives a container: envFrom first, then env in order, each $(NAME) in a value
    expanded from what is defined so far (an unknown name stays as written)."""
    env: dict[str, str] = {}
    for source in container.get("envFrom") or []:
        env.update(find(objects, "ConfigMap", source["configMapRef"]["name"])["data"])
    for var in container.get("env") or []:
        if "value" in var:
            env[var["name"]] = re.sub(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)", lambda m: env.get(m.group(1), m.group(0)), var["value"])
        elif (var["valueFrom"].get("fieldRef") or {}).get("fieldPath") == "status.podIP":
            env[var["name"]] = pod_ip
    return env


@pytest.mark.parametrize("name", OVERLAYS)
def test_web_answers_to_its_pod_address_for_the_scraper(name):
    """Prometheus asks with the pod's IP as Host: it is among ALLOWED_HOSTS, next to the ConfigMap's names."""
    objects = overlay(name)
    web = find(objects, "Deployment", "web")["spec"]["template"]["spec"]["containers"][0]
    hosts = _kubelet_environment(objects, web, "10.1.2.3")["ALLOWED_HOSTS"].split(",")
    assert hosts == of_kind(objects, "ConfigMap")[0]["data"]["ALLOWED_HOSTS"].split(",") + ["10.1.2.3"]
