"""``hub serve-web`` as a user meets it: a real worker, the real web process, a real browser.

One hub (worker + ``hub serve-web`` on a free port) for the module: Midden-Groningen's events go
in before the web starts, Het Hogeland's after it is ready (so the pages must follow the topics).
HTTP checks use ``requests``; the browser checks drive Debian's headless chromium through
selenium (``make chromium`` installs it) and save screenshots and a printed PDF of the address page
under ``tests/artifacts/`` for review.
"""

from __future__ import annotations

import base64
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from connectors.kafka_publish import publish
from hub.web.access import token_hash
from tests.integration.pipeline_harness import HubUnderTest, firing_set, hub_under_test
from tests.unit.test_web_fixtures import EVENTS, HH_KEY, LEAD_NAME, MG_KEY

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
TOKENS = {"mg": "mg-token-1", "mg-lezer": "mg-read-1", "hh": "hh-token-1"}
ACCESS = f"""
[[accounts]]
name = "mg"
groups = ["MIDDEN_GRONINGEN"]
contacts = true
token_sha256 = "{token_hash(TOKENS["mg"])}"

[[accounts]]
name = "mg-lezer"
groups = ["MIDDEN_GRONINGEN"]
token_sha256 = "{token_hash(TOKENS["mg-lezer"])}"

[[accounts]]
name = "hh"
groups = ["HET_HOGELAND"]
token_sha256 = "{token_hash(TOKENS["hh"])}"
"""
# the windows of the Midden-Groningen dossier's cases, as the events planned them
WINDOWS = {
    "NCG · STRENGTHENING · V-1": ("2024-06-01", "2024-11-30"),
    "IMG · DAMAGE · S-1": ("", ""),
    "HOUSING_CORPORATION · RENOVATION · R-1": ("2024-11-01", "2025-02-28"),
}


