"""The dashboard in a real headless Chromium (Debian's ``chromium`` and
``chromium-driver``, driven by selenium through /usr/bin/chromedriver): the overview's
live throughput rising while tasks run, searching a task, revoking one from its page,
requeuing a dead letter from the list. One screenshot per page is kept in the test's tmp
dir (and copied to ``$MULTIQ_DASHBOARD_SCREENSHOTS`` when that is set)."""
from __future__ import annotations

import os
import shutil
import sys
import threading
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE / "apps")]

from helpers import wait_until  # noqa: E402
from sysq_dash_support import Server, fleet_of  # noqa: E402

CHROMIUM, DRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
pytestmark = [
    pytest.mark.system, pytest.mark.timeout(90),
    pytest.mark.skipif(not (os.access(CHROMIUM, os.X_OK) and os.access(DRIVER, os.X_OK)),
                       reason="needs Debian's chromium and chromium-driver "
                              "(apt-get install chromium chromium-driver)"),
]


@pytest.fixture(scope="module")
def fleet(redis_server, tmp_path_factory):
    yield from fleet_of(redis_server, tmp_path_factory.mktemp("dash-browser"),
                        {"bw": ("threads", "-c", "4", "-Q", "multiq,bdl")})


@pytest.fixture
def server(fleet, tmp_path):
    dashboard = Server(fleet.env, [], tmp_path / "dashboard.log", fleet.tracker)
    dashboard.wait_ready()
    return dashboard


@pytest.fixture
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1400,1000", "--disable-extensions", "--no-first-run"):
        options.add_argument(arg)
    os.environ.setdefault("SE_OFFLINE", "true")  # selenium must not download anything
    driver = webdriver.Chrome(service=Service(executable_path=DRIVER), options=options)
    driver.set_page_load_timeout(20)
    try:
        yield driver
    finally:
        driver.quit()


class Shots:
    def __init__(self, browser, directory: Path) -> None:
        self.browser = browser
        self.directory = directory
        self.extra = os.environ.get("MULTIQ_DASHBOARD_SCREENSHOTS")

    def take(self, name: str) -> Path:
        path = self.directory / f"dashboard-{name}.png"
        assert self.browser.save_screenshot(str(path)), name
        if self.extra:
            os.makedirs(self.extra, exist_ok=True)
            shutil.copy(path, Path(self.extra) / path.name)
        return path


def text_of(browser, element_id):
    """The element's text; "" while it is not there (a page still loading)."""
    from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
    from selenium.webdriver.common.by import By

    try:
        return browser.find_element(By.ID, element_id).text
    except (NoSuchElementException, StaleElementReferenceException):
        return ""


def open_page(browser, url, element_id):
    """Load ``url``; whether it has the element ``element_id``."""
    from selenium.webdriver.common.by import By

    browser.get(url)
    return bool(browser.find_elements(By.ID, element_id))


def click_submit(browser, form_action_suffix):
    from selenium.webdriver.common.by import By

    forms = [f for f in browser.find_elements(By.CSS_SELECTOR, "form[method=post]")
             if f.get_attribute("action").endswith(form_action_suffix)]
    assert forms, f"no form posting to ...{form_action_suffix}"
    forms[0].find_element(By.CSS_SELECTOR, "button").click()


def test_overview_search_revoke_and_requeue_in_a_browser(fleet, server, browser, tmp_path):
    from selenium.webdriver.common.by import By

    app, shots, base = fleet.app, Shots(browser, tmp_path), server.url
    browser.get(f"{base}/")
    wait_until(lambda: browser.find_element(By.ID, "throughput").get_attribute(
        "data-updated"), timeout=10, message="the chart never refreshed")
    assert text_of(browser, "ok-60") == "0"

    stop = threading.Event()

    def load():
        while not stop.is_set():
            for i in range(10):
                app.send_task("sysq_dash.add", [i, i])
            stop.wait(0.2)
    sender = threading.Thread(target=load, daemon=True)
    sender.start()
    try:
        wait_until(lambda: int(text_of(browser, "ok-60") or 0) >= 20, timeout=20,
                   interval=0.2, message="the live throughput never rose")
        wait_until(lambda: int(browser.find_element(By.ID, "throughput")
                               .get_attribute("data-total") or 0) >= 20, timeout=10)
        assert text_of(browser, "nodes")
        assert fleet.hostname("bw") in text_of(browser, "nodes")
        shots.take("overview")
    finally:
        stop.set()
        sender.join(5)

    done = app.send_task("sysq_dash.add", [40, 2])
    assert done.get(timeout=10) == 42
    browser.get(f"{base}/tasks")
    box = browser.find_element(By.CSS_SELECTOR, "#search input[name=id]")
    box.send_keys(done.id[:10])
    browser.find_element(By.CSS_SELECTOR, "#search button").click()
    wait_until(lambda: done.id in text_of(browser, "tasks"), timeout=10,
               message="the search did not find the task")
    assert len(browser.find_elements(By.CSS_SELECTOR, "#tasks a.tid")) == 1
    shots.take("tasks")
    browser.find_element(By.LINK_TEXT, done.id).click()
    wait_until(lambda: "SUCCESS" in browser.page_source and "42" in text_of(browser, "result"),
               timeout=10)
    shots.take("task")

    later = app.send_task("sysq_dash.add", [1, 1], countdown=60)
    # its page exists once the dashboard has folded the task-sent event
    wait_until(lambda: open_page(browser, f"{base}/task/{later.id}", "task-id"), timeout=10)
    click_submit(browser, f"/task/{later.id}/revoke")
    wait_until(lambda: "revoked" in text_of(browser, "flash"), timeout=10)
    assert app.broker.client.zscore(app.broker.keys.revoked, later.id) is not None

    lost = app.send_task("sysq_dash.no_such_task", [3], queue="bdl")

    def entry():
        return next((e["entry"] for e in _letters(app) if e["id"] == lost.id), None)
    first = wait_until(entry, timeout=10, message="the unknown task was not dead-lettered")
    browser.get(f"{base}/deadletters")
    assert lost.id in text_of(browser, "letters")
    shots.take("deadletters")
    click_submit(browser, "/deadletters/requeue")
    wait_until(lambda: "requeued 1" in text_of(browser, "flash"), timeout=10)
    wait_until(lambda: entry() not in (None, first), timeout=10,
               message="the requeued message did not come back as a new entry")

    for name, path in (("nodes", "/nodes"), ("node", f"/node/{fleet.hostname('bw')}"),
                       ("beat", "/beat")):
        browser.get(f"{base}{path}")
        wait_until(lambda: browser.find_elements(By.TAG_NAME, "h1"), timeout=10)
        shots.take(name)
    assert sorted(p.name for p in tmp_path.glob("dashboard-*.png")) == [
        f"dashboard-{n}.png" for n in sorted(("overview", "tasks", "task", "deadletters",
                                              "nodes", "node", "beat"))]


def _letters(app):
    from multiq.broker.deadletter import DeadLetters

    return [e.summary() for e in DeadLetters(app.broker).list(["bdl"])]
