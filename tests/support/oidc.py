"""The single sign-on tests' provider: ``tests/support/oidc_provider.py`` started as a process of its own,
its test controls, and the browser's round trip through it for a Django test client."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

from tests.support.net import free_port, wait_http

ROOT = Path(__file__).resolve().parents[2]
CLIENT_ID, CLIENT_SECRET = "pksweb", "pksweb-test-secret"


@dataclass
class Provider:
    issuer: str
    proc: subprocess.Popen[bytes]
    log_path: Path

    def user(self, name: str, groups: list[str], password: str = "pw") -> dict[str, Any]:
        answer = httpx.put(f"{self.issuer}/control/users/{name}", json={"groups": groups, "password": password}, timeout=5)
        answer.raise_for_status()
        return dict(answer.json())

    def rotate(self) -> str:
        return str(httpx.post(f"{self.issuer}/control/rotate", timeout=10).json()["kid"])

    def next_token(self, fault: str) -> None:
        httpx.post(f"{self.issuer}/control/next-token", json={"fault": fault}, timeout=5).raise_for_status()

    def log(self) -> list[dict[str, Any]]:
        return list(httpx.get(f"{self.issuer}/control/log", timeout=5).json())

    def settings(self, **overrides: Any) -> Any:
        """pksweb's ``PKSWEB_OIDC`` for this provider (``group_map`` as in PKSWEB_OIDC_GROUP_MAP)."""
        from pksweb.oidc.config import oidc_settings

        env = {"PKSWEB_OIDC_ISSUER": self.issuer, "PKSWEB_OIDC_CLIENT_ID": CLIENT_ID,
               "PKSWEB_OIDC_CLIENT_SECRET": CLIENT_SECRET}
        env.update({k: str(v) for k, v in overrides.items()})
        return oidc_settings(env)


@contextmanager
def start_provider(folder: Path, *redirect_uris: str, port: int | None = None) -> Iterator[Provider]:
    """Start the provider on 127.0.0.1 (a free port unless ``port``); stopped (and waited for) on exit."""
    port = port or free_port()
    log_path = folder / f"oidc-provider-{port}.log"
    argv = [sys.executable, "-m", "tests.support.oidc_provider", "--port", str(port), "--client-id", CLIENT_ID,
            "--client-secret", CLIENT_SECRET]
    for uri in redirect_uris:
        argv += ["--redirect-uri", uri]
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(argv, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    provider = Provider(f"http://127.0.0.1:{port}", proc, log_path)
    try:
        wait_http(f"{provider.issuer}/.well-known/openid-configuration", proc, seconds=30, explain=log_path.read_text)
        yield provider
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def round_trip(client: Any, name: str, password: str = "pw") -> Any:
    """What a browser does: pksweb's SSO link, the provider's form, back to pksweb's callback. ``client`` is
    Django's test client (its requests run in this process; the provider in its own). Returns the callback's
    response."""
    start = client.get("/accounts/oidc/login/")
    assert start.status_code == 302, start.content[:500]
    to_provider = start["Location"]
    if urlsplit(to_provider).path == "/accounts/login/":
        return start
    with httpx.Client(timeout=10) as browser:
        answer = browser.post(to_provider, data={"username": name, "password": password})
    assert answer.status_code == 302, answer.text[:500]
    back = urlsplit(answer.headers["location"])
    return client.get(f"{back.path}?{back.query}")
