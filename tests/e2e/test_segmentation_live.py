"""A real browser on the segmentation page of a sandbox cluster: selecting a cell explains it in
place (an htmx swap of the explanation, no reload), and the same link works as a plain page."""

from __future__ import annotations

import pytest

from tests.support.browser import sign_in
from tests.support.embedded import start_embedded
from tests.support.net import free_port

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def one_cluster(tmp_path_factory):
    yield from start_embedded(tmp_path_factory.mktemp("segmentation"), PKSWEB_SANDBOX_CLUSTERS="1",
                              PKSWEB_SANDBOX_PORT=str(free_port()))


def test_selecting_a_cell_explains_it_in_place(one_cluster, browser):
    page = browser.new_page()
    sign_in(page, one_cluster["url"], "operator", "operator-demo")
    page.wait_for_url("**/clusters/")
    page.click("a:text-is('sandbox-1')")
    page.click("a.button:text-is('Segmentation')")
    page.wait_for_selector("#segmentation")
    assert "Select a cell" in page.inner_text("#why")
    page.evaluate("window.__sameDocument = true")

    cell = page.locator("td[data-from=demo][data-to=demo] a")
    assert cell.inner_text().strip().endswith("all")  # the symbol, and the word for screen readers
    cell.click()
    page.wait_for_selector("#why-summary")
    assert page.inner_text("#why h2").startswith("demo → demo")
    assert "egress: no policy isolates demo's pods for egress" in page.inner_text("#why-reasons")
    assert page.evaluate("window.__sameDocument") is True  # swapped in place
    assert "from=demo" in page.url and "to=demo" in page.url  # and the address can be shared

    page.goto(page.url)  # the same address as a plain page load
    assert page.inner_text("#why h2").startswith("demo → demo")
    page.close()
