"""HTML views: sign in/out, the activity page, announcements, health endpoints."""

from __future__ import annotations

import json

import pytest
from django.urls import reverse

from pksweb.events import publish
from pksweb.models import Event
from tests.factories import TenantFactory

pytestmark = pytest.mark.django_db


def test_pages_need_sign_in(client):
    response = client.get(reverse("activity"))
    assert response.status_code == 302
    assert response.url.startswith(reverse("login"))


def test_sign_in_with_wrong_password_says_so(client, operator):
    response = client.post(reverse("login"), {"username": "op", "password": "wrong"})
    assert response.status_code == 200
    assert "Please enter a correct username and password" in response.content.decode()
    assert "_auth_user_id" not in client.session


def test_sign_in_and_out(client, operator, password):
    response = client.post(reverse("login"), {"username": "op", "password": password})
    assert response.status_code == 302 and response.url == reverse("home")
    assert client.get(reverse("home")).url == reverse("clusters:fleet")
    page = client.get(reverse("activity")).content.decode()
    assert "op · Operator" in page
    assert client.post(reverse("logout")).status_code == 302
    assert client.get(reverse("activity")).status_code == 302


def test_navigation_by_role(client, operator, tenant_admin):
    client.force_login(operator)
    page = client.get(reverse("activity")).content.decode()
    assert ">Tenants<" in page and 'id="announce-form"' in page
    client.force_login(tenant_admin)
    page = client.get(reverse("activity")).content.decode()
    assert ">My tenants<" in page and 'id="announce-form"' not in page


def test_every_htmx_request_carries_the_csrf_token(client, operator):
    client.force_login(operator)
    page = client.get(reverse("activity")).content.decode()
    assert '<body hx-headers=\'{"X-CSRFToken": "' in page
    assert "/static/django_htmx/htmx-2.min.js" in page and "/static/django_htmx/ext/hx-ws-2.min.js" in page
    assert "https://" not in page  # nothing from the internet


def test_activity_shows_only_what_the_user_may_see(client, tenant_admin, tenant, other_tenant):
    publish(kind="system.notice", message="fleet secret")
    publish(kind="tenant.notice", message="acme news", tenant=tenant)
    publish(kind="tenant.notice", message="globex news", tenant=other_tenant)
    client.force_login(tenant_admin)
    page = client.get(reverse("activity")).content.decode()
    assert "acme news" in page
    assert "globex news" not in page and "fleet secret" not in page


def test_activity_cursor_is_the_newest_event(client, operator):
    events = [publish(kind="system.notice", message=f"n{i}") for i in range(3)]
    client.force_login(operator)
    page = client.get(reverse("activity")).content.decode()
    assert f'id="event-cursor" data-last="{events[-1].pk}"' in page


def test_activity_query_count_does_not_grow_with_events(client, operator, django_assert_max_num_queries):
    client.force_login(operator)
    for i in range(5):
        publish(kind="tenant.notice", message=f"a{i}", tenant=TenantFactory())
    with django_assert_max_num_queries(8) as few:
        client.get(reverse("activity"))
    for i in range(60):
        publish(kind="tenant.notice", message=f"b{i}", tenant=TenantFactory())
    with django_assert_max_num_queries(len(few.captured_queries)):
        response = client.get(reverse("activity"))
    assert "Older events" in response.content.decode()


def test_older_events_partial_for_htmx(client, operator):
    events = [publish(kind="system.notice", message=f"e{i}") for i in range(60)]
    client.force_login(operator)
    response = client.get(reverse("activity"), {"before": events[10].pk}, HTTP_HX_REQUEST="true")
    body = response.content.decode()
    assert "<html" not in body
    assert f'id="event-{events[9].pk}"' in body and f'id="event-{events[10].pk}"' not in body


def test_operator_announces_with_htmx(client, operator, django_capture_on_commit_callbacks):
    client.force_login(operator)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("announce"), {"message": "  maintenance at 22:00  "}, HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    assert 'id="announce-form"' in response.content.decode() and "Posted." in response.content.decode()
    event = Event.objects.get(kind="system.announcement")
    assert event.message == "maintenance at 22:00" and event.actor == operator


def test_empty_announcement_is_refused_with_a_message(client, operator):
    client.force_login(operator)
    response = client.post(reverse("announce"), {"message": "   "}, HTTP_HX_REQUEST="true")
    assert "Write the announcement: it cannot be empty." in response.content.decode()
    assert not Event.objects.filter(kind="system.announcement").exists()


def test_announcement_without_javascript_redirects(client, operator):
    client.force_login(operator)
    response = client.post(reverse("announce"), {"message": "plain form"})
    assert response.status_code == 302 and response.url == reverse("activity")
    bad = client.post(reverse("announce"), {"message": ""})
    assert bad.status_code == 400 and "cannot be empty" in bad.content.decode()


