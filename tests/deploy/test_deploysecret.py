"""``manage.py deploysecret`` prints the Namespace and a Secret with fresh keys that the manifests' references
find, so ``deploysecret --trial | kubectl create -f -`` then ``kubectl apply -k deploy/overlays/trial`` works."""

from __future__ import annotations

import io
from urllib.parse import urlsplit

import pytest
import yaml
from cryptography.fernet import Fernet
from django.core.management import CommandError, call_command

from tests.support.manifests import base, find, overlay, workloads
from tests.support.pod_security import containers

PRODUCTION = ["--database-url", "postgresql://pksweb:pw@db.example:5432/pksweb", "--redis-url", "rediss://:pw@redis.example:6380/0"]


def _printed(*args: str) -> list[dict]:
    out = io.StringIO()
    call_command("deploysecret", *args, stdout=out)
    return list(yaml.safe_load_all(out.getvalue()))


def _secret(objects: list[dict]) -> dict[str, str]:
    [secret] = [o for o in objects if o["kind"] == "Secret"]
    return secret["stringData"]


def _references(objects: list[dict]) -> set[tuple[str, str]]:
    """Every (Secret, key) a container reads that it cannot do without."""
    found = set()
    for _, _, template in workloads(objects):
        for container in containers(template["spec"]):
            for var in container.get("env") or []:
                ref = (var.get("valueFrom") or {}).get("secretKeyRef")
                if ref and not ref.get("optional"):
                    found.add((ref["name"], ref["key"]))
    return found


def test_the_printed_namespace_is_the_one_the_base_creates():
    printed = _printed("--trial")
    assert [o["kind"] for o in printed] == ["Namespace", "Secret"]
    assert printed[0] == find(base(), "Namespace", "pksweb")
    assert printed[1]["metadata"]["namespace"] == "pksweb"


@pytest.mark.parametrize(("name", "args"), [("trial", ["--trial"]), ("production", PRODUCTION)])
def test_the_secret_holds_every_key_the_overlay_reads(name, args):
    printed = _printed(*args)
    secret = [o for o in printed if o["kind"] == "Secret"][0]
    objects = overlay(name)
    namespaces = {o["metadata"]["namespace"] for o in objects if "namespace" in o["metadata"]}
    assert namespaces == {secret["metadata"]["namespace"]}
    wanted = _references(objects)
    assert {ref[0] for ref in wanted} == {secret["metadata"]["name"]}
    assert {ref[1] for ref in wanted} <= set(secret["stringData"])
    # The optional one (the /metrics token) is there too.
    assert secret["stringData"]["PKSWEB_METRICS_TOKEN"]


def test_trial_urls_point_at_the_trial_services_with_the_passwords_they_read():
    values = _secret(_printed("--trial"))
    database, redis = urlsplit(values["DATABASE_URL"]), urlsplit(values["REDIS_URL"])
    objects = overlay("trial")
    postgres = find(objects, "StatefulSet", "postgres")["spec"]["template"]["spec"]["containers"][0]
    postgres_env = {e["name"]: e.get("value") for e in postgres["env"]}
    assert (database.scheme, database.hostname, database.port) == ("postgresql", "postgres", 5432)
    assert (database.username, database.password, database.path) == (
        postgres_env["POSTGRES_USER"], values["POSTGRES_PASSWORD"], "/" + postgres_env["POSTGRES_DB"])
    assert (redis.scheme, redis.hostname, redis.port, redis.password) == ("redis", "redis", 6379, values["REDIS_PASSWORD"])
    for service, port in (("postgres", 5432), ("redis", 6379)):
        assert [p["port"] for p in find(objects, "Service", service)["spec"]["ports"]] == [port]


def test_every_run_makes_fresh_keys_that_work():
    first, second = _secret(_printed("--trial")), _secret(_printed("--trial"))
    for key in ("PKSWEB_SECRET_KEY", "PKSWEB_CREDENTIAL_KEYS", "PKSWEB_METRICS_TOKEN", "POSTGRES_PASSWORD", "REDIS_PASSWORD"):
        assert first[key] != second[key]
    assert len(first["PKSWEB_SECRET_KEY"]) >= 50
    assert Fernet(first["PKSWEB_CREDENTIAL_KEYS"].encode()).decrypt(Fernet(first["PKSWEB_CREDENTIAL_KEYS"].encode()).encrypt(b"x")) == b"x"


def test_production_takes_the_urls_given():
    values = _secret(_printed(*PRODUCTION))
    assert values["DATABASE_URL"] == PRODUCTION[1] and values["REDIS_URL"] == PRODUCTION[3]
    assert "POSTGRES_PASSWORD" not in values


def test_options():
    assert [o["kind"] for o in _printed("--trial", "--without-namespace")] == ["Secret"]
    printed = _printed("--trial", "--namespace", "console")
    assert printed[0]["metadata"]["name"] == printed[1]["metadata"]["namespace"] == "console"


@pytest.mark.parametrize(("args", "message"), [
    ([], "give --database-url and --redis-url"),
    (["--database-url", "postgresql://db/pksweb"], "give --database-url and --redis-url"),
    (["--trial", "--redis-url", "redis://r:6379/0"], "--trial makes its own URLs"),
    (["--database-url", "mysql://db/pksweb", "--redis-url", "redis://r:6379/0"], "is not a postgres URL"),
    (["--database-url", "postgresql:///pksweb", "--redis-url", "redis://r:6379/0"], "is not a postgres URL with a host"),
    (["--database-url", "postgresql://db/pksweb", "--redis-url", "http://r"], "is not a redis URL"),
])
def test_wrong_arguments_are_refused_in_words(args, message):
    with pytest.raises(CommandError, match=message):
        call_command("deploysecret", *args, stdout=io.StringIO())
