"""Drivers turn one drained node into the new version. The rollout engine owns everything else
(ordering, drains, waits, gates) and never knows which driver it drives.

Each driver's ``upgrade`` is called once per node (the engine records the intent first and
checks the node before calling again) and returns a log line.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
import time
from collections.abc import Callable

import yaml
from django.conf import settings

from clusters.choices import UpgradeDriver as Driver
from clusters.connect import cluster_credential, gateway_for
from clusters.kube import KubeError
from clusters.kube.credentials import credential_kubeconfig
from clusters.models import Cluster
from pksweb.text import bound_tail

Keep = Callable[[], None]
OUTPUT_LIMIT = 4000
# The annotation the sandbox's simulated kubelet acts on: it replaces the node at the version it names.
SANDBOX_UPGRADE_TO = "sandbox.pksweb.io/upgrade-to"


class DriverError(Exception):
    """The driver could not start or finish the node's replacement; the message says why."""


def _sandbox(cluster: Cluster, node: str, version: str, keep: Keep) -> str:
    """Ask the sandbox's simulated kubelet to replace the node at ``version``: an ordinary annotation on the
    node, which the sandbox acts on."""
    try:
        gateway_for(cluster).annotate_node(node, {SANDBOX_UPGRADE_TO: version})
    except KubeError as exc:
        raise DriverError(exc.message) from None
    return f"sandbox: replacing {node}'s kubelet with v{version}"


def _command(cluster: Cluster, node: str, version: str, keep: Keep) -> str:
    """Run the cluster's argv template with a temporary KUBECONFIG for the cluster; ``keep()`` is
    called every few seconds while it runs (it renews the step's lease, and raises to stop when
    another worker took the node over: the command is then killed)."""
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
        # Output goes to a file, never into the worker's memory: only its tail is read back.
        with open(os.path.join(folder, "output"), "w+b") as spool:
            try:
                process = subprocess.Popen(argv, env=env, stdout=spool, stderr=subprocess.STDOUT, cwd=folder,
                                           start_new_session=True)
            except FileNotFoundError:
                raise DriverError(f"The command driver cannot run {argv[0]!r}: no such program.") from None
            except OSError as exc:
                raise DriverError(f"The command driver cannot run {argv[0]!r}: {exc.strerror or exc}.") from None
            _wait(process, argv, keep)
            size = spool.seek(0, os.SEEK_END)
            spool.seek(max(0, size - OUTPUT_LIMIT * 4))  # a UTF-8 character is at most 4 bytes
            output = spool.read()
    cut = f"[{size - len(output):,} earlier bytes cut]… " if size > len(output) else ""
    shown = bound_tail(cut + output.decode(errors="replace").strip(), OUTPUT_LIMIT)
    if process.returncode != 0:
        raise DriverError(f"The command {' '.join(argv)} exited with {process.returncode}: {shown}")
    return f"command: {' '.join(argv)}\n{shown}"


def _wait(process: subprocess.Popen[bytes], argv: list[str], keep: Keep) -> None:
    """Wait for the command to end; it is killed when it runs too long or the step was taken over."""
    deadline = time.monotonic() + settings.PKSWEB_COMMAND_DRIVER_TIMEOUT
    while True:
        try:
            process.wait(timeout=min(2.0, max(0.1, deadline - time.monotonic())))
            return
        except subprocess.TimeoutExpired:
            pass
        try:
            keep()
        except Exception:
            _kill(process)
            raise
        if time.monotonic() >= deadline:
            _kill(process)
            raise DriverError(f"The command {' '.join(argv)} ran longer than {settings.PKSWEB_COMMAND_DRIVER_TIMEOUT} s.")


def _kill(process: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(process.pid, 9)
    except (ProcessLookupError, PermissionError):
        process.kill()
    process.wait(timeout=10)  # no pipe to drain: a child that left the group cannot hold the worker


def _system_upgrade_controller(cluster: Cluster, node: str, version: str, keep: Keep) -> str:
    """A system-upgrade-controller Plan (k3s/RKE2) that targets only this node."""
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


# The implementation of each driver named in clusters.choices.UpgradeDriver (NONE has none): preflight asks here
# whether a cluster's driver is one pksweb can run.
DRIVERS: dict[str, Callable[[Cluster, str, str, Keep], str]] = {
    Driver.SANDBOX: _sandbox,
    Driver.COMMAND: _command,
    Driver.SYSTEM_UPGRADE_CONTROLLER: _system_upgrade_controller,
}


def upgrade(cluster: Cluster, node: str, version: str, keep: Keep | None = None) -> str:
    """Turn ``node`` of ``cluster`` into ``version`` with the cluster's driver; the log line says what was done."""
    driver = DRIVERS.get(cluster.upgrade_driver)
    if driver is None:
        raise DriverError(f"No upgrade driver is configured for cluster {cluster.name}.")
    return driver(cluster, node, version, keep or (lambda: None))
