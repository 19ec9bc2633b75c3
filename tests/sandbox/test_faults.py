"""The sandbox's injected faults: latency, errors, throttling, unreachable and blackholed clusters."""

from __future__ import annotations

import time

import pytest
import urllib3
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from tests.support.kube_api import core, status_of

# ---- faults --------------------------------------------------------------------------------------


def test_latency_fault_delays_answers(kube, sandbox_cluster):
    sandbox_cluster.faults.update({"latency_ms": 300})
    started = time.monotonic()
    core(kube).list_namespace()
    assert time.monotonic() - started >= 0.3


def test_error_fault_answers_500_or_503(kube, sandbox_cluster):
    sandbox_cluster.faults.update({"error_rate": 1.0})
    codes = set()
    for _ in range(12):
        with pytest.raises(ApiException) as exc:
            core(kube).list_namespace()
        codes.add(exc.value.status)
        assert status_of(exc.value)["reason"] in ("InternalError", "ServiceUnavailable")
    assert codes <= {500, 503} and codes


def test_throttle_fault_answers_429_with_retry_after(kube, sandbox_cluster):
    sandbox_cluster.faults.update({"throttle_rate": 1.0, "retry_after": 7})
    kube.configuration.retries = 0  # urllib3 would otherwise sleep out Retry-After three times
    with pytest.raises(ApiException) as exc:
        core(kube).list_node()
    assert exc.value.status == 429 and exc.value.headers["Retry-After"] == "7"
    assert status_of(exc.value)["details"]["retryAfterSeconds"] == 7


def test_unreachable_fault_drops_the_connection(kube, sandbox_cluster):
    sandbox_cluster.faults.update({"unreachable": True})
    kube.configuration.retries = 0
    with pytest.raises(urllib3.exceptions.HTTPError):
        core(kube).list_node(_request_timeout=2)


def test_blackhole_fault_times_out(kube, sandbox_cluster):
    sandbox_cluster.faults.update({"blackhole": True})
    kube.configuration.retries = 0
    started = time.monotonic()
    with pytest.raises(urllib3.exceptions.HTTPError):
        core(kube).list_node(_request_timeout=0.5)
    assert time.monotonic() - started < 3


def test_fault_endpoint_validates_and_clears(sandbox, sandbox_cluster, sandbox_http):
    url = f"{sandbox.server_url(sandbox_cluster.name)}/sandbox/faults"
    headers = {"Authorization": f"Bearer {sandbox_cluster.token}"}
    bad = sandbox_http.put(url, json={"error_rate": 2}, headers=headers)
    assert bad.status_code == 400 and "error_rate is a share between 0 and 1" in bad.json()["message"]
    assert sandbox_http.put(url, json={"nonsense": 1}, headers=headers).status_code == 400
    assert sandbox_http.put(url, json={"latency_ms": 5}, headers=headers).json()["latency_ms"] == 5
    assert sandbox_http.delete(url, headers=headers).json()["latency_ms"] == 0
    assert sandbox_http.get(url).status_code == 401


@pytest.mark.parametrize(("status", "reason"), [(404, "NotFound"), (409, "Conflict"), (502, ""), (504, "Timeout"),
                                              (401, "Unauthorized"), (503, "ServiceUnavailable")])
def test_fail_next_answers_any_error_status_with_a_status_of_its_reason(kube, sandbox_cluster, status, reason):
    sandbox_cluster.faults.update({"fail_next": 1, "fail_status": status})
    kube.configuration.retries = 0
    with pytest.raises(ApiException) as exc:
        core(kube).list_node()
    body = status_of(exc.value)
    assert exc.value.status == status and body["code"] == status and body["reason"] == reason and body["kind"] == "Status"
    assert core(kube).list_node().items  # then it answers again


def test_fault_put_merges_and_fail_status_is_an_error_code(sandbox, sandbox_cluster, sandbox_http):
    url = f"{sandbox.server_url(sandbox_cluster.name)}/sandbox/faults"
    headers = {"Authorization": f"Bearer {sandbox_cluster.token}"}
    sandbox_http.put(url, json={"latency_ms": 5}, headers=headers)
    merged = sandbox_http.put(url, json={"fail_status": 418}, headers=headers).json()
    assert (merged["latency_ms"], merged["fail_status"]) == (5, 418)  # PUT sets the named faults and keeps the others
    for bad in (200, 302, 600, 404.5, "500"):
        answer = sandbox_http.put(url, json={"fail_status": bad}, headers=headers)
        assert answer.status_code == 400 and answer.json()["reason"] == "BadRequest", bad
    assert sandbox_http.delete(url, headers=headers).json()["fail_status"] == 429


def test_request_stats_count_what_a_probe_costs(kube, sandbox, sandbox_cluster, sandbox_http):
    url = f"{sandbox.server_url(sandbox_cluster.name)}/sandbox/stats"
    headers = {"Authorization": f"Bearer {sandbox_cluster.token}"}
    sandbox_http.delete(url, headers=headers)
    core(kube).list_node(resource_version="0")
    core(kube).list_pod_for_all_namespaces()
    client.VersionApi(kube).get_code()
    assert sandbox_http.get(url, headers=headers).json() == {"node_list_rv0": 1, "pod_list_cluster_wide": 1, "version": 1}
