"""Reading what the official ``kubernetes`` client got from a (sandbox) API server."""

from __future__ import annotations

import json

from kubernetes import client
from kubernetes.client.exceptions import ApiException


def status_of(exc: ApiException) -> dict:
    body = json.loads(exc.body)
    assert body["kind"] == "Status" and body["apiVersion"] == "v1" and body["status"] == "Failure"
    assert body["code"] == exc.status
    return body


def core(kube) -> client.CoreV1Api:
    return client.CoreV1Api(kube)
