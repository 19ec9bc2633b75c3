"""Every API operation fuzzed from the OpenAPI schema pksweb serves (schemathesis).

For each generated request, as an operator (the role that may do the most): no 5xx;
every 4xx answers JSON with a message a person can read; and a refused request leaves
every table exactly as it was. Half of the examples aim at objects that exist (a
registered sandbox cluster, a tenant, a plan), so validation past the 404 is reached too.
"""

from __future__ import annotations

import hashlib
import json
import random

import pytest
import schemathesis
from django.apps import apps
from django.core.handlers.wsgi import WSGIHandler
from hypothesis import HealthCheck, settings

from pksweb import services as core_services
from tests.factories import TenantFactory
from upgrades.models import UpgradePlan

pytestmark = pytest.mark.django_db(transaction=False)

# Tables a request may touch without persisting anything a person asked for.
UNTRACKED = {"django_session", "axes_accesslog", "axes_accessattempt", "axes_accessfailurelog", "pksweb_lease"}


def _digest() -> dict[str, str]:
    """A fingerprint of every row of every table pksweb owns."""
    prints = {}
    for model in apps.get_models():
        table = model._meta.db_table
        if table in UNTRACKED or model._meta.proxy:
            continue
        rows = sorted(repr(row) for row in model.objects.values_list())
        prints[table] = hashlib.sha256("\n".join(rows).encode()).hexdigest()
    return prints


def _messages(body) -> list[str]:
    if isinstance(body, str):
        return [body] if body.strip() else []
    if isinstance(body, dict):
        return [m for value in body.values() for m in _messages(value)]
    if isinstance(body, list):
        return [m for value in body for m in _messages(value)]
    return []


@pytest.fixture
def known(registered, operator):
    tenant = TenantFactory(name="fuzz-tenant")
    plan = UpgradePlan.objects.create(name="fuzz-plan", target_version="1.31.2", waves=[[registered.pk]], author=operator)
    return {"clusters": registered.pk, "tenants": tenant.pk, "upgrade-plans": plan.pk}


def _served_schema() -> schemathesis.BaseSchema:
    """The schema /api/schema/ serves, generated the same way (collection has no request to make)."""
    from drf_spectacular.generators import SchemaGenerator
    from drf_spectacular.renderers import OpenApiJsonRenderer

    raw = json.loads(OpenApiJsonRenderer().render(SchemaGenerator().get_schema(request=None, public=True)))
    loaded = schemathesis.openapi.from_dict(raw)
    loaded.app = WSGIHandler()
    return loaded


schema = _served_schema()


@schema.parametrize()
@settings(max_examples=12, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.filter_too_much])
def test_api_operation_never_fails_and_refusals_persist_nothing(case, known, operator):
    token = core_services.api_token_get_or_create(user=operator)
    picks = random.Random(repr((case.path_parameters, case.query, case.body)))
    for name in list(case.path_parameters or {}):
        if name in ("id", "pk") and picks.random() < 0.5:
            kind = case.path.strip("/").split("/")[1]
            case.path_parameters[name] = known.get(kind, case.path_parameters[name])
    before = _digest()
    response = case.call(headers={"Authorization": f"Token {token}"})
    assert response.status_code < 500, f"{case.method} {case.formatted_path}: {response.status_code}\n{response.text[:2000]}"
    if 400 <= response.status_code < 500:
        try:
            body = json.loads(response.text)
        except ValueError:
            pytest.fail(f"{case.method} {case.formatted_path} answered {response.status_code} without JSON: {response.text[:300]}")
        assert _messages(body), f"{case.method} {case.formatted_path} answered {response.status_code} with no message: {body}"
        after = _digest()
        changed = sorted(table for table in before if before[table] != after.get(table))
        assert not changed, f"{case.method} {case.formatted_path} was refused ({response.status_code}) but changed {changed}"
