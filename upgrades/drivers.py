"""Drivers turn one drained node into the new version. The rollout engine owns everything else
(ordering, drains, waits, gates) and never knows which driver it drives.

Each driver's ``upgrade`` is called once per node (the engine records the intent first and
checks the node before calling again) and returns a log line.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from typing import Any

import yaml
from django.conf import settings

from clusters.kube import KubeError
from clusters.kube.credentials import credential_kubeconfig
from upgrades.choices import Driver


class DriverError(Exception):
    """The driver could not start or finish the node's replacement; the message says why."""


def _sandbox(cluster: Any, node: str, version: str) -> str:
    from clusters.services import gateway_for

    try:
        gateway_for(cluster).sandbox_upgrade_node(node, version)
    except KubeError as exc:
        raise DriverError(exc.message) from None
    return f"sandbox: replacing {node}'s kubelet with v{version}"


def _command(cluster: Any, node: str, version: str) -> str:
    """Run the cluster's argv template with a temporary KUBECONFIG for the cluster."""
    from clusters.services import cluster_credential

    if not settings.PKSWEB_ALLOW_COMMAND_DRIVER:
        raise DriverError("The command driver is off in this deployment (PKSWEB_ALLOW_COMMAND_DRIVER=1 turns it on).")
    template = cluster.upgrade_command or []
    if not template or not all(isinstance(part, str) for part in template):
        raise DriverError("The cluster's upgrade command is not set (an argv list with {cluster}, {node}, {version}).")
    argv = [part.replace("{cluster}", cluster.name).replace("{node}", node).replace("{version}", version) for part in template]
    with tempfile.TemporaryDirectory(prefix="pksweb-driver-") as folder:
        kubeconfig = os.path.join(folder, "kubeconfig")
        fd = os.open(kubeconfig, os.O_WRONLY | os.O_CREAT, 0o600)
        with os.fdopen(fd, "w") as handle:
            yaml.safe_dump(credential_kubeconfig(cluster_credential(cluster), cluster.name), handle)
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "KUBECONFIG": kubeconfig, "PKSWEB_CLUSTER": cluster.name,
               "PKSWEB_NODE": node, "PKSWEB_VERSION": version, "HOME": folder}
        try:
            result = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=settings.PKSWEB_COMMAND_DRIVER_TIMEOUT,
                                    cwd=folder)
        except FileNotFoundError:
            raise DriverError(f"The command driver cannot run {argv[0]!r}: no such program.") from None
        except subprocess.TimeoutExpired:
            raise DriverError(f"The command {' '.join(argv)} ran longer than {settings.PKSWEB_COMMAND_DRIVER_TIMEOUT} s.") from None
    output = (result.stdout + result.stderr).strip()[-4000:]
    if result.returncode != 0:
        raise DriverError(f"The command {' '.join(argv)} exited with {result.returncode}: {output}")
    return f"command: {' '.join(argv)}\n{output}"


def _system_upgrade_controller(cluster: Any, node: str, version: str) -> str:
    """A system-upgrade-controller Plan (k3s/RKE2) that targets only this node."""
    from clusters.services import gateway_for

    # One Plan per node and version: asking again (a resumed step) finds it there and is done.
    name = f"pksweb-{node}-v{version.replace('.', '-')}"[:63].rstrip("-")
    plan = {
        "apiVersion": "upgrade.cattle.io/v1", "kind": "Plan",
        "metadata": {"name": name, "namespace": "system-upgrade", "labels": {"app.kubernetes.io/managed-by": "pksweb"}},
        "spec": {"concurrency": 1, "version": f"v{version}", "serviceAccountName": "system-upgrade",
                 "nodeSelector": {"matchExpressions": [{"key": "kubernetes.io/hostname", "operator": "In", "values": [node]}]},
                 "upgrade": {"image": "rancher/k3s-upgrade"}},
    }
    try:
        gateway_for(cluster).create_custom_object("upgrade.cattle.io", "v1", "system-upgrade", "plans", plan)
    except KubeError as exc:
        if exc.status == 409:
            return f"system-upgrade-controller: Plan system-upgrade/{name} already exists for v{version}"
        raise DriverError(exc.message) from None
    return f"system-upgrade-controller: Plan system-upgrade/{name} created for v{version}"


DRIVERS = {Driver.SANDBOX: _sandbox, Driver.COMMAND: _command, Driver.SYSTEM_UPGRADE_CONTROLLER: _system_upgrade_controller}


def longest_call_seconds(cluster: Any) -> float:
    """How long one ``upgrade`` call may take beyond the API client's own timeouts."""
    return settings.PKSWEB_COMMAND_DRIVER_TIMEOUT if cluster.upgrade_driver == Driver.COMMAND else 0.0


def upgrade(cluster: Any, node: str, version: str) -> str:
    driver = DRIVERS.get(cluster.upgrade_driver)
    if driver is None:
        raise DriverError(f"No upgrade driver is configured for cluster {cluster.name}.")
    return driver(cluster, node, version)
