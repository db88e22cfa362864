"""The web page's drift panel, in headless Chromium against `configspec serve --watch LOCK`.

Observations with rpi5's acceptance dropped are posted over HTTP; the panel shows rpi5
drifted and orin ok, and its re-plan names rpi5 without touching the lock.  Uses the
browser and helpers of tests/api/test_web.py (skipped as it is without chromium).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from selenium.webdriver import Chrome
from selenium.webdriver.common.by import By

from tests.api.drift_data import ALPHA, ORIN, RPI5, copy_example, reports
from tests.api.live import LiveServer
from tests.api.test_web import (  # noqa: F401  (browser is a fixture)
    browser,
    cells,
    open_page,
    severe_console_errors,
    wait,
)


@pytest.fixture(scope="module")
def watching(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LiveServer, Path]]:
    tmp = tmp_path_factory.mktemp("web-drift")
    lock = copy_example(tmp / "fleet")
    with LiveServer(tmp / "web.sqlite3", tmp / "server.log", "--watch", str(lock),
                    env={"CONFIGSPEC_API_TOKEN": ""}) as s:
        yield s, lock
        s.stop()


def test_the_drift_panel_marks_the_pool_and_shows_the_replan(
        watching: tuple[LiveServer, Path], browser: Chrome) -> None:  # noqa: F811
    server, lock = watching
    before = lock.read_bytes()
    body = {"observations": reports(RPI5, 0.40) + reports(ORIN, ALPHA["orin"], seed=8)}
    r = httpx.post(f"{server.url}/v1/observations", json=body, timeout=60)
    assert r.status_code == 200, r.text
    open_page(browser, server)
    browser.find_element(By.ID, "drift-refresh").click()
    # the table is rendered again by each check: read it whole inside the wait
    rows = wait(browser, "the drift table", lambda d: [cells(r) for r in d.find_elements(
        By.CSS_SELECTOR, "#drift tbody tr")] or False)
    assert {r[0]: r[2] for r in rows} == {"rpi5": "drifted", "orin": "ok"}
    assert "lower" in next(r for r in rows if r[0] == "rpi5")[3]
    browser.find_element(By.ID, "drift-replan").click()
    moved = wait(browser, "the proposed re-plan", lambda d: [cells(r) for r in d.find_elements(
        By.CSS_SELECTOR, "#replan tbody tr")] or False)
    assert "rpi5" in [r[0] for r in moved]
    assert "not applied" in browser.find_element(By.ID, "replan").text
    assert severe_console_errors(browser) == []
    assert lock.read_bytes() == before
