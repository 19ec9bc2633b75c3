"""Every pksweb container gets every variable production settings require, and secrets only by reference."""

from __future__ import annotations

import re

import pytest

from pksweb import settings as pksweb_settings
from tests.support.manifests import OVERLAYS, find, of_kind, overlay, pksweb_containers

SECRET = "pksweb-secrets"
# The values that are secrets (docs: README's Production table; the interface of #15).
SECRET_KEYS = {"PKSWEB_SECRET_KEY", "PKSWEB_CREDENTIAL_KEYS", "DATABASE_URL", "REDIS_URL"}
# A variable whose name says it holds a secret must never be written inline.
SECRET_LOOKING = re.compile(r"PASSWORD|SECRET|TOKEN|_KEYS?$|_URL$|AUTH")


def _environment(objects, container) -> dict[str, tuple[str, object]]:
    """Each variable a container gets: ("value", v), ("secret", (name, key, optional)), ("field", path) or ("configmap", v)."""
    found: dict[str, tuple[str, object]] = {}
    for source in container.get("envFrom") or []:
        assert "secretRef" not in source, "secrets are named one by one (secretKeyRef), not imported whole"
        configmap = find(objects, "ConfigMap", source["configMapRef"]["name"])
        for key, value in configmap["data"].items():
            found[key] = ("configmap", value)
    for var in container.get("env") or []:
        if "value" in var:
            found[var["name"]] = ("value", var["value"])
        elif "fieldRef" in var["valueFrom"]:
            found[var["name"]] = ("field", var["valueFrom"]["fieldRef"]["fieldPath"])
        else:
            ref = var["valueFrom"]["secretKeyRef"]
            found[var["name"]] = ("secret", (ref["name"], ref["key"], ref.get("optional", False)))
    return found


def test_the_required_variables_are_read_from_settings():
    """What production requires comes from pksweb/settings.py, so a new required variable is checked here too."""
    assert set(pksweb_settings._REQUIRED_HINTS) >= SECRET_KEYS | {"ALLOWED_HOSTS"}
    assert "production" in pksweb_settings.MODES


def configuration_problems(objects) -> list[str]:
    """What a pksweb container lacks of production's required variables, and every secret not by reference."""
    required = set(pksweb_settings._REQUIRED_HINTS)
    problems = []
    for where, container in pksweb_containers(objects):
        env = _environment(objects, container)
        if env.get("PKSWEB_MODE") != ("configmap", "production"):
            problems.append(f"{where}: PKSWEB_MODE is not production from the ConfigMap")
        missing = {var for var in required if not env.get(var) or env[var][1] in ("", None)}
        if missing:
            problems.append(f"{where} lacks {sorted(missing)}")
        for key in SECRET_KEYS & set(env):
            if env[key] != ("secret", (SECRET, key, False)):
                problems.append(f"{where}: {key} must come from {SECRET} by reference")
    for configmap in of_kind(objects, "ConfigMap"):
        leaked = sorted(key for key in configmap["data"] if SECRET_LOOKING.search(key))
        if leaked:
            problems.append(f"ConfigMap {configmap['metadata']['name']} holds {leaked}")
    for obj in objects:
        spec = ((obj.get("spec") or {}).get("template") or {}).get("spec") or {}
        for container in spec.get("initContainers", []) + spec.get("containers", []):
            # POSTGRES_USER, PGDATA... are not secrets; every password, key, token and URL is a reference.
            inline = sorted(v["name"] for v in container.get("env") or [] if "value" in v and SECRET_LOOKING.search(v["name"]))
            if inline:
                problems.append(f"{obj['kind']}/{obj['metadata']['name']} container {container['name']} writes {inline} inline")
    return problems


@pytest.mark.parametrize("name", OVERLAYS)
def test_every_pksweb_container_gets_what_production_requires_and_secrets_by_reference(name):
    objects = overlay(name)
    assert len(list(pksweb_containers(objects))) == 6  # web, worker, beat and each one's migrate step
    assert configuration_problems(objects) == []


def _container(objects, deployment: str, init: bool = False):
    return find(objects, "Deployment", deployment)["spec"]["template"]["spec"]["initContainers" if init else "containers"][0]


def test_the_checks_can_fail():
    """An inline DATABASE_URL, a missing required variable, a secret in the ConfigMap: each is named."""
    objects = overlay("production")
    web = _container(objects, "web")
    web["env"] = [e for e in web["env"] if e["name"] != "DATABASE_URL"] + [
        {"name": "DATABASE_URL", "value": "postgresql://pksweb:hunter2@db/pksweb"}]
    migrate = _container(objects, "worker", init=True)
    migrate["env"] = [e for e in migrate["env"] if e["name"] != "PKSWEB_CREDENTIAL_KEYS"]
    of_kind(objects, "ConfigMap")[0]["data"]["REDIS_PASSWORD"] = "hunter2"
    problems = "\n".join(configuration_problems(objects))
    assert "Deployment/web container web: DATABASE_URL must come from pksweb-secrets" in problems
    assert "Deployment/web container web writes ['DATABASE_URL'] inline" in problems
    assert "Deployment/worker container migrate lacks ['PKSWEB_CREDENTIAL_KEYS']" in problems
    assert "holds ['REDIS_PASSWORD']" in problems


@pytest.mark.parametrize("name", OVERLAYS)
def test_the_configuration_is_production_shaped(name):
    objects = overlay(name)
    data = of_kind(objects, "ConfigMap")[0]["data"]
    assert data["PKSWEB_DATA_DIR"] == "/data" and data["PKSWEB_LOG_FORMAT"] == "json"
    hosts = data["ALLOWED_HOSTS"].split(",")
    assert "localhost" in hosts  # what the kubelet's probes ask for
    ingresses = of_kind(objects, "Ingress")
    ingress_hosts = [rule["host"] for ingress in ingresses for rule in ingress["spec"]["rules"]]
    assert len(ingresses) == (0 if name == "trial" else 1)
    assert set(ingress_hosts) <= set(hosts)
    assert {f"https://{host}" for host in ingress_hosts} <= set(data["CSRF_TRUSTED_ORIGINS"].split(","))
    assert data["PKSWEB_SECURE_COOKIES"] == ("0" if name == "trial" else "1")
