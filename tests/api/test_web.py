"""The web page at `/`, driven in a real headless Chromium against a real `configspec serve`.

Debian's chromium and chromium-driver (tools/install_test_deps.sh) are used
by path, and SE_OFFLINE keeps Selenium Manager from fetching a browser or a
driver of its own.  The browser has no network beyond the server, so a page
that renders here renders offline.  Skipped, with the reason, only when
chromium or its driver is not installed.

Set CONFIGSPEC_UPDATE_SCREENSHOT=1 to rewrite docs/web.png from this run;
every run leaves its screenshots in the test's tmp directory.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.api.live import LiveServer

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
    pytest.skip("chromium and chromium-driver are not installed (Debian packages; run "
                "tools/install_test_deps.sh)", allow_module_level=True)

from selenium import webdriver  # noqa: E402
from selenium.common.exceptions import StaleElementReferenceException  # noqa: E402
from selenium.webdriver import Chrome  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.remote.webelement import WebElement  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "llama70b-edge.yaml"
WAIT_S = 120  # an upper bound on a UI step (solve + Pareto on a busy 2-core machine)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    tmp = tmp_path_factory.mktemp("web")
    with LiveServer(tmp / "web.sqlite3", tmp / "server.log", env={"CONFIGSPEC_API_TOKEN": ""}) as s:
        yield s
        s.stop()


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Chrome]:
    tmp = tmp_path_factory.mktemp("chromium")
    saved = os.environ.get("SE_OFFLINE")
    os.environ["SE_OFFLINE"] = "true"
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", "--window-size=1440,1700",
                 f"--user-data-dir={tmp / 'profile'}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    service = Service(executable_path=str(CHROMEDRIVER), log_output=str(tmp / "driver.log"))
    driver = webdriver.Chrome(service=service, options=options)
    try:
        yield driver
    finally:
        driver.quit()
        if saved is None:
            os.environ.pop("SE_OFFLINE", None)
        else:
            os.environ["SE_OFFLINE"] = saved


def wait(driver: Chrome, what: str, condition: Any) -> Any:
    """Poll `condition`; the page re-renders tables while it polls the API, so an element
    found a moment ago may be replaced before it is read (a stale reference): look again."""
    return WebDriverWait(driver, WAIT_S, poll_frequency=0.2,
                         ignored_exceptions=(StaleElementReferenceException,)).until(
        condition, message=f"timed out after {WAIT_S} s waiting for {what}")


def open_page(driver: Chrome, server: LiveServer) -> None:
    severe_console_errors(driver)  # start with an empty log
    driver.get(f"{server.url}/")
    wait(driver, "the page's script", lambda d: d.execute_script(
        "return document.body.dataset.ready === 'true'"))


def paste(driver: Chrome, text: str) -> None:
    """What a paste does: the text lands in the editor and an input event fires."""
    driver.execute_script(
        "const t = document.getElementById('text'); t.value = arguments[0];"
        "t.dispatchEvent(new Event('input', {bubbles: true}));", text)


def cells(row: WebElement) -> list[str]:
    return [c.text for c in row.find_elements(By.TAG_NAME, "td")]


def severe_console_errors(driver: Chrome) -> list[str]:
    """Script errors and Content-Security-Policy violations since the last call.

    A 4xx answer is logged by Chromium too; those are the API's answers to
    what a test sent, not faults of the page.
    """
    log: list[dict[str, Any]] = driver.get_log("browser")  # type: ignore[no-untyped-call]
    return [e["message"] for e in log
            if e["level"] == "SEVERE" and "responded with a status of 4" not in e["message"]]


def screenshot(driver: Chrome, path: Path) -> None:
    """The whole page, not just the window: the viewport is stretched to the content."""
    layout = driver.execute_cdp_cmd("Page.getLayoutMetrics", {})
    height = min(int(layout["cssContentSize"]["height"]) + 1, 4000)
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {
        "width": 1440, "height": height, "deviceScaleFactor": 1, "mobile": False})
    try:
        assert driver.save_screenshot(str(path)), f"no screenshot written to {path}"
    finally:
        driver.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
    assert path.stat().st_size > 10_000


def test_paste_solve_see_assignment_limits_why_and_pareto(
        server: LiveServer, browser: Chrome, tmp_path: Path) -> None:
    open_page(browser, server)
    paste(browser, EXAMPLE.read_text())
    browser.find_element(By.ID, "solve").click()

    rows = wait(browser, "the assignment table", lambda d: d.find_elements(
        By.CSS_SELECTOR, "#assignment tbody tr") or False)
    pools = {cells(r)[0] for r in rows}
    assert pools == {"rpi5", "orin"}
    first = cells(rows[0])
    assert first[2:4] == ["llama-3.2-1b-instruct", "Q4_K_M"]
    assert "verifier: llama-3.1-70b" in browser.find_element(By.ID, "assignment").text
    assert "optimal" in browser.find_element(By.ID, "solve-status").text

    limits = browser.find_elements(By.CSS_SELECTOR, "#limits tbody tr")
    assert any("max_power_w" in r.text for r in limits)
    assert all(("binds" in r.text) != ("slack" in r.text) for r in limits)
    cards = browser.find_element(By.ID, "fleet").text
    assert "tok/s" in cards and "$/h" in cards
    why = browser.find_element(By.ID, "why").text
    assert "rpi5" in why and "runner-up" in why
    sens = browser.find_elements(By.CSS_SELECTOR, "#sensitivity-out tbody tr")
    assert {cells(r)[0] for r in sens} == {"acceptance", "draft_tok_s", "rtt_s",
                                           "verify_latency", "power_w", "price"}
    assert any("max_power_w" in r.text for r in sens)  # power is what this plan is near

    points = wait(browser, "the Pareto points", lambda d: d.find_elements(
        By.CSS_SELECTOR, "#plot svg circle.pt") or False)
    assert len(points) >= 5
    assert browser.find_elements(By.CSS_SELECTOR, "#plot svg circle.chosen")
    labels = " ".join(t.text for t in browser.find_elements(
        By.CSS_SELECTOR, "#plot svg text.label"))
    assert "tok/s" in labels and "$/h" in labels
    points[len(points) // 2].click()
    picked = wait(browser, "the clicked point's assignment", lambda d: d.find_elements(
        By.CSS_SELECTOR, "#point tbody tr") or False)
    assert {cells(r)[0] for r in picked} == {"rpi5", "orin"}

    stored = [o.text for o in browser.find_elements(By.CSS_SELECTOR, "#stored option")]
    assert any("llama70b-edge" in o for o in stored), stored
    assert severe_console_errors(browser) == []
    screenshot(browser, tmp_path / "solved.png")


def test_invalid_spec_marks_the_line(server: LiveServer, browser: Chrome,
                                     tmp_path: Path) -> None:
    text = EXAMPLE.read_text()
    bad = text.replace("count: 200", "count: -3", 1)
    line = bad[:bad.index("count: -3")].count("\n") + 1
    open_page(browser, server)
    paste(browser, bad)
    browser.find_element(By.ID, "validate").click()

    alert = wait(browser, "the error message", lambda d: d.find_elements(
        By.CSS_SELECTOR, "#messages .msg.bad") or False)[0]
    assert f"line {line}, column" in alert.text
    assert "devices[0].count" in alert.text
    assert browser.find_elements(By.CSS_SELECTOR, f'#marks div[data-line="{line}"]')
    caret_line = browser.execute_script(
        "const t = document.getElementById('text');"
        "return t.value.slice(0, t.selectionStart).split('\\n').length;")
    assert caret_line == line
    screenshot(browser, tmp_path / "invalid.png")

    paste(browser, text)  # editing clears the marks
    assert not browser.find_elements(By.CSS_SELECTOR, "#marks div")
    browser.find_element(By.ID, "validate").click()
    ok = wait(browser, "the valid message", lambda d: d.find_elements(
        By.CSS_SELECTOR, "#messages .msg.ok") or False)[0]
    assert "Valid: llama70b-edge" in ok.text


def test_open_a_file_and_a_stored_spec(server: LiveServer, browser: Chrome,
                                      tmp_path: Path) -> None:
    text = EXAMPLE.read_text()
    httpx.post(f"{server.url}/v1/solve", content=text, timeout=120,
               headers={"Content-Type": "application/yaml"}).raise_for_status()  # stores it
    open_page(browser, server)
    upload = browser.find_element(By.ID, "file")
    browser.execute_script("arguments[0].hidden = false;", upload)  # what its label opens
    upload.send_keys(str(EXAMPLE))
    wait(browser, "the opened file", lambda d: "Opened llama70b-edge.yaml" in d.find_element(
        By.ID, "messages").text)
    assert browser.find_element(By.ID, "text").get_attribute("value") == text

    paste(browser, "")
    option = wait(browser, "a stored spec", lambda d: [
        o for o in d.find_elements(By.CSS_SELECTOR, "#stored option")
        if "llama70b-edge" in o.text] or False)[0]
    option.click()
    wait(browser, "the stored spec's text", lambda d: d.find_element(
        By.ID, "text").get_attribute("value") == text)
    assert "Opened stored spec llama70b-edge" in browser.find_element(By.ID, "messages").text


def test_jobs_and_stored_profiles(server: LiveServer, browser: Chrome,
                                  tmp_path: Path) -> None:
    profile = {"device": "rpi5", "draft": "llama-3.2-1b-instruct", "quant": "Q4_K_M",
               "draft_tok_s": 15.1, "power_w": 8.0,
               "acceptance": {"llama-3.1-70b": {"2": 0.7, "3": 0.65, "4": 0.6}}}
    r = httpx.post(f"{server.url}/v1/profiles", json={"profiles": [profile]}, timeout=30)
    assert r.status_code == 201, r.text

    open_page(browser, server)
    profiles = wait(browser, "the stored profiles", lambda d: d.find_elements(
        By.CSS_SELECTOR, "#profiles tbody tr") or False)
    assert cells(profiles[0])[:3] == ["rpi5", "llama-3.2-1b-instruct", "Q4_K_M"]
    assert "llama-3.1-70b: K 2–4" in profiles[0].text

    paste(browser, EXAMPLE.read_text())
    browser.find_element(By.ID, "submit-job").click()
    wait(browser, "the job to succeed", lambda d: any(
        "succeeded" in r.text for r in d.find_elements(By.CSS_SELECTOR, "#jobs tbody tr")))
    row = next(r for r in browser.find_elements(By.CSS_SELECTOR, "#jobs tbody tr")
               if "succeeded" in r.text)
    row.find_element(By.CSS_SELECTOR, "button.link").click()
    rows = wait(browser, "the job's result", lambda d: d.find_elements(
        By.CSS_SELECTOR, "#assignment tbody tr") or False)
    assert {cells(r)[0] for r in rows} == {"rpi5", "orin"}
    assert "optimal" in browser.find_element(By.ID, "messages").text

    browser.find_element(By.ID, "pareto").click()  # the front, with the job's point marked
    wait(browser, "the chosen point", lambda d: d.find_elements(
        By.CSS_SELECTOR, "#plot svg circle.chosen") or False)
    assert severe_console_errors(browser) == []
    shot = tmp_path / "web.png"  # everything at once: the picture in docs/
    screenshot(browser, shot)
    if os.environ.get("CONFIGSPEC_UPDATE_SCREENSHOT") == "1":
        shutil.copyfile(shot, ROOT / "docs" / "web.png")


def test_api_docs_render_offline(server: LiveServer, browser: Chrome) -> None:
    browser.get(f"{server.url}/docs")
    ops = wait(browser, "Swagger UI's operations", lambda d: d.find_elements(
        By.CSS_SELECTOR, ".opblock") or False)
    assert len(ops) >= 10
    resources = browser.execute_script(
        "return performance.getEntriesByType('resource').map(e => e.name)")
    assert resources and all(u.startswith(server.url) for u in resources), resources

    browser.get(f"{server.url}/redoc")
    wait(browser, "ReDoc's operations", lambda d: "/v1/solve" in d.find_element(
        By.TAG_NAME, "body").text or "Choose (draft" in d.find_element(By.TAG_NAME, "body").text)
