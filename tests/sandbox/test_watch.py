"""Conformance of the sandbox's watches: resume from a resourceVersion, replay, selectors, 410 Expired, bookmarks."""

from __future__ import annotations

import json
import time

import pytest
from kubernetes import client, config, watch
from kubernetes.client.exceptions import ApiException

from tests.support.kube_api import core

# ---- watch ------------------------------------------------------------------------------------


def test_watch_sees_changes_and_resumes(kube):
    v1 = core(kube)
    start_rv = v1.list_namespaced_config_map("default").metadata.resource_version
    v1.create_namespaced_config_map("default", client.V1ConfigMap(metadata=client.V1ObjectMeta(name="w1")))
    v1.patch_namespaced_config_map("w1", "default", {"data": {"k": "v"}})
    v1.delete_namespaced_config_map("w1", "default")
    events = list(watch.Watch().stream(v1.list_namespaced_config_map, "default", resource_version=start_rv, timeout_seconds=1))
    assert [(e["type"], e["object"].metadata.name) for e in events] == [("ADDED", "w1"), ("MODIFIED", "w1"), ("DELETED", "w1")]
    assert isinstance(events[0]["object"], client.V1ConfigMap)
    assert events[1]["object"].data == {"k": "v"}
    resumed = list(watch.Watch().stream(v1.list_namespaced_config_map, "default",
                                        resource_version=events[1]["object"].metadata.resource_version, timeout_seconds=1))
    assert [e["type"] for e in resumed] == ["DELETED"]


def test_watch_without_version_lists_current_objects_first(kube):
    stream = watch.Watch().stream(core(kube).list_namespace, timeout_seconds=1)
    names = [e["object"].metadata.name for e in stream if e["type"] == "ADDED"]
    assert {"default", "kube-system", "demo"} <= set(names)


def test_watch_live_events_with_label_selector(kube, sandbox_cluster):
    import threading

    v1 = core(kube)
    w = watch.Watch()
    seen = []
    rv = v1.list_namespaced_config_map("default").metadata.resource_version

    def consume():
        for event in w.stream(v1.list_namespaced_config_map, "default", label_selector="watch=me",
                              resource_version=rv, timeout_seconds=3):
            seen.append((event["type"], event["object"].metadata.name))
            if len(seen) == 2:
                w.stop()

    thread = threading.Thread(target=consume)
    thread.start()
    time.sleep(0.2)
    v1.create_namespaced_config_map("default", client.V1ConfigMap(metadata=client.V1ObjectMeta(name="ignored")))
    v1.create_namespaced_config_map("default", client.V1ConfigMap(metadata=client.V1ObjectMeta(name="live", labels={"watch": "me"})))
    v1.patch_namespaced_config_map("live", "default", {"metadata": {"labels": {"watch": None}}})
    thread.join(5)
    assert seen == [("ADDED", "live"), ("DELETED", "live")]  # leaving the selector reads as DELETED


def test_watch_too_old_version_gets_410(sandbox):
    cluster = sandbox.add_cluster("short-memory", nodes=1, pods_per_node=0, watch_log_size=50)
    v1 = core(config.new_client_from_config_dict(sandbox.kubeconfig("short-memory")))
    old_rv = v1.list_namespaced_config_map("default").metadata.resource_version
    for i in range(cluster.store.log.maxlen + 5):
        cluster.create("configmaps", {"metadata": {"name": f"fill-{i}"}}, "default")
    with pytest.raises(ApiException) as exc:
        list(watch.Watch().stream(v1.list_namespaced_config_map, "default", resource_version=old_rv, timeout_seconds=1))
    assert exc.value.status == 410 and "too old resource version" in exc.value.reason


def test_watch_bookmarks(kube, sandbox, sandbox_cluster, sandbox_http):
    url = f"{sandbox.server_url(sandbox_cluster.name)}/api/v1/namespaces/default/configmaps"
    rv = core(kube).list_namespaced_config_map("default").metadata.resource_version
    with sandbox_http.stream("GET", url, params={"watch": "true", "allowWatchBookmarks": "true", "resourceVersion": rv,
                                          "timeoutSeconds": "1"},
                      headers={"Authorization": f"Bearer {sandbox_cluster.token}"}) as response:
        lines = [json.loads(line) for line in response.iter_lines() if line]
    assert lines and lines[0]["type"] == "BOOKMARK" and lines[0]["object"]["metadata"]["resourceVersion"]
