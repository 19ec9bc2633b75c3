"""pksweb's image run with podman, for the tests: containers and a data volume that are removed however the test ends.

    require_image()
    with Containers("image-test") as pod:
        pod.run("migrate", "migrate", env=env, detach=False)
        pod.run("web", "web", env=env)

Every container runs as production runs it: a read-only root filesystem (no tmpfs that podman would add by
itself), a tmpfs on /tmp, the volume on /data, and the host's network (PostgreSQL and Redis on 127.0.0.1).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Mapping

from tests.support.waits import require_service

IMAGE = os.environ.get("PKSWEB_TEST_IMAGE", "localhost/pksweb:latest")
# This machine's needs (the Makefile's image target uses the same): runc, since crun fails on mixed cgroups, and
# limits within the machine's hard limits (podman's default open-files limit is above them).
RUNTIME = ("--runtime", "runc", "--ulimit", "nofile=20000:20000", "--ulimit", "nproc=32768:32768")


def podman(*args: str, timeout: float = 60, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(["podman", *args], capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise RuntimeError(f"podman {' '.join(args)} exited {result.returncode}: {result.stderr.strip()}")
    return result


def require_image(image: str = IMAGE) -> None:
    """podman is installed and the image is built (under CI a test fails without them; elsewhere it skips)."""
    if shutil.which("podman") is None:
        require_service("podman", "install Debian's podman, buildah, runc and mmdebstrap (make podman), then run make image")
    if podman("image", "exists", image, check=False).returncode != 0:
        require_service(f"the image {image}", "build it with make image")


class Containers:
    """The containers a test starts from ``image`` and their data volume, all removed on exit."""

    def __init__(self, tag: str, image: str = IMAGE) -> None:
        self.tag = tag
        self.image = image
        self.volume = f"pksweb-{tag}-data"
        self.roles: list[str] = []

    def __enter__(self) -> Containers:
        podman("volume", "create", self.volume)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.roles:
            podman("rm", "--force", "--time", "5", *map(self.name, self.roles), check=False)
        podman("volume", "rm", "--force", self.volume, check=False)

    def name(self, role: str) -> str:
        return f"pksweb-{self.tag}-{role}"

    def run(self, role: str, *args: str, env: Mapping[str, str], detach: bool = True, timeout: float = 120) -> str:
        """Start the image with ``args`` as container ``role``; without ``detach``, wait until it ends (its
        output is then in ``logs(role)``, its status in ``exit_code(role)``)."""
        name = self.name(role)
        self.roles.append(role)
        flags = [*RUNTIME, "--name", name, "--read-only", "--read-only-tmpfs=false", "--tmpfs", "/tmp:rw,size=64m",
                 "--volume", f"{self.volume}:/data", "--network", "host"]
        for key, value in env.items():
            flags += ["--env", f"{key}={value}"]
        if detach:
            podman("run", "--detach", *flags, self.image, *args)
        else:
            podman("run", *flags, self.image, *args, timeout=timeout, check=False)
        return name

    def logs(self, role: str) -> str:
        result = podman("logs", self.name(role), check=False)
        return result.stdout + result.stderr

    def all_logs(self) -> str:
        return "\n".join(f"--- {role}\n{self.logs(role)[-3000:]}" for role in self.roles)

    def state(self, role: str) -> dict[str, object]:
        state: dict[str, object] = json.loads(podman("inspect", "--format", "{{json .State}}", self.name(role)).stdout)
        return state

    def exit_code(self, role: str) -> int:
        return int(str(self.state(role)["ExitCode"]))

    def running(self, role: str) -> bool:
        return bool(self.state(role)["Running"])

    def exec(self, role: str, *argv: str) -> str:
        return podman("exec", self.name(role), *argv).stdout

    def diff(self, role: str) -> list[str]:
        """What the container changed in the image's filesystem ("C /etc", "A /path"), mounts aside."""
        return [line for line in podman("diff", self.name(role)).stdout.splitlines() if line.strip()]

    def stop(self, *roles: str, seconds: int = 25) -> None:
        """SIGTERM, then SIGKILL after ``seconds``: a process that handles SIGTERM ends with its own status."""
        podman("stop", "--time", str(seconds), *(self.name(role) for role in roles), timeout=seconds + 30)
