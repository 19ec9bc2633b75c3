"""The REST API: token and session auth, scoping, announcements, schema."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from pksweb import services
from pksweb.events import publish
from pksweb.models import Event
from tests.factories import TenantFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def api():
    return APIClient()


def token_client(user) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {services.api_token_get_or_create(user=user)}")
    return client


def test_api_refuses_anonymous_with_401(api):
    response = api.get("/api/events/")
    assert response.status_code == 401
    assert response.json()["detail"] == "Authentication credentials were not provided."


def test_bad_token_is_refused(api):
    api.credentials(HTTP_AUTHORIZATION="Token not-a-real-token")
    response = api.get("/api/me/")
    assert response.status_code == 401 and response.json()["detail"] == "Invalid token."


def test_token_authenticates(tenant_admin):
    response = token_client(tenant_admin).get("/api/me/")
    assert response.status_code == 200
    assert response.json() == {"id": tenant_admin.pk, "username": "acme-admin", "role": "tenant-admin", "tenants": ["acme-bank"]}


def test_session_authenticates(api, operator):
    api.force_login(operator)
    assert api.get("/api/me/").json()["role"] == "operator"


def test_event_list_is_scoped_and_filterable(tenant_admin, tenant, other_tenant):
    publish(kind="system.notice", message="fleet")
    mine = publish(kind="tenant.notice", message="acme", tenant=tenant)
    publish(kind="tenant.notice", message="globex", tenant=other_tenant)
    later = publish(kind="tenant.other", message="acme later", tenant=tenant)
    client = token_client(tenant_admin)
    body = client.get("/api/events/").json()
    assert [e["message"] for e in body["results"]] == ["acme later", "acme"]
    after = client.get("/api/events/", {"after": mine.pk}).json()
    assert [e["id"] for e in after["results"]] == [later.pk]
    kinds = client.get("/api/events/", {"kind": "tenant.notice"}).json()
    assert [e["id"] for e in kinds["results"]] == [mine.pk]


def test_event_detail_of_another_tenant_is_404(tenant_admin, other_tenant):
    hidden = publish(kind="tenant.notice", message="globex", tenant=other_tenant)
    assert token_client(tenant_admin).get(f"/api/events/{hidden.pk}/").status_code == 404


def test_event_list_query_count_is_constant(operator, django_assert_max_num_queries):
    client = token_client(operator)
    for i in range(3):
        publish(kind="tenant.notice", message=f"x{i}", tenant=TenantFactory())
    with django_assert_max_num_queries(6) as few:
        client.get("/api/events/")
    for i in range(40):
        publish(kind="tenant.notice", message=f"y{i}", tenant=TenantFactory())
    with django_assert_max_num_queries(len(few.captured_queries)):
        assert client.get("/api/events/").status_code == 200


def test_operator_posts_announcement(operator, tenant, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = token_client(operator).post("/api/announcements/", {"message": "hello", "tenant": "acme-bank"}, format="json")
    assert response.status_code == 201
    assert response.json()["tenant"] == "acme-bank" and response.json()["kind"] == "system.announcement"
    assert Event.objects.filter(kind="system.announcement", tenant=tenant).count() == 1


@pytest.mark.parametrize(
    ("payload", "field", "text"),
    [
        ({}, "message", "This field is required."),
        ({"message": "   "}, "message", "This field may not be blank."),
        ({"message": "x" * 501}, "message", "Ensure this field has no more than 500 characters."),
        ({"message": "hi", "tenant": "nobody"}, "tenant", "Object with name=nobody does not exist."),
    ],
)
def test_bad_announcement_gets_field_messages_and_persists_nothing(operator, payload, field, text):
    response = token_client(operator).post("/api/announcements/", payload, format="json")
    assert response.status_code == 400
    assert response.json()[field] == [text]
    assert not Event.objects.filter(kind="system.announcement").exists()


@pytest.mark.parametrize("role", ["approver", "viewer", "tenant-admin"])
def test_only_operators_post_announcements(users, role):
    response = token_client(users[role]).post("/api/announcements/", {"message": "sneaky"}, format="json")
    assert response.status_code == 403
    assert not Event.objects.filter(kind="system.announcement").exists()


def test_tenants_are_scoped(tenant_admin, other_tenant):
    names = [t["name"] for t in token_client(tenant_admin).get("/api/tenants/").json()["results"]]
    assert names == ["acme-bank"]


def test_openapi_schema_describes_every_endpoint(operator):
    client = token_client(operator)
    response = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200
    paths = response.json()["paths"]
    for path in ["/api/events/", "/api/events/{id}/", "/api/announcements/", "/api/me/", "/api/tenants/"]:
        assert path in paths
    assert "requestBody" in paths["/api/announcements/"]["post"]
    assert "201" in paths["/api/announcements/"]["post"]["responses"]


def test_api_docs_are_served_without_a_cdn(operator):
    client = APIClient()
    client.force_login(operator)
    page = client.get("/api/docs/").content.decode()
    assert "swagger-ui" in page and "cdn" not in page.lower()
