"""Every object deploy/ renders is valid Kubernetes: the OpenAPI schemas of 1.31 (the oldest version the manifests
promise: the kubelet's preStop sleep is on by default from 1.30) and of the newest version kubernetes-validate
ships, in strict mode, so a misspelt or unknown field fails instead of being dropped by the API server."""

from __future__ import annotations

import kubernetes_validate
import pytest

from pksweb.management.commands import deploysecret
from tests.support.manifests import OVERLAYS, base, find, overlay

OLDEST = "1.31"
VERSIONS = (OLDEST, kubernetes_validate.latest_version())


def _validate(obj: dict, version: str) -> None:
    # SchemaNotFoundError (a kind or apiVersion the release does not know) fails the test too.
    kubernetes_validate.validate(obj, version, strict=True)


def test_the_newest_schema_is_newer_than_the_oldest_promised():
    newest = tuple(int(part) for part in VERSIONS[1].split(".")[:2])
    assert newest >= (1, 37), f"kubernetes-validate ships {VERSIONS[1]} at newest"


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("name", OVERLAYS)
def test_every_rendered_object_validates(name, version):
    objects = overlay(name)
    for obj in objects:
        try:
            _validate(obj, version)
        except kubernetes_validate.ValidationError as exc:
            path = ".".join(str(part) for part in exc.path)
            pytest.fail(f"{obj['kind']}/{obj['metadata']['name']} of {name} is not valid for {version}: {path}: {exc.message}")


@pytest.mark.parametrize("version", VERSIONS)
def test_the_printed_secret_and_namespace_validate(version):
    production = deploysecret.secret_values(trial=False, database_url="postgresql://u:p@db:5432/pksweb",
                                            redis_url="redis://:p@redis:6379/0")
    for values in (production, deploysecret.secret_values(trial=True)):
        for obj in deploysecret.manifests(namespace="pksweb", values=values):
            _validate(obj, version)


@pytest.mark.parametrize("version", VERSIONS)
def test_strict_validation_refuses_an_unknown_field(version):
    """The check can fail: a field Kubernetes does not have (here a typo of readinessProbe) is refused."""
    web = find(base(), "Deployment", "web")
    web["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {"httpGet": {"path": "/readyz", "port": 8000}}
    with pytest.raises(kubernetes_validate.ValidationError):
        _validate(web, version)
