"""Bad input in the forms and the API: each refused with what was wrong and how to fix it, nothing saved, never a 500."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from hypothesis import HealthCheck, example, given
from hypothesis import settings as hyp_settings
from hypothesis import strategies as st

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


# ---- JSON and YAML nested deeper than any parser here survives --------------------------------

def _json_operations() -> list[tuple[str, str]]:
    """(method, path) of every API operation that takes a JSON body, from the schema pksweb serves."""
    from drf_spectacular.generators import SchemaGenerator

    schema = SchemaGenerator().get_schema(request=None, public=True)
    return sorted((method.upper(), path) for path, operations in schema["paths"].items()
                  for method, operation in operations.items()
                  if "application/json" in operation.get("requestBody", {}).get("content", {}))


JSON_OPERATIONS = _json_operations()


def nested(depth: int, kinds: str = "[{", inner: str = '"x{[\\"]}"') -> str:
    """JSON ``depth`` levels deep, arrays and objects taking turns as ``kinds`` says; keys and the
    innermost value are strings full of brackets (which do not nest)."""
    opens = ["[" if kinds[i % len(kinds)] == "[" else '{"k]{":' for i in range(depth)]
    closes = ["]" if o == "[" else "}" for o in reversed(opens)]
    return "".join(opens) + inner + "".join(closes)


@pytest.fixture
def api_targets(registered, operator, approver, tenant):
    """Values for every path parameter, naming objects that exist (so each request gets as far as reading
    its body), and the people who may call the operations."""
    from rest_framework.test import APIClient

    plan = UpgradePlan.objects.create(name="deep", target_version="1.31.2", waves=[[registered.pk]], author=operator)
    ids = {"clusters": registered.pk, "tenants": tenant.pk, "upgrade-plans": plan.pk}
    clients = []
    for user in (operator, approver):
        client = APIClient()
        client.force_authenticate(user)
        clients.append(client)

    def url(path: str) -> str:
        collection = path.strip("/").split("/")[1]
        return (path.replace("{id}", str(ids.get(collection, 0))).replace("{node}", f"{registered.name}-w-1")
                .replace("{kind}", "cordon"))

    return {"url": url, "clients": clients}


def _refusals(api_targets, method: str, path: str, body: str) -> list:
    responses = [client.generic(method, api_targets["url"](path), body, content_type="application/json")
                 for client in api_targets["clients"]]
    assert all(r.status_code < 500 for r in responses), [(r.status_code, r.content[:300]) for r in responses]
    return responses


@pytest.mark.parametrize(("method", "path"), JSON_OPERATIONS, ids=[f"{m} {p}" for m, p in JSON_OPERATIONS])
@pytest.mark.parametrize("kinds", ["[", "{", "[{"])
def test_every_json_endpoint_refuses_deep_nesting_in_words(api_targets, method, path, kinds):
    """As whoever may call it: 10,000 levels answer 400 in JSON saying how deep, not a RecursionError (500)."""
    responses = _refusals(api_targets, method, path, nested(10_000, kinds))
    said = "The JSON body is nested 10000 levels deep; pksweb accepts at most 64."
    assert any(r.status_code == 400 and r.json() == {"detail": said} for r in responses), \
        [(r.status_code, r.content[:300]) for r in responses]


@given(depth=st.integers(min_value=1, max_value=400), kinds=st.sampled_from(["[", "{", "[{", "{[", "[[{"]),
       operation=st.sampled_from(JSON_OPERATIONS),
       inner=st.sampled_from(['"x"', '"[[[["', '"]]]}}"', '"\\"[{"', "1", "null", '"\\\\"']))
@hyp_settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_json_nesting_is_measured_exactly_and_refused_only_past_the_limit(api_targets, depth, kinds, operation, inner):
    method, path = operation
    responses = _refusals(api_targets, method, path, nested(depth, kinds, inner))
    said = f"The JSON body is nested {depth} levels deep; pksweb accepts at most 64."
    if depth > 64:
        assert any(r.status_code == 400 and r.json() == {"detail": said} for r in responses)
    else:
        assert all("levels deep" not in r.content.decode() for r in responses)


def test_an_api_body_larger_than_pksweb_reads_is_refused_in_json(operator_api, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 64 * 1024
    body = '{"message": "' + "x" * 70_000 + '"}'
    response = operator_api.generic("POST", "/api/announcements/", body, content_type="application/json")
    assert response.status_code == 413
    assert response.json()["detail"].startswith("The request body is larger than 64 KiB")


DEEP_KUBECONFIGS = {
    "flow sequences": "[" * 100_000 + "]" * 100_000,
    "flow mappings": "{a: " * 5_000 + "b" + "}" * 5_000,
    "block sequences": "- " * 5_000 + "x",
    "JSON": nested(20_000),
}


@pytest.mark.parametrize("kubeconfig", DEEP_KUBECONFIGS.values(), ids=DEEP_KUBECONFIGS.keys())
@pytest.mark.parametrize("how", ["pasted", "uploaded"])
def test_a_kubeconfig_nested_too_deep_is_refused_next_to_its_field(op, kubeconfig, how):
    from django.core.files.uploadedfile import SimpleUploadedFile

    from clusters.models import Cluster

    data = {"name": "deep"}
    if how == "pasted":
        data["kubeconfig"] = kubeconfig
    else:
        data["kubeconfig_file"] = SimpleUploadedFile("config", kubeconfig.encode())
    response = op.post(reverse("clusters:register"), data)
    assert response.status_code == 400
    html = response.content.decode()
    error = html[html.index('id="id_kubeconfig_error"'):]
    assert error.index("The kubeconfig is nested more than 64 levels deep; pksweb accepts at most 64.") < error.index("</ul>")
    assert not Cluster.objects.exists()


@pytest.mark.parametrize("kubeconfig", DEEP_KUBECONFIGS.values(), ids=DEEP_KUBECONFIGS.keys())
def test_a_kubeconfig_nested_too_deep_is_refused_by_the_api(operator_api, kubeconfig):
    response = operator_api.post("/api/clusters/", {"name": "deep", "kubeconfig": kubeconfig}, format="json")
    assert response.status_code == 400
    assert response.json() == {"kubeconfig": ["The kubeconfig is nested more than 64 levels deep; pksweb accepts at most 64."]}



# ---- pages of any size -------------------------------------------------------------------------

def _paginated_lists() -> list[str]:
    """Every list in the API that takes ?limit= (from the schema pksweb serves), with no path parameter."""
    from drf_spectacular.generators import SchemaGenerator

    schema = SchemaGenerator().get_schema(request=None, public=True)
    return sorted(path for path, operations in schema["paths"].items() if "{" not in path
                  and any(p["name"] == "limit" for p in operations.get("get", {}).get("parameters", [])))


PAGINATED = _paginated_lists()
NUMBERS = st.one_of(st.integers(min_value=-(2**70), max_value=2**70).map(str), st.text(max_size=8),
                    st.sampled_from([str(2**63), str(2**63 - 1), str(2**64), "1e30", "9" * 40]))


@hyp_settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(path=st.sampled_from(PAGINATED), limit=NUMBERS, offset=NUMBERS, who=st.sampled_from(["operator", "tenant_admin"]))
def test_a_page_of_any_size_is_a_page(operator_api, tenant_admin, registered, path, limit, offset, who):
    from rest_framework.test import APIClient

    client = operator_api
    if who == "tenant_admin":
        client = APIClient()
        client.force_authenticate(tenant_admin)
    response = client.get(path, {"limit": limit, "offset": offset})
    assert response.status_code == 200, (path, limit, offset, response.content[:300])
    assert len(response.json()["results"]) <= 500


def test_every_list_is_paginated():
    assert len(PAGINATED) >= 7, PAGINATED


# ---- ids of any text in the forms' choices ----------------------------------------------------

IDS = st.one_of(st.integers(min_value=-(2**70), max_value=2**70).map(str), st.text(max_size=12),
                st.sampled_from([str(2**63), str(2**63 - 1), "9" * 30, "１２", "1e3", " 1 "]))


@hyp_settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(target=st.sampled_from(["tenant-new", "tenant-edit", "namespace", "announce"]), value=IDS)
def test_a_chosen_id_of_any_text_is_refused_in_words(op, tenant, registered, target, value):
    """Every form that picks objects by id (clusters of a tenant, a namespace's cluster, an announcement's tenant)."""
    tenant.clusters.add(registered)
    url, data = {
        "tenant-new": (reverse("tenants:create"), tenant_form(name="fuzz-ids", clusters=[value])),
        "tenant-edit": (reverse("tenants:edit", args=[tenant.pk]), tenant_form(name=tenant.name, clusters=[value])),
        "namespace": (reverse("tenants:namespace-create", args=[tenant.pk]), {"cluster": value, "name": "fuzz-ids"}),
        "announce": (reverse("announce"), {"message": "hello", "tenant": value}),
    }[target]
    response = op.post(url, data)
    assert response.status_code < 500, (target, value)
    if target.startswith("tenant") and value.strip() != str(registered.pk):
        assert "not one of the" in response.content.decode(), (target, value)  # said in words, next to the field
    assert not Tenant.objects.filter(name="fuzz-ids").exists() or value.strip() == str(registered.pk)
    Tenant.objects.filter(name="fuzz-ids").delete()


# ---- every answer has the shape its schema gives -----------------------------------------------

def test_every_get_answers_in_the_shape_its_schema_says(operator_api, registered, tenant):
    """A list the schema calls paginated has results and count; an array is a plain list; and a one-object
    path ignores the list's filters (?name= and ?status= of the fleet answered 404 and 400 on a cluster's nodes)."""
    from drf_spectacular.generators import SchemaGenerator

    tenant.clusters.add(registered)
    schema = SchemaGenerator().get_schema(request=None, public=True)
    ids = {"clusters": registered.pk, "tenants": tenant.pk}
    checked = []
    for path, operations in schema["paths"].items():
        collection = path.strip("/").split("/")[1]
        if "get" not in operations or path.count("{") > 1 or ("{" in path and collection not in ids):
            continue
        answer = operations["get"]["responses"]["200"]["content"]["application/json"]["schema"]
        url = path.replace("{id}", str(ids.get(collection, 0)))
        response = operator_api.get(url, {"name": "no-such-name", "status": "no-such-status", "limit": 2} if "{" in path else {"limit": 2})
        if response.status_code == 400 and "{" not in path:
            response = operator_api.get(url, {"limit": 2})  # the list's own filters may refuse a status that is none
        assert response.status_code == 200, (url, response.status_code, response.content[:300])
        body = response.json()
        if answer.get("$ref", "").split("/")[-1].startswith("Paginated"):
            assert isinstance(body, dict) and {"count", "results"} <= set(body) and len(body["results"]) <= 2, url
        elif answer.get("type") == "array":
            assert isinstance(body, list), url
        checked.append(url)
    assert len(checked) >= 10, checked


@hyp_settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(before=st.one_of(st.text(max_size=30), st.integers(min_value=-(2**70), max_value=2**70).map(str),
                        st.text(st.characters(categories=["Nd", "No"]), min_size=1, max_size=5)))
@example(before="²")
@example(before=str(2**64))
def test_the_activity_pages_cursor_takes_any_text(op, before):
    """``?before=`` is an event id: any other text (other scripts' digits, past a bigint) shows the newest page."""
    answer = op.get(reverse("activity"), {"before": before}, HTTP_HX_REQUEST="true")
    assert answer.status_code == 200


@pytest.mark.django_db
@hyp_settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.text(max_size=20), path=st.sampled_from(["/api/me/notifications/", "/api/notification-channels/",
                                                         "/api/tenants/", "/api/clusters/"]))
@example(text="\ud800", path="/api/me/notifications/")  # seen: a 500 (UnicodeEncodeError) before the parser refused it
def test_json_strings_of_any_code_points_get_words_never_a_500(operator, text, path):
    """Any string, lone surrogates included (JSON's "\\ud800" escape), in any field the API reads."""
    import json

    client = Client()
    client.force_login(operator)
    body = json.dumps({"subscriptions": [{"kind": text, "channel": 1}], "name": text, "url": text, "server": text})
    for method in (client.post, client.put):
        answer = method(path, data=body, content_type="application/json")
        assert answer.status_code < 500, (path, text, answer.content[:300])
        if any(0xD800 <= ord(ch) <= 0xDFFF for ch in text) and answer.status_code != 405:  # a method it takes
            assert answer.status_code == 400 and b"lone surrogate" in answer.content, answer.content[:300]
