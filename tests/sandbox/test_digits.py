"""Numbers in a request's query are ASCII digits: other scripts' digits (``²``, ``١``) are not numbers the
sandbox acts on, and never crash it (``int('²')`` raises where ``'²'.isdigit()`` is True)."""

from __future__ import annotations

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from sandbox.validation import upgrade_version

FOREIGN_DIGITS = st.text(st.characters(categories=["Nd", "No"]).filter(lambda c: not c.isascii()), min_size=1, max_size=3)


@given(st.text(max_size=30))
def test_an_upgrade_version_is_ascii(text):
    version = upgrade_version(text)
    assert version is None or (version.isascii() and all(part.isdigit() for part in version.split(".")))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(value=FOREIGN_DIGITS, parameter=st.sampled_from(["limit", "resourceVersion", "timeoutSeconds"]))
@example(value="²", parameter="limit")
def test_foreign_digits_in_a_list_query_are_answered_not_crashed(sandbox, sandbox_cluster, sandbox_http, value, parameter):
    base = sandbox.server_url(sandbox_cluster.name)
    answer = sandbox_http.get(f"{base}/api/v1/namespaces/default/pods", params={parameter: value},
                              headers={"Authorization": f"Bearer {sandbox_cluster.token}"})
    assert answer.status_code < 500 and answer.headers["content-type"].startswith("application/json"), answer.text
