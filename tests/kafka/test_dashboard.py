"""The live dashboard in a real headless Chromium, against a real worker on a real broker.

Needs Debian's ``chromium`` and ``chromium-driver`` (``apt-get install -y chromium
chromium-driver``) and Selenium; the paths can be overridden with ``CHROMIUM_BIN`` and
``CHROMEDRIVER_BIN``. Without them the test skips, except under ``CI=true``, where it fails.
Screenshots of both views are saved under the test's temp dir (printed at the end).
"""

from __future__ import annotations

import json
import os
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from stream.cli.entry import main as cli_main
from stream.dev.events import user_events

pytestmark = pytest.mark.kafka
CHROMIUM = os.environ.get("CHROMIUM_BIN", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("CHROMEDRIVER_BIN", "/usr/bin/chromedriver")


def _no_browser(reason: str) -> None:
    hint = "install with: apt-get install -y chromium chromium-driver; pip install selenium"
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"browser test: {reason} ({hint})", pytrace=False)
    pytest.skip(f"browser test: {reason} ({hint})")


@pytest.fixture
def browser(tmp_path: Path) -> Iterator:
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        _no_browser("selenium is not installed")
    for path in (CHROMIUM, CHROMEDRIVER):
        if not os.access(path, os.X_OK):
            _no_browser(f"{path} is missing")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--window-size=1280,1400",
        "--no-first-run",
        "--disable-extensions",
    ):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    service = Service(CHROMEDRIVER, log_output=str(tmp_path / "chromedriver.log"))
    driver = webdriver.Chrome(options=options, service=service)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


def _events(uid: str, category: str, n: int, event_type: str, t0: float) -> list[dict]:
    return user_events(uid, [category] * n, t0, 0.01, event_type, item_prefix=f"{category}-")


def _wait(driver, seconds: float, condition, message: str):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, seconds, poll_frequency=0.1).until(condition, message)


def _text(driver, element_id: str) -> str:
    from selenium.webdriver.common.by import By

    return driver.find_element(By.ID, element_id).text


def test_dashboard_follows_a_user_live_in_headless_chromium(
    kafka_bootstrap,
    unique_name,
    tmp_path,
    browser,
    monkeypatch,
    make_settings,
    make_worker,
    make_producer,
):
    from selenium.webdriver.common.by import By

    env, settings = make_settings()
    base = f"http://127.0.0.1:{env['INTEREST_WEB_PORT']}/"
    uid = f"user-{unique_name[-8:]}"
    with make_worker(env):
        browser.get(base + "#/population")
        _wait(browser, 15, lambda d: _text(d, "status") == "live", "the page never went live")

        # 1. Events for a user: the user view shows the top category within 5 s.
        now = time.time()
        with make_producer(settings) as producer:
            producer.send_many(_events(uid, "shoes", 12, "view", now - 30))
            producer.send_many(_events(uid, "socks", 3, "view", now - 20))
        produced = time.monotonic()
        browser.get(base + "#/user/" + uid)
        _wait(browser, 5, lambda d: _text(d, "user-top") == "shoes", "top category not shown")
        shown_after = time.monotonic() - produced
        assert shown_after <= 5.0
        browser.save_screenshot(str(tmp_path / "user-view.png"))

        # 2. A burst in another category changes the charts without a reload.
        browser.execute_script("window.__sameDocument = true")
        bars_before = browser.find_element(By.ID, "bar-chart").get_attribute("innerHTML")
        with make_producer(settings) as producer:
            producer.send_many(_events(uid, "hats", 10, "purchase", now))
        _wait(browser, 10, lambda d: _text(d, "user-top") == "hats", "the chart did not change")
        assert browser.execute_script("return window.__sameDocument === true"), "page reloaded"
        bars_after = browser.find_element(By.ID, "bar-chart").get_attribute("innerHTML")
        assert bars_after != bars_before and "hats" in bars_after
        assert browser.find_elements(By.CSS_SELECTOR, "#heatmap rect")
        browser.save_screenshot(str(tmp_path / "user-view-after-burst.png"))

        # 3. The population view: donut, counters, most-changed users (click -> user view).
        browser.find_element(By.ID, "nav-population").click()
        _wait(
            browser,
            10,
            lambda d: (
                d.find_elements(By.CSS_SELECTOR, "#donut path.slice") and uid in _text(d, "changed")
            ),
            "population view incomplete",
        )
        assert int(_text(browser, "kpi-active")) >= 1
        browser.save_screenshot(str(tmp_path / "population-view.png"))
        browser.find_element(By.LINK_TEXT, uid).click()
        _wait(browser, 5, lambda d: _text(d, "user-top") == "hats", "user link did not open")

        severe = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
        assert severe == [], f"console errors: {severe}"

        # 4. The operational endpoints of the same worker.
        with urllib.request.urlopen(base + "health", timeout=5) as resp:
            health = json.load(resp)
        assert resp.status == 200 and health["broker"]["reachable"] is True
        assert health["snapshot_feed"]["connected"] is True
        with urllib.request.urlopen(base + "metrics", timeout=5) as resp:
            assert b"interest_events_total 25" in resp.read()

        # 5. `interest-tracker plot` draws the same views from the snapshot topic.
        monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", kafka_bootstrap)
        monkeypatch.setenv("INTEREST_SNAPSHOTS_TOPIC", settings.snapshots_topic)
        for args in (["--user", uid], ["--population"]):
            out = tmp_path / f"plot-{args[0].strip('-')}.png"
            assert cli_main(["plot", *args, "--out", str(out), "--timeout", "1.5"]) == 0
            assert out.read_bytes()[:4] == b"\x89PNG"
    print(
        f"\nshown {shown_after:.2f}s after producing; screenshots: "
        + ", ".join(str(p) for p in sorted(tmp_path.glob("*.png")))
    )
