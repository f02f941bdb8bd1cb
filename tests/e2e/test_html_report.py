"""The HTML report opened in a real browser (Debian's chromium, driven by Selenium): the page
renders, each chart is there and shows the run's own figures (read back from the drawn marks
and compared with the JSON run report), no console error, and no request leaves the page."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By

from tests.e2e.conftest import CONTACTS, Workspace, contact_records, jsonl
from tests.e2e.test_history import three_runs

pytestmark = pytest.mark.e2e
Emulator = Callable[..., Any]


def _browser_path(*names: str) -> str:
    """The first of ``names`` on PATH; a missing browser fails the test (never a skip):
    `apt-get install chromium chromium-driver` (.ci/run does)."""
    for name in names:
        if found := shutil.which(name):
            return found
    raise AssertionError(f"none of {names} is installed: apt-get install -y chromium "
                         "chromium-driver")


@pytest.fixture(scope="module")
def browser() -> Iterator[webdriver.Chrome]:
    options = webdriver.ChromeOptions()
    options.binary_location = _browser_path("chromium", "chromium-browser")
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--window-size=1000,1600"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    driver = webdriver.Chrome(options=options,
                              service=Service(_browser_path("chromedriver")))
    try:
        yield driver
    finally:
        driver.quit()


def _requests_made(driver: webdriver.Chrome) -> list[str]:
    urls = []
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message["method"] == "Network.requestWillBeSent":
            urls.append(message["params"]["request"]["url"])
    return urls


def _job(workspace: Workspace, bad: int) -> None:
    records: list[Any] = contact_records(300)
    for i in range(bad):
        records[i * 7]["email"] = f"not-an-email-{i}"
    jsonl(workspace.root / "data/contacts.jsonl", records)


async def test_the_html_report_shows_the_runs_figures(
    workspace: Workspace, emulator: Emulator, browser: webdriver.Chrome
) -> None:
    """Two runs (the second with refusals and 429s: the emulator allows 6/s, the job asks
    10/s): `report --html` of the second, opened in chromium, draws its figures."""
    workspace.job(CONTACTS, rate_limit_per_second=10, batch_size=10)
    async with emulator(rate=6) as emu:
        _job(workspace, bad=0)
        first = await workspace.run("run", "job.toml", url=emu.url)
        _job(workspace, bad=9)
        second = await workspace.run("run", "job.toml", "--full-refresh", url=emu.url)
    assert (first.code, second.code) == (0, 3), second.stderr
    page = workspace.root / "out" / "report.html"
    shown = await workspace.run("report", "job.toml", "--html", str(page), url=emu.url)
    assert shown.code == 0, shown.stderr
    reports = sorted((workspace.root / "state" / "reports").glob("*.json"))
    report = json.loads(reports[-1].read_text())
    (stream,) = report["streams"]
    assert stream["throttled"] > 0 and stream["retries"] > 0  # the planted 429s

    browser.get_log("performance")  # drop what came before
    browser.get(page.as_uri())
    assert browser.title == f"ometria-sync run {report['run_id']}"

    rate = browser.find_element(By.ID, "chart-rate")
    assert rate.is_displayed() and rate.size["height"] > 100
    assert int(rate.get_attribute("data-requests")) == stream["requests"]
    assert float(rate.get_attribute("data-limit")) == 10
    bars = rate.find_elements(By.CSS_SELECTOR, "rect.requests")
    assert len(bars) >= 2
    line = stream["timeline"]
    assert sum(line["requests"]) == stream["requests"]
    assert len(bars) == sum(1 for n in line["requests"] if n)
    assert f"{stream['requests']} requests" in browser.find_element(By.ID, "caption-rate").text

    throttling = browser.find_element(By.ID, "chart-throttling")
    assert throttling.is_displayed()
    assert int(throttling.get_attribute("data-throttled")) == stream["throttled"]
    assert int(throttling.get_attribute("data-retries")) == stream["retries"]
    assert f"{stream['throttled']} answered 429" in browser.find_element(
        By.ID, "caption-throttling").text
    assert len(throttling.find_elements(By.CSS_SELECTOR, "rect.throttled")) == sum(
        1 for n in line["throttled"] if n)

    outcomes = browser.find_element(By.ID, "chart-outcomes")
    assert outcomes.is_displayed()
    drawn = {r.get_attribute("data-part"): int(r.get_attribute("data-count"))
             for r in outcomes.find_elements(By.TAG_NAME, "rect")}
    assert drawn == {"accepted": stream["accepted"], "rejected": stream["rejected"],
                     "unconfirmed": stream["unconfirmed"], "unchanged": stream["unchanged"],
                     "dead-lettered": stream["dead_lettered"]}
    assert drawn["dead-lettered"] == 9 and drawn["accepted"] == 291
    widest = max(outcomes.find_elements(By.TAG_NAME, "rect"), key=lambda r: r.size["width"])
    assert widest.get_attribute("data-part") == "accepted" and widest.size["width"] > 100

    refusals = browser.find_element(By.ID, "refusals").text
    (reason,) = stream["refused_reasons"]
    assert reason in refusals and "9" in refusals
    assert stream["refused_examples"][reason] in refusals
    assert "line 1, id c0" in refusals and "not-an-email-0" in refusals

    trend = browser.find_element(By.ID, "chart-trend")
    assert trend.is_displayed()
    runs = trend.find_elements(By.CSS_SELECTOR, "g.run")
    assert [(int(r.get_attribute("data-sent")), int(r.get_attribute("data-refused")))
            for r in runs] == [(300, 0), (291, 9)]
    assert [r.get_attribute("data-run-id") for r in runs] == [
        json.loads(p.read_text())["run_id"] for p in reports]

    errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert errors == []
    assert _requests_made(browser) == [page.as_uri()]


def test_a_page_that_loads_something_is_caught(browser: webdriver.Chrome, tmp_path: Path) -> None:
    """The checks above can fail: a page with a broken script and an outside image shows a
    console error and a request that is not the page."""
    page = tmp_path / "bad.html"
    page.write_text("<!DOCTYPE html><html><body><img src='http://127.0.0.1:9/x.png'>"
                    "<script>undefinedThing()</script></body></html>")
    browser.get_log("performance")
    browser.get(page.as_uri())
    assert [e for e in browser.get_log("browser") if e["level"] == "SEVERE"] != []
    assert _requests_made(browser) != [page.as_uri()]


async def test_each_of_three_runs_renders_with_its_own_figures(
    workspace: Workspace, emulator: Emulator, browser: webdriver.Chrome
) -> None:
    """A clean run, one with refusals and an interrupted one: each run's page (`--run ID`)
    draws that run's requests and outcomes, and a trend up to that run."""
    workspace.job(CONTACTS, rate_limit_per_second=50, batch_size=10)
    assert await three_runs(workspace, emulator) == [0, 3, 130]
    reports = [json.loads(p.read_text())
               for p in (workspace.root / "state" / "reports").glob("*.json")]
    reports.sort(key=lambda r: r["started_at"] + r["run_id"])
    assert [r["exit_code"] for r in reports] == [0, 3, 130]
    for n, report in enumerate(reports, start=1):
        (stream,) = report["streams"]
        page = workspace.root / f"run{n}.html"
        shown = await workspace.run("report", "job.toml", "--run", report["run_id"], "--html",
                                    str(page), url="http://127.0.0.1:9")
        assert shown.code == 0, shown.stderr
        browser.get_log("performance")
        browser.get(page.as_uri())
        assert browser.find_element(By.ID, "run-exit-code").text == str(report["exit_code"])
        rate = browser.find_element(By.ID, "chart-rate")
        assert rate.is_displayed()
        assert int(rate.get_attribute("data-requests")) == stream["requests"] > 0
        drawn = {r.get_attribute("data-part"): int(r.get_attribute("data-count"))
                 for r in browser.find_elements(By.CSS_SELECTOR, "#chart-outcomes rect")}
        assert (drawn["accepted"], drawn["dead-lettered"]) == (
            stream["accepted"], stream["dead_lettered"])
        trend = browser.find_elements(By.CSS_SELECTOR, "#chart-trend g.run")
        assert [t.get_attribute("data-run-id") for t in trend] == [
            r["run_id"] for r in reports[:n]]
        assert [e for e in browser.get_log("browser") if e["level"] == "SEVERE"] == []
        assert _requests_made(browser) == [page.as_uri()]
