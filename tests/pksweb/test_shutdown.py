"""A web process told to stop (SIGTERM: a pod ending, a rolling update) closes its pages' websockets with 1012
"service restart" before it ends, within its grace period, so pages reconnect elsewhere at once and replay.

uvicorn does the closing: on SIGTERM it stops listening and closes every open websocket with 1012, then waits up to
``--timeout-graceful-shutdown`` for the application to finish. This pins that behaviour with the real server in
the web role's shape (two worker processes under uvicorn's supervisor) and a signed-in page's socket.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import httpx
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from tests.support.embedded import embedded_env
from tests.support.net import free_port, wait_http
from tests.support.stack import ROOT, manage

GRACE_SECONDS = 5
PASSWORD = "shutdown-passphrase-1"


def test_sigterm_closes_open_pages_with_service_restart_within_the_grace_period(tmp_path):
    env = embedded_env(tmp_path)
    manage(env, "migrate", "--noinput", "-v0")
    manage(env, "createuser", "watcher", "--role", "viewer", "--password-stdin", stdin=PASSWORD + "\n")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = tmp_path / "web.log"
    with open(log, "wb") as out:
        web = subprocess.Popen([sys.executable, "-m", "uvicorn", "pksweb.asgi:application", "--host", "127.0.0.1", "--port",
                                str(port), "--workers", "2", "--timeout-graceful-shutdown", str(GRACE_SECONDS)],
                               cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_http(url + "/healthz", web, seconds=30, explain=log.read_text)
        session = httpx.Client(base_url=url)
        session.get("/accounts/login/")
        signed_in = session.post("/accounts/login/", data={"username": "watcher", "password": PASSWORD,
                                                           "csrfmiddlewaretoken": session.cookies["csrftoken"]},
                                 headers={"Referer": url + "/accounts/login/"})
        assert signed_in.status_code == 302, signed_in.text[:500]
        with connect(f"ws://127.0.0.1:{port}/ws/activity/", open_timeout=10,
                     additional_headers={"Origin": url, "Cookie": f"sessionid={session.cookies['sessionid']}"}) as page:
            page.ping().wait(5)  # open and answering
            stopped = time.monotonic()
            web.send_signal(signal.SIGTERM)
            try:
                while True:
                    page.recv(timeout=GRACE_SECONDS)
            except ConnectionClosed:
                pass
            closed_after = time.monotonic() - stopped
            assert page.close_code == 1012, (page.close_code, page.close_reason, log.read_text()[-2000:])
            assert closed_after < GRACE_SECONDS, closed_after
        web.wait(GRACE_SECONDS + 10)
        assert time.monotonic() - stopped < GRACE_SECONDS + 10
    finally:
        if web.poll() is None:
            web.kill()
            web.wait(10)
