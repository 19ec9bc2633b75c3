"""A real browser whose page loses its websocket for a while: a cluster page away while the rest of the
fleet was busy catches up on its own cluster in place; a page away longer than the server replays reloads
(once: a page stale again at once says so instead)."""

from __future__ import annotations

import re

import httpx
import pytest

from tests.support.browser import sign_in
from tests.support.embedded import embedded_env, start_embedded
from tests.support.net import free_port
from tests.support.stack import manage

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    yield from start_embedded(tmp_path_factory.mktemp("reload"), PKSWEB_SANDBOX_CLUSTERS="1",
                              PKSWEB_SANDBOX_PORT=str(free_port()))


class Line:
    """The page's websocket, through Playwright: while ``away`` nothing the server sends reaches the page
    (as on a train in a tunnel); ``back()`` drops the connection as a server restart does (1012), and the
    page reconnects by itself with its cursor."""

    def __init__(self, page) -> None:
        self.away = False
        self.sockets: list = []
        page.route_web_socket(re.compile(r"/ws/"), self._route)

    def _route(self, ws) -> None:
        server = ws.connect_to_server()
        server.on_message(lambda message: None if self.away else ws.send(message))
        self.sockets.append(ws)

    def back(self) -> None:
        self.away = False
        self.sockets[-1].close(code=1012, reason="back")


def manage_shell(server: dict, code: str) -> str:
    """Run ``code`` in a process of its own on the server's database (a worker, as far as the page can tell)."""
    return manage(embedded_env(server["data"]), "shell", "-c", code)


def stored_while_away(server: dict, count: int, subject: str = "") -> None:
    """``count`` events written straight to the database in one go (a busy fleet; ``subject``: one cluster's)."""
    fields = f"subject_type='cluster', subject_id='{subject}'" if subject else ""
    manage_shell(server, "from pksweb.models import Event; "
                         f"Event.objects.bulk_create([Event(kind='system.notice', message=f'busy fleet {{i}}', {fields})"
                         f" for i in range({count})])")


def announce(server: dict, message: str) -> int:
    response = httpx.post(server["url"] + "/api/announcements/", json={"message": message},
                          headers={"Authorization": f"Token {server['token']}"}, timeout=10)
    assert response.status_code == 201, response.text
    return response.json()["id"]


def open_activity(server: dict, browser):
    page = browser.new_page()
    line = Line(page)
    sign_in(page, server["url"], "operator", "operator-demo")
    page.wait_for_url("**/clusters/")
    page.goto(server["url"] + "/activity/")
    page.wait_for_selector("#live-status[data-state=live]", timeout=10_000)
    page.evaluate("window.__sameDocument = true")
    return page, line


def test_a_cluster_page_catches_up_on_its_cluster_past_a_busy_fleet(server, browser):
    page = browser.new_page()
    line = Line(page)
    sign_in(page, server["url"], "operator", "operator-demo")
    page.wait_for_url("**/clusters/")
    page.click("a:text-is('sandbox-1')")
    page.wait_for_selector("#live-status[data-state=live]", timeout=10_000)
    cluster_id = re.search(r"/clusters/(\d+)/", page.url).group(1)
    page.evaluate("window.__sameDocument = true")

    line.away = True
    stored_while_away(server, 600, subject="999999")  # another cluster, busier than a replay carries
    ids = manage_shell(server, "from pksweb.events import publish; "
                               f"print(*[publish(kind='cluster.note', message=f'about sandbox-1 #{{i}}', subject_type='cluster', "
                               f"subject_id={cluster_id}).pk for i in range(2)])").splitlines()[-1].split()
    line.back()
    page.wait_for_selector(f"#event-{ids[-1]}", timeout=15_000)
    assert page.query_selector(f"#event-{ids[0]}") is not None
    assert page.get_attribute("#event-cursor", "data-last") == ids[-1]
    assert page.evaluate("window.__sameDocument") is True  # caught up in place: its own cluster had little to tell
    page.close()


def test_a_long_absence_reloads_the_page_once(server, browser):
    page, line = open_activity(server, browser)
    line.away = True
    stored_while_away(server, 600)  # more than REPLAY_LIMIT (500)
    newest = announce(server, "the newest, while away")
    with page.expect_navigation(timeout=15_000):
        line.back()
    page.wait_for_selector("#live-status[data-state=live]", timeout=10_000)
    assert page.evaluate("window.__sameDocument") is None  # a fresh document
    assert page.eval_on_selector("#event-list li", "el => el.id") == f"event-{newest}"
    assert page.get_attribute("#event-cursor", "data-last") == str(newest)

    # Stale again right after a reload: no reload loop; the page says so and waits for the person.
    page.evaluate("window.__sameDocument = true")
    line.away = True
    stored_while_away(server, 600)
    line.back()
    page.wait_for_selector("#live-status[data-state=stale]", timeout=15_000)
    page.wait_for_function("document.getElementById('live-status').textContent.includes('reload the page')", timeout=5_000)
    page.wait_for_timeout(1_500)
    assert page.evaluate("window.__sameDocument") is True
    assert page.get_attribute("#live-status", "data-state") == "stale"  # not "reconnecting…": the socket stays closed
    page.close()
