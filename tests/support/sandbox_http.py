"""A sandbox process's clusters, read and steered over HTTP with the kubeconfigs it wrote (the test process does not
hold the sandbox's objects when the sandbox runs in a process of its own, as ``Stack.sandbox`` starts it)."""

from __future__ import annotations

import base64
import ssl
from pathlib import Path
from typing import Any

import httpx
import yaml


def sandbox_client(kubeconfig: Path) -> httpx.Client:
    """An HTTP client to the cluster's API server, as its admin (the sandbox's CA verifies the server)."""
    config = yaml.safe_load(kubeconfig.read_text())
    cluster = config["clusters"][0]["cluster"]
    ca = cluster.get("certificate-authority-data")
    verify: ssl.SSLContext | bool = ssl.create_default_context(cadata=base64.b64decode(ca).decode()) if ca else True
    return httpx.Client(base_url=cluster["server"], headers={"Authorization": f"Bearer {config['users'][0]['user']['token']}"},
                        verify=verify, timeout=10)


def set_faults(kubeconfig: Path, **faults: Any) -> None:
    """Set the named faults of the cluster (``frozen_pdbs=["*"]``: no PodDisruptionBudget allows an eviction)."""
    with sandbox_client(kubeconfig) as client:
        client.put("/sandbox/faults", json=faults).raise_for_status()


def upgrades_per_node(kubeconfig: Path, version: str) -> dict[str, tuple[bool, int]]:
    """Each node: (at ``version`` and schedulable, how many times the sandbox replaced it: its NodeNotReady events)."""
    with sandbox_client(kubeconfig) as client:
        nodes = client.get("/api/v1/nodes").raise_for_status().json()["items"]
        events = client.get("/api/v1/namespaces/default/events").raise_for_status().json()["items"]
    return {node["metadata"]["name"]: (
        node["status"]["nodeInfo"]["kubeletVersion"] == f"v{version}" and not node["spec"].get("unschedulable"),
        sum(1 for e in events if e["involvedObject"]["name"] == node["metadata"]["name"] and e["reason"] == "NodeNotReady"))
        for node in nodes}
