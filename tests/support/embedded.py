"""The embedded server that `make run` starts (SQLite, in-process worker, a sandbox fleet), for the browser tests."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tests.support.net import free_port, wait_http
from tests.support.stack import ROOT, base_env, manage


def embedded_env(data: Path, **env: str) -> dict[str, str]:
    """The environment of an embedded pksweb keeping its state in ``data``."""
    return base_env(PKSWEB_DATA_DIR=str(data), **env)


def start_embedded(data: Path, port: int | None = None, **extra_env: str) -> Iterator[dict[str, Any]]:
    """`make run`'s steps (migrate, seed, serve) in a temporary data directory (for a fixture to yield from):
    its url, the demo operator's API token, its log and its data directory. ``port``: a free one unless given
    (the single sign-on test registers the callback URL at its provider first)."""
    env = embedded_env(data, **extra_env)
    manage(env, "migrate", "--noinput")
    manage(env, "seed_demo")
    port = port or free_port()
    url = f"http://127.0.0.1:{port}"
    with open(data / "server.log", "wb") as log:
        proc = subprocess.Popen([sys.executable, "manage.py", "serve", "--port", str(port)], cwd=ROOT, env=env,
                                stdout=log, stderr=subprocess.STDOUT)
        try:
            wait_http(url + "/healthz", proc, seconds=30, explain=(data / "server.log").read_text)
            yield {"url": url, "token": manage(env, "apitoken", "operator").strip(), "log": data / "server.log", "data": data}
        finally:
            proc.terminate()
            proc.wait(15)
