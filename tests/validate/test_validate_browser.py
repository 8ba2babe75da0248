"""review.html in a real browser: Debian's chromium driven through chromedriver (package
chromium-driver) by selenium. Three conversations are judged, with keys and with clicks; the page
is reloaded and the judgments are still there; Export downloads judgments.json, and
`validate score` reads it."""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import pytest
from helpers.validate import planted_corpus, run_cli

CHROMIUM = next((p for p in map(shutil.which, ("chromium", "chromium-browser")) if p), None)
DRIVER = shutil.which("chromedriver")
if CHROMIUM is None or DRIVER is None:
    if os.environ.get("VALUESCOPE_REQUIRE_CHROMIUM"):
        pytest.fail("chromium or chromedriver not found", pytrace=False)
    pytest.skip(
        "needs chromium and chromium-driver (apt-get install chromium chromium-driver)",
        allow_module_level=True,
    )
webdriver = pytest.importorskip("selenium.webdriver")
from selenium.webdriver.chrome.options import Options  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.action_chains import ActionChains  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import Select  # noqa: E402


@pytest.fixture
def browser(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("SE_OFFLINE", "true")  # selenium must not look for drivers online
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    opts = Options()
    opts.binary_location = str(CHROMIUM)
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
                "--disable-extensions", "--disable-background-networking",
                f"--user-data-dir={tmp_path / 'profile'}"):  # fmt: skip
        opts.add_argument(arg)
    opts.add_experimental_option(
        "prefs",
        {"download.default_directory": str(downloads), "download.prompt_for_download": False},
    )
    driver = webdriver.Chrome(service=Service(str(DRIVER)), options=opts)
    driver.execute_cdp_cmd(
        "Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)}
    )
    try:
        yield driver, downloads
    finally:
        driver.quit()


def _claims(driver):
    return driver.find_elements(By.CSS_SELECTOR, "#claims .claim")


def _click(driver, index: int, answer: str) -> None:
    _claims(driver)[index].find_element(By.CSS_SELECTOR, f"button[data-answer={answer}]").click()


def _progress(driver) -> str:
    return driver.find_element(By.ID, "progress").text


def test_judge_reload_export_score(browser, tmp_path: Path) -> None:
    driver, downloads = browser
    planted = planted_corpus(tmp_path)
    packet = tmp_path / "packet"
    p = run_cli(
        "validate", "sample", str(planted.features), "--conversations", str(planted.logs),
        "--n", "6", "--out", str(packet),
    )  # fmt: skip
    assert p.returncode == 0, p.stderr
    items = [json.loads(x) for x in (packet / "items.jsonl").read_text().splitlines()]
    driver.get((packet / "review.html").as_uri())
    assert _progress(driver) == "0 / 6 judged"
    assert "row-level data" in driver.find_element(By.ID, "warning").text
    keys = ActionChains(driver)
    expected = {}

    # item 1: keys only: alternate on the AI values, then y for the rest
    f = items[0]["features"]
    assert f["ai_values"][0] in _claims(driver)[0].text
    want = {"ai_values": {}, "human_values": {}}
    for i, v in enumerate(f["ai_values"]):
        want["ai_values"][v] = i % 2 == 0
        keys.send_keys("y" if i % 2 == 0 else "n")
    for v in f["human_values"]:
        want["human_values"][v] = True
        keys.send_keys("y")
    keys.send_keys("n")  # no stated value missing
    keys.send_keys("y")  # response type right
    keys.send_keys("n")  # subjectivity label wrong
    keys.send_keys("y")  # task acceptable
    keys.perform()
    want.update(
        human_missing=False, response_type=f["response_type"], subjective=False, task_ok=True
    )
    expected[items[0]["item"]] = want
    assert _progress(driver) == "1 / 6 judged"
    ActionChains(driver).send_keys("\ue014").perform()  # ArrowRight: next conversation

    # item 2: clicks only, and the right response type picked in the list
    f = items[1]["features"]
    assert f["ai_values"][0] in _claims(driver)[0].text
    n_claims = len(_claims(driver))
    for i in range(n_claims):
        if _claims(driver)[i].get_attribute("data-kind") == "response_type":
            Select(driver.find_element(By.ID, "rtype")).select_by_value("strong resistance")
        else:
            _click(driver, i, "no" if i == 0 else "yes")
    want = {
        "ai_values": {v: i != 0 for i, v in enumerate(f["ai_values"])},
        "human_values": {v: True for v in f["human_values"]},
        "human_missing": True,
        "response_type": "strong resistance",
        "subjective": True,
        "task_ok": True,
    }
    expected[items[1]["item"]] = want
    assert _progress(driver) == "2 / 6 judged"
    driver.find_element(By.ID, "next").click()

    # item 3: the type by its number key (3: neutral acknowledgment), the rest by clicks
    f = items[2]["features"]
    ActionChains(driver).send_keys("3").perform()
    for i in range(len(_claims(driver))):
        if _claims(driver)[i].get_attribute("data-kind") != "response_type":
            _click(driver, i, "yes")
    expected[items[2]["item"]] = {
        "ai_values": {v: True for v in f["ai_values"]},
        "human_values": {v: True for v in f["human_values"]},
        "human_missing": True,
        "response_type": "neutral acknowledgment",
        "subjective": True,
        "task_ok": True,
    }
    assert _progress(driver) == "3 / 6 judged"
    name = driver.find_element(By.ID, "reviewer")
    name.send_keys("ada")

    # reload: the judgments and the position survive
    driver.refresh()
    assert _progress(driver) == "3 / 6 judged"
    assert driver.find_element(By.ID, "position").text == "conversation 3 of 6"
    assert driver.find_element(By.ID, "reviewer").get_attribute("value") == "ada"
    assert "on" in _claims(driver)[0].find_element(By.CSS_SELECTOR, "button.yes").get_attribute(
        "class"
    )

    driver.find_element(By.ID, "export").click()
    target = downloads / "judgments.json"
    deadline = time.monotonic() + 20
    while not target.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert target.exists(), list(downloads.iterdir())
    time.sleep(0.2)
    data = json.loads(target.read_text())
    assert data["reviewer"] == "ada" and data["kind"] == "human"
    got = {j.pop("item"): j for j in data["judgments"]}
    assert got == expected

    out = tmp_path / "validity.json"
    p = run_cli("validate", "score", str(target), "--packet", str(packet), "--out", str(out))
    assert p.returncode == 0, p.stderr
    res = json.loads(out.read_text())
    ai = [ok for j in expected.values() for ok in j["ai_values"].values()]
    assert res["accuracy"]["ai_value_support"]["unweighted"]["k"] == sum(ai)
    assert res["accuracy"]["ai_value_support"]["unweighted"]["n"] == len(ai)
    assert res["accuracy"]["subjective"]["unweighted"]["k"] == 2
    assert res["reviewers"][0]["judged"] == 3
