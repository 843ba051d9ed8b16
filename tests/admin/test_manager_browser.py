"""The balancer-manager driven by a real browser: headless Debian Chromium under Selenium loads
the page, a member is disabled through its form the way a person would do it (open the
"Edit the members" section, pick "On" for Disabled, click Submit), and requests sent through
portico afterwards never reach that member (§13.2, §13.3).

The browser is the system one (/usr/bin/chromium with /usr/bin/chromedriver, Debian packages
``chromium`` and ``chromium-driver``, which .ci/run installs); nothing is downloaded. Without
them the test is skipped. The screenshot of the page after the edit is written to the test's
tmp dir; with PORTICO_UPDATE_SCREENSHOT=1 it also replaces docs/manager-screenshot.png (the
README's picture), so an ordinary test run leaves the work tree untouched.
"""

from __future__ import annotations

import os
import shutil
import struct
from collections import Counter
from pathlib import Path

import pytest

from tests.support.idservers import IdServers
from tests.support.lbclient import fetch
from tests.support.lbconf import start_balanced
from tests.support.proxy import Portico, server_kind

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
DOCS_SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "manager-screenshot.png"
WIDTH, HEIGHT = 1200, 800
WAIT = 15.0          # seconds any single browser step may take

pytestmark = [
    pytest.mark.skipif(server_kind() != "portico", reason="portico's own manager page"),
    pytest.mark.skipif(not (CHROMIUM.exists() and CHROMEDRIVER.exists()),
                       reason="needs Debian's chromium and chromium-driver "
                              "(/usr/bin/chromium, /usr/bin/chromedriver); .ci/run installs them"),
]

webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is in the [test] extras")
from selenium.common.exceptions import StaleElementReferenceException  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.remote.webdriver import WebDriver  # noqa: E402
from selenium.webdriver.support.select import Select  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

CONF = """\
<Proxy "balancer://lb">
    BalancerMember {{a}} route=ra
    BalancerMember {{b}} route=rb
    BalancerMember {{c}} route=rc
</Proxy>
<Location "/balancer-manager">
    SetHandler balancer-manager
</Location>
ProxyPass "/balancer-manager" !
ProxyPass "/favicon.ico" !
ProxyPass "/" "balancer://lb/"
"""
MANAGER = "/balancer-manager"
# The favicon line keeps the browser's own /favicon.ico fetches off the balancer, so the
# Elected counts are exactly the test's requests.


def _chromium(profile: Path) -> WebDriver:
    """A headless Chromium on a fresh profile, with everything that would reach the network
    on its own switched off (this machine's network is closed; CI's may be too)."""
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
                 f"--user-data-dir={profile}", f"--window-size={WIDTH},{HEIGHT}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(WAIT)
    driver.set_script_timeout(WAIT)
    return driver


def _who(proxy: Portico, n: int) -> list[str]:
    answers = [fetch(proxy.port, f"/p/{i}") for i in range(n)]
    assert all(a.status == 200 for a in answers), [a.status for a in answers]
    return [a.member for a in answers]


def _rows(driver: WebDriver) -> dict[str, list[str]]:
    """The member table as the browser shows it: worker URL -> visible cell texts."""
    rows: dict[str, list[str]] = {}
    for tr in driver.find_elements(By.CSS_SELECTOR, "section table tr"):
        cells = [td.text.strip() for td in tr.find_elements(By.TAG_NAME, "td")]
        if len(cells) > 7 and cells[1].startswith("http://"):
            rows[cells[1]] = cells
    return rows


def _png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    return struct.unpack(">II", data[16:24])


def test_browser_disables_a_member_and_routing_follows(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Selenium Manager must never try to fetch a driver or browser: both paths are given.
    monkeypatch.setenv("SE_OFFLINE", "true")
    with IdServers(["a", "b", "c"]) as servers, \
            start_balanced(CONF, tmp_path / "proxy", servers) as proxy:
        assert Counter(_who(proxy, 6)) == {"a": 2, "b": 2, "c": 2}
        target = servers.url("b")
        driver = _chromium(tmp_path / "profile")
        try:
            # The page is replaced when a form is submitted: an element found on the old page
            # goes stale while the new one loads, so a wait retries instead of failing.
            wait = WebDriverWait(driver, WAIT,
                                 ignored_exceptions=(StaleElementReferenceException,))
            driver.get(proxy.url + MANAGER)
            assert driver.title == "Balancer Manager"
            rows = _rows(driver)
            assert set(rows) == {servers.url(i) for i in ("a", "b", "c")}
            assert rows[target][2] == "rb" and "Ok" in rows[target][6]

            # Open the member section and find the form whose hidden "w" names member b.
            driver.find_element(By.XPATH, "//summary[starts-with(., 'Edit the members')]").click()
            form = driver.find_element(
                By.XPATH, f"//form[.//input[@name='w' and @value='{target}']]")
            disabled = Select(form.find_element(By.NAME, "w_status_D"))
            assert disabled.first_selected_option.text == "Off"
            disabled.select_by_visible_text("On")
            form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()

            wait.until(lambda d: "updated" in d.find_element(By.TAG_NAME, "body").text)
            wait.until(lambda d: target in _rows(d))
            assert "Dis" in _rows(driver)[target][6]

            # What the edit is for: the disabled member gets no more traffic.
            before = servers.counts()["b"]
            assert set(_who(proxy, 12)) == {"a", "c"}
            assert servers.counts()["b"] == before

            # The page the person sees afterwards tells the same story.
            driver.get(proxy.url + MANAGER)
            rows = _rows(driver)
            assert "Dis" in rows[target][6]
            assert [rows[servers.url(i)][7] for i in ("a", "b", "c")] == ["8", "2", "8"]
            driver.find_element(By.XPATH, "//summary[starts-with(., 'Edit the members')]").click()
            shot = tmp_path / "manager.png"
            assert driver.save_screenshot(str(shot))
        finally:
            driver.quit()

    data = shot.read_bytes()
    assert len(data) > 10_000, len(data)      # a rendered page, not a blank frame
    width, height = _png_size(data)
    assert 800 <= width <= WIDTH and 500 <= height <= HEIGHT, (width, height)
    if os.environ.get("PORTICO_UPDATE_SCREENSHOT") == "1":
        DOCS_SCREENSHOT.parent.mkdir(exist_ok=True)
        shutil.copyfile(shot, DOCS_SCREENSHOT)