@pytest.mark.parametrize("role", ["approver", "viewer", "tenant-admin"])
def test_only_operators_announce(client, users, role):
    client.force_login(users[role])
    response = client.post(reverse("announce"), {"message": "sneaky"})
    assert response.status_code == 403
    assert not Event.objects.filter(kind="system.announcement").exists()


def test_tenant_pages_are_scoped(client, tenant_admin, tenant, other_tenant):
    client.force_login(tenant_admin)
    assert client.get(reverse("tenants:list")).url == reverse("tenants:detail", args=[tenant.pk])  # lands on its tenant
    listing = client.get(reverse("tenants:list"), {"all": "1"}).content.decode()
    assert "acme-bank" in listing and "globex-insurance" not in listing
    assert client.get(reverse("tenants:detail", args=[tenant.pk])).status_code == 200
    assert client.get(reverse("tenants:detail", args=[other_tenant.pk])).status_code == 404


def test_healthz(client):
    response = client.get("/healthz")
    assert response.status_code == 200 and response.json() == {"status": "alive"}


def test_readyz_when_everything_works(client):
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json()["checks"] == {"database": "ok", "channel_layer": "ok", "broker": "ok"}


def test_readyz_names_the_broken_dependency(client, settings):
    dead = "redis://127.0.0.1:1/0"  # nothing listens on port 1
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer", "CONFIG": {"hosts": [dead]}}}
    settings.CELERY_BROKER_URL = dead
    response = client.get("/readyz")
    assert response.status_code == 503
    body = json.loads(response.content)
    assert body["failing"] == ["channel_layer", "broker"]
    assert body["checks"]["database"] == "ok"
    assert "Redis" in body["checks"]["channel_layer"] and "broker" in body["checks"]["broker"]
    # Anyone may ask: the answer names the part, never its address or the driver's words (the log has those).
    assert "127.0.0.1" not in response.content.decode() and ":1" not in response.content.decode()


def test_sign_in_locks_after_five_failures_whatever_the_password(db, operator):
    from django.test import Client

    operator.set_password("the-right-passphrase")
    operator.save()
    client = Client()
    for _ in range(4):
        wrong = client.post(reverse("login"), {"username": operator.username, "password": "guess"})
        assert wrong.status_code == 200 and 'id="login-error"' in wrong.content.decode()
    fifth = client.post(reverse("login"), {"username": operator.username, "password": "guess"})
    assert fifth.status_code == 429
    locked = client.post(reverse("login"), {"username": operator.username, "password": "the-right-passphrase"})
    assert locked.status_code == 429 and 'id="locked-out"' in locked.content.decode()
    assert "locked for 15 min;" in locked.content.decode()  # in words, not PT15M
    assert "_auth_user_id" not in client.session
    other = Client().post(reverse("login"), {"username": "nobody-else", "password": "guess"})
    assert other.status_code == 200  # other usernames are not locked


def test_security_headers_and_no_inline_script(db, operator):
    import re
    from pathlib import Path

    from django.conf import settings
    from django.test import Client

    client = Client()
    client.force_login(operator)
    response = client.get("/clusters/")
    policy = response["Content-Security-Policy"]
    script_src = re.search(r"script-src ([^;]*)", policy).group(1)
    assert script_src.strip() == "'self'" and "frame-ancestors 'none'" in policy
    assert response["X-Frame-Options"] == "DENY" and response["X-Content-Type-Options"] == "nosniff"
    # What the policy forbids must not be in any template: inline scripts or on* handlers.
    templates = sorted(Path(settings.TEMPLATES[0]["DIRS"][0]).rglob("*.html"))
    assert len(templates) > 20, templates  # the templates are where the settings look for them
    for path in templates:
        text = path.read_text()
        assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", text), f"inline script in {path}"
        assert not re.search(r"\son[a-z]+\s*=", text), f"inline event handler in {path}"


def test_every_state_changing_request_needs_the_csrf_token(db, operator):
    """Every route in the URL configuration, plain and htmx: a session POST without the token is refused."""
    from django.test import Client
    from django.urls import get_resolver, reverse

    from tests.support.routes import walk

    client = Client(enforce_csrf_checks=True)
    client.force_login(operator)
    routes = walk(get_resolver())
    assert len(routes) > 30
    for name, params in routes:
        fill = {"kind": "drain", "action": "pause"}
        path = reverse(name, kwargs={p: fill.get(p, "1" if p in ("pk", "id") or p.endswith("_id") else "x") for p in params})
        for headers in ({}, {"HTTP_HX_REQUEST": "true"}):
            response = client.post(path, {"message": "x"}, **headers)
            assert response.status_code == 403, (path, headers, response.status_code)
    token = client.get("/activity/").cookies["csrftoken"].value
    ok = client.post(reverse("announce"), {"message": "with the token"}, HTTP_HX_REQUEST="true", HTTP_X_CSRFTOKEN=token)
    assert ok.status_code in (200, 302), ok.status_code
