"""The image `make image` builds, run with podman as production runs it: a read-only root filesystem, /tmp and a
data volume the only places written, a non-root user, PostgreSQL and Redis reached over the network.

Roles migrate, web, worker and beat start from the one image; web answers /readyz 200 (database, channel layer,
broker), the worker runs what beat schedules, and SIGTERM ends each server by itself (the entrypoint execs the
program, so the signal reaches it). Under CI=true a missing podman or image fails the test (make image builds it).
"""

from __future__ import annotations

import time

import httpx
import pytest

from tests.support.net import free_port
from tests.support.podman import IMAGE, Containers, podman, require_image
from tests.support.stack import Stack, require_services

pytestmark = [pytest.mark.integration, pytest.mark.image]

# What production settings read, taken from a stack (its own database, queue and channel prefix); nothing of this
# process's environment (its PYTHONPATH, its checkout) goes into the containers.
SETTINGS = ("PKSWEB_SECRET_KEY", "PKSWEB_CREDENTIAL_KEYS", "DATABASE_URL", "REDIS_URL", "ALLOWED_HOSTS",
            "PKSWEB_SECURE_COOKIES", "PKSWEB_CELERY_QUEUE", "PKSWEB_CHANNEL_PREFIX")
SERVERS = ("web", "worker", "beat")
NON_ROOT_UID = "10001"
# podman bind-mounts /etc/hosts, /etc/resolv.conf and /etc/hostname over the image, which marks /etc changed even
# under --read-only; nothing else may show.
MOUNT_POINTS = {"C /etc"}
WRITE_ERRORS = ("Read-only file system", "Permission denied", "Traceback")


def _wait_ready(url: str, pod: Containers, seconds: float = 45) -> dict[str, object]:
    deadline = time.monotonic() + seconds
    last = "no answer"
    while time.monotonic() < deadline:
        try:
            answer = httpx.get(url, timeout=3)
            if answer.status_code == 200:
                body: dict[str, object] = answer.json()
                return body
            last = f"{answer.status_code} {answer.text[:300]}"
        except httpx.HTTPError as exc:
            last = repr(exc)
        if not pod.running("web"):
            break
        time.sleep(0.3)
    raise AssertionError(f"/readyz did not answer 200 ({last}):\n{pod.all_logs()}")


def _wait_log(pod: Containers, role: str, *words: str, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if any(all(word in line for word in words) for line in pod.logs(role).splitlines()):
            return
        time.sleep(0.3)
    raise AssertionError(f"{role} never logged a line with {words}:\n{pod.all_logs()}")


def test_every_role_runs_read_only_as_a_non_root_user():
    require_image()
    require_services()
    # Numeric, so that Kubernetes' runAsNonRoot can check it without the image's /etc/passwd.
    assert podman("image", "inspect", "--format", "{{.Config.User}}", IMAGE).stdout.strip() == f"{NON_ROOT_UID}:{NON_ROOT_UID}"
    port = free_port()
    with Stack("image") as stack, Containers(f"test-{stack.tag}") as pod:
        env = {key: stack.env[key] for key in SETTINGS} | {
            "PKSWEB_LOG_LEVEL": "INFO", "PORT": str(port), "PKSWEB_WEB_WORKERS": "2",
            "PKSWEB_WORKER_CONCURRENCY": "2", "PKSWEB_HEARTBEAT_SECONDS": "1"}

        pod.run("migrate", "migrate", env=env, detach=False)
        assert pod.exit_code("migrate") == 0, pod.all_logs()
        for role in SERVERS:
            pod.run(role, role, env=env)

        checks = _wait_ready(f"http://127.0.0.1:{port}/readyz", pod)
        assert checks["checks"] == {"database": "ok", "channel_layer": "ok", "broker": "ok"}
        # beat schedules a heartbeat every second: the worker took it from Redis and wrote it to the database.
        _wait_log(pod, "worker", "pksweb.tasks.worker_heartbeat", "succeeded")
        for role in SERVERS:
            assert pod.exec(role, "id", "-u").strip() == NON_ROOT_UID, role

        pod.stop(*SERVERS)
        for role in ("migrate", *SERVERS):
            assert set(pod.diff(role)) <= MOUNT_POINTS, (role, pod.diff(role))
            assert not [line for line in pod.logs(role).splitlines() if any(e in line for e in WRITE_ERRORS)], \
                pod.all_logs()
        # Each server handled SIGTERM and ended by itself (137 would be podman's SIGKILL after the grace period).
        assert {role: pod.exit_code(role) for role in SERVERS} == {role: 0 for role in SERVERS}, pod.all_logs()