@dataclass
class Site:
    hub: HubUnderTest
    url: str
    web: subprocess.Popen[bytes]
    log: Path

    def get(self, path: str, account: str) -> requests.Response:
        return requests.get(
            self.url + path.lstrip("/"),
            headers={"Authorization": f"Bearer {TOKENS[account]}"},
            timeout=30,
        )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait(predicate, what: str, site_log: Path, timeout: float = 120.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if predicate():
                return
        except requests.RequestException:
            pass
        time.sleep(0.5)
    raise AssertionError(f"{what} not within {timeout:.0f}s:\n{site_log.read_text()[-3000:]}")


@pytest.fixture(scope="module")
def site(broker: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    root = tmp_path_factory.mktemp("web")
    access = root / "access.toml"
    access.write_text(ACCESS, encoding="utf-8")
    mg = [e for e in EVENTS if e["address"]["gemeentecode"] == "GM1952"]
    hh = [e for e in EVENTS if e["address"]["gemeentecode"] == "GM1966"]
    with hub_under_test(broker, root) as hub:
        publish(mg, hub.settings)
        hub.start_worker()
        hub.wait_caught_up()
        port = _free_port()
        log = root / "web.log"
        web = subprocess.Popen(
            [sys.executable, "-m", "hubctl", "serve-web", "--port", str(port)],
            env={**hub.env(0), "HUB_WEB_ACCESS": str(access), "HUB_LOG_LEVEL": "INFO"},
            stdout=log.open("wb"),
            stderr=subprocess.STDOUT,
        )
        site = Site(hub, f"http://127.0.0.1:{port}/", web, log)
        try:
            _wait(lambda: requests.get(site.url + "readyz", timeout=5).ok, "web ready", log)
            publish(hh, hub.settings)  # after the web is up: it must follow the topics
            hub.wait_caught_up()
            _wait(
                lambda: site.get(f"/adres/{HH_KEY}", "hh").status_code == 200,
                "Het Hogeland's address on the page",
                log,
            )
            yield site
        finally:
            web.terminate()
            assert web.wait(30) == 0, log.read_text()[-3000:]  # SIGTERM: a clean stop


def test_pages_follow_the_topics_and_count_what_the_stream_fires(site: Site) -> None:
    overview = site.get("/", "mg")
    assert overview.status_code == 200
    assert 'href="/stuurgroep/MIDDEN_GRONINGEN"' in overview.text
    assert "HET_HOGELAND" not in overview.text
    stream = {
        fp: r
        for fp, r in ((r["fingerprint"], r) for r in site.hub.alert_records())
        if fp in firing_set(site.hub.alert_records())
    }
    mg_firing = sum(1 for r in stream.values() if r["steering_group"] == "MIDDEN_GRONINGEN")
    group = site.get("/stuurgroep/MIDDEN_GRONINGEN", "mg")
    assert f"{mg_firing} actieve signalen" in group.text
    assert group.text.count(f'href="/adres/{MG_KEY}"') == mg_firing


def test_access_is_limited_to_the_own_steering_group(site: Site) -> None:
    assert site.get(f"/adres/{MG_KEY}", "hh").status_code == 403
    assert site.get("/stuurgroep/MIDDEN_GRONINGEN", "hh").status_code == 403
    assert requests.get(site.url + f"adres/{MG_KEY}", timeout=30).status_code == 401
    reader = site.get(f"/adres/{MG_KEY}", "mg-lezer")
    assert reader.status_code == 200 and LEAD_NAME not in reader.text
    assert LEAD_NAME in site.get(f"/adres/{MG_KEY}", "mg").text


def test_address_views_are_audited_without_the_address(site: Site) -> None:
    site.get(f"/adres/{MG_KEY}", "mg")
    site.get(f"/adres/{MG_KEY}", "hh")
    time.sleep(0.5)
    log = site.log.read_text(errors="replace")
    audit = [line for line in log.splitlines() if "address page view" in line]
    assert any("outcome=200" in line and "account=mg" in line for line in audit), log[-2000:]
    assert any("outcome=403" in line and "account=hh" in line for line in audit), log[-2000:]
    assert MG_KEY not in log and LEAD_NAME not in log
    assert TOKENS["mg"] not in log


# ----------------------------------------------------------------------------- real browser


def _chrome():  # type: ignore[no-untyped-def]
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    binary = shutil.which("chromium")
    driver_path = shutil.which("chromedriver")
    if binary is None or driver_path is None:
        pytest.fail("chromium/chromedriver missing: run `make chromium` (part of `make install`)")
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--window-size=1280,1000"):  # fmt: skip
        options.add_argument(arg)
    return webdriver.Chrome(service=Service(driver_path), options=options)


@pytest.fixture
def browser() -> Iterator[object]:
    driver = _chrome()
    try:
        yield driver
    finally:
        driver.quit()


def test_browser_follows_overview_to_address_and_sees_every_case_window(
    site: Site, browser: object
) -> None:
    from selenium.webdriver.common.by import By

    driver = browser
    ARTIFACTS.mkdir(exist_ok=True)
    driver.get(site.url + f"login?token={TOKENS['mg']}")  # type: ignore[attr-defined]
    assert driver.find_element(By.TAG_NAME, "h1").text == "Overzicht per stuurgroep"  # type: ignore[attr-defined]
    driver.save_screenshot(str(ARTIFACTS / "web-overview.png"))  # type: ignore[attr-defined]
    driver.find_element(By.LINK_TEXT, "Lokale stuurgroep Midden-Groningen").click()  # type: ignore[attr-defined]
    assert "Stuurgroep" in driver.find_element(By.TAG_NAME, "h1").text  # type: ignore[attr-defined]
    driver.save_screenshot(str(ARTIFACTS / "web-group.png"))  # type: ignore[attr-defined]
    driver.find_elements(By.LINK_TEXT, MG_KEY)[0].click()  # type: ignore[attr-defined]
    assert driver.find_element(By.TAG_NAME, "h1").text == f"Adres {MG_KEY}"  # type: ignore[attr-defined]

    bars = driver.find_elements(By.CSS_SELECTOR, "svg.gantt g.case")  # type: ignore[attr-defined]
    found = {b.get_attribute("data-label"): (b.get_attribute("data-start"),
             b.get_attribute("data-end")) for b in bars}  # fmt: skip
    assert found == WINDOWS
    rects = {
        b.get_attribute("data-label"): b.find_element(By.CSS_SELECTOR, "rect.window").rect
        for b in bars
        if b.get_attribute("data-start")
    }
    ncg, corp = rects["NCG · STRENGTHENING · V-1"], rects["HOUSING_CORPORATION · RENOVATION · R-1"]
    assert ncg["width"] > 0 and corp["width"] > 0
    assert ncg["x"] < corp["x"] < ncg["x"] + ncg["width"]  # the overlap is visible as such
    lead = driver.find_element(By.CSS_SELECTOR, "svg.gantt g.case.lead")  # type: ignore[attr-defined]
    assert lead.get_attribute("data-label") == "NCG · STRENGTHENING · V-1"
    assert LEAD_NAME in driver.find_element(By.ID, "lead").text  # type: ignore[attr-defined]
    signals = driver.find_element(By.ID, "signals").text  # type: ignore[attr-defined]
    assert "Samenloop" in signals and "Overlappende planning" in signals
    driver.save_screenshot(str(ARTIFACTS / "web-address.png"))  # type: ignore[attr-defined]
    pdf = driver.print_page()  # type: ignore[attr-defined]
    (ARTIFACTS / "web-address-print.pdf").write_bytes(base64.b64decode(pdf))


def test_browser_user_of_another_group_gets_403(site: Site, browser: object) -> None:
    from selenium.webdriver.common.by import By

    driver = browser
    ARTIFACTS.mkdir(exist_ok=True)
    driver.get(site.url + f"login?token={TOKENS['hh']}")  # type: ignore[attr-defined]
    driver.get(site.url + f"adres/{MG_KEY}")  # type: ignore[attr-defined]
    assert driver.find_element(By.TAG_NAME, "h1").text == "Geen toegang"  # type: ignore[attr-defined]
    assert LEAD_NAME not in driver.page_source  # type: ignore[attr-defined]
    driver.save_screenshot(str(ARTIFACTS / "web-403.png"))  # type: ignore[attr-defined]
    # the same URL, same cookie, as the HTTP status the browser got
    cookie = driver.get_cookie("hub_token")  # type: ignore[attr-defined]
    assert cookie is not None and cookie["httpOnly"]
    status = requests.get(
        site.url + f"adres/{MG_KEY}", cookies={"hub_token": cookie["value"]}, timeout=30
    ).status_code
    assert status == 403
    assert os.environ.get("HUB_WEB_ACCESS") is None  # the fixture did not leak into this process
