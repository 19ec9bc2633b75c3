"""Bad input in the forms: each refused with what was wrong and how to fix it, nothing saved, never a 500."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from tenants.models import Tenant
from upgrades.models import UpgradePlan

pytestmark = pytest.mark.django_db


@pytest.fixture
def op(operator):
    client = Client()
    client.force_login(operator)
    return client


def tenant_form(**changes):
    base = {"name": "acme-retail", "display_name": "Acme Retail", "isolation": "shared", "max_namespaces": 5,
            "pod_security": "restricted", "quota_cpu": "8", "quota_memory": "16Gi", "quota_pods": "100", "quota_storage": "100Gi",
            "quota_load_balancers": 0, "limit_cpu": "500m", "limit_memory": "512Mi", "request_cpu": "100m",
            "request_memory": "128Mi", "allow_same_namespace": "on", "allow_dns": "on"}
    return {**base, **changes}


@pytest.mark.parametrize(("changes", "says"), [
    ({"name": "x" * 300}, "at most"),
    ({"name": "Acme_Retail!"}, "lower-case letters"),
    ({"name": "-acme"}, "lower-case letters"),
    ({"quota_cpu": "eight cores"}, "quantity"),
    ({"quota_memory": "16 GB"}, "quantity"),
    ({"limit_cpu": "1.2.3"}, "quantity"),
])
def test_tenant_form_refuses_in_words(op, changes, says):
    response = op.post(reverse("tenants:create"), tenant_form(**changes), HTTP_HX_REQUEST="true")
    assert response.status_code in (200, 400)
    assert says in response.content.decode().lower() or says in response.content.decode()
    assert not Tenant.objects.filter(name=tenant_form(**changes)["name"]).exists()


def test_the_valid_tenant_form_is_accepted(op):
    response = op.post(reverse("tenants:create"), tenant_form())
    assert response.status_code in (200, 302) and Tenant.objects.filter(name="acme-retail").exists()


@pytest.mark.parametrize(("changes", "says"), [
    ({"target_version": "latest"}, "is not a Kubernetes version"),
    ({"target_version": "1.31"}, "is not a Kubernetes version"),
    ({"name": "p" * 300}, "at most 200"),
    ({"waves": "no-such-cluster"}, "no cluster is called"),
    ({"window_start": "2026-12-01T10:00", "window_end": "2026-12-01T09:00"}, "must end after it starts"),
    ({"drain_timeout_seconds": "3"}, "greater than or equal to 10"),
    ({"max_unavailable": "0"}, "greater than or equal to 1"),
])
def test_plan_form_refuses_in_words(op, registered, changes, says):
    data = {"name": "to 1.31", "target_version": "1.31.2", "waves": registered.name, "max_unavailable": 1,
            "drain_timeout_seconds": 300, "node_ready_timeout_seconds": 600, "health_gate": "on", "soak_seconds": 0, "quorum": 1,
            **changes}
    response = op.post(reverse("upgrades:create"), data)
    assert response.status_code in (200, 400), response.status_code
    assert says in response.content.decode()
    assert not UpgradePlan.objects.exists()


def test_a_window_in_the_past_order_is_refused_by_the_api_too(operator, registered):
    from rest_framework.test import APIClient

    api = APIClient()
    api.force_authenticate(operator)
    now = timezone.now()
    response = api.post("/api/upgrade-plans/", {"name": "p", "target_version": "1.31.2", "waves": [[registered.pk]],
                                                "window_start": now.isoformat(), "window_end": (now - timedelta(hours=1)).isoformat()},
                        format="json")
    assert response.status_code == 400 and "must end after it starts" in response.content.decode()
    assert not UpgradePlan.objects.exists()
