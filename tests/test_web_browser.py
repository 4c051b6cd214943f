"""The phone page in a real browser: headless Chromium (Debian's chromium + chromium-driver) via Selenium.

`harstream serve` and `harstream web` (HTTPS, a self-signed certificate, the
pairing token) run as processes; the page is opened, Start tapped, and fed
synthetic ``DeviceMotionEvent``s at 60 Hz built from two HAPT test recordings
(m/s², deg/s, alpha about z), dispatched on ``window`` faster than real time
with their own timestamps. The labels the page received score within 1
point of `replay --score`; the page keeps its stream id across a reload; its
screenshot goes to docs/img/phone-page.png.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("selenium", reason="the web extra is not installed: pip install -e '.[web]'")
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from web_signals import browser_rows

from harstream.protocol import decode_event
from replay.scoring import Scorer
from replay.session import score_replay
from replay.sources import ReplayStream, load_streams, tagged

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
if CHROMIUM is None or CHROMEDRIVER is None:
    pytest.skip("no chromium/chromedriver on PATH: apt-get install -y chromium chromium-driver "
                "(scripts/test.sh does)", allow_module_level=True)

REPO_ROOT = Path(__file__).resolve().parents[1]
SCREENSHOT = REPO_ROOT / "docs" / "img" / "phone-page.png"
DISPATCH = """
const rows = arguments[0];
for (const r of rows) {
  const ev = new DeviceMotionEvent("devicemotion", {
    accelerationIncludingGravity: {x: r[1], y: r[2], z: r[3]},
    rotationRate: {alpha: r[4], beta: r[5], gamma: r[6]}, interval: 1000 / 60});
  ev.harstreamTime = r[0];
  window.dispatchEvent(ev);
}
window.harstream.flush();
return window.harstream.sent;
"""


@pytest.fixture(scope="module")
def engine(free_endpoint: Callable[[], str], serve_process: Callable[..., Any]) -> Iterator[tuple[str, str]]:
    ingest, publish = free_endpoint(), free_endpoint()
    with serve_process(ingest, publish):
        yield ingest, publish


def _start_gateway(ingest: str, publish: str, home: Path, port: int = 0) -> tuple[subprocess.Popen[str], str]:
    """`harstream web` over HTTPS on loopback (certificate and token kept in ``home``); its printed URL."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "harstream", "web", "--ingest", ingest, "--publish", publish, "--listen",
         f"127.0.0.1:{port}", "--no-qr", "--max-samples-per-s", "1e7", "--token-file", str(home / "token")],
        stdout=subprocess.PIPE, stderr=(home / "web.err").open("w"), text=True,
        env={**os.environ, "XDG_CACHE_HOME": str(home)},
    )
    assert proc.stdout is not None
    url = proc.stdout.readline().strip()
    assert url.startswith("https://localhost:"), (url, (home / "web.err").read_text())
    return proc, url


def _stop(proc: subprocess.Popen[str]) -> None:
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=30)


@pytest.fixture(scope="module")
def gateway_url(engine: tuple[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A running `harstream web` over HTTPS on a free loopback port; its printed URL."""
    proc, url = _start_gateway(*engine, tmp_path_factory.mktemp("web"))
    try:
        yield url
    finally:
        _stop(proc)


@pytest.fixture(scope="module")
def browser() -> Iterator[webdriver.Chrome]:
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM or ""
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--ignore-certificate-errors",
                 "--window-size=430,900", "--disable-gpu"):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER or ""))
    driver.set_script_timeout(120)
    try:
        yield driver
    finally:
        driver.quit()


def _wait(driver: webdriver.Chrome, script: str, timeout_s: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout_s
    while not (value := driver.execute_script(script)):
        assert time.monotonic() < deadline, f"timed out waiting for: {script}"
        time.sleep(0.1)
    return value


def _play(driver: webdriver.Chrome, url: str, stream: ReplayStream) -> tuple[str, list[dict[str, Any]]]:
    """Open the page afresh, tap Start, dispatch the recording at 60 Hz; its stream id and predictions."""
    driver.get(url)
    driver.execute_script("localStorage.clear()")
    driver.get(url)
    driver.find_element(By.ID, "start").click()
    stream_id = _wait(driver, "return window.harstream.stream")
    rows = browser_rows(stream.samples, rate=60.0)
    for start in range(0, len(rows), 1200):
        driver.execute_script(DISPATCH, rows[start:start + 1200])
    expected = sum(1 for _ in Scorer([dataclasses.replace(stream, stream_id=stream_id)]).expected[stream_id])
    _wait(driver, f"return window.harstream.predictions.length >= {expected}", timeout_s=120)
    predictions: list[dict[str, Any]] = driver.execute_script("return window.harstream.predictions")
    return stream_id, predictions


@pytest.mark.slow
def test_the_page_in_chromium_scores_like_replay(engine: tuple[str, str], gateway_url: str,
                                                 browser: webdriver.Chrome, hapt_dir: Path) -> None:
    ingest, publish = engine
    recordings = [s for s in load_streams(hapt_dir, {2, 4}) if s.stream_id.startswith(("exp03_", "exp07_"))]
    plain = score_replay(tagged(recordings, "plain-browser"), ingest, publish, speed=0).report()
    renamed, received = [], []
    for stream in recordings:
        stream_id, predictions = _play(browser, gateway_url, stream)
        renamed.append(dataclasses.replace(stream, stream_id=stream_id))
        received += predictions
        shown = browser.find_element(By.ID, "label").text
        assert shown == predictions[-1]["smoothed"].replace("_", " ").lower()
        assert browser.execute_script("return window.harstream.errors") == []
    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    browser.save_screenshot(str(SCREENSHOT))
    scorer = Scorer(renamed)
    for body in received:
        scorer.update(decode_event([body["stream"].encode(), json.dumps(body).encode()]))
    report = scorer.report()
    print(f"browser 60 Hz: accuracy {report['accuracy']:.4f} over {report['n_scored']} windows; "
          f"replay {plain['accuracy']:.4f}")
    assert report["windows_missing"] == 0, report
    assert abs(report["accuracy"] - plain["accuracy"]) <= 0.01, (report["accuracy"], plain["accuracy"])
    # a reload keeps the phone's stream id (localStorage)
    browser.refresh()
    assert browser.execute_script("return window.harstream.stream") == renamed[-1].stream_id


def test_the_page_warns_when_gravity_is_off_while_still(gateway_url: str, browser: webdriver.Chrome) -> None:
    """A still phone reading 1 m/s² (a sensor in g, say) is called out; 9.81 is not."""
    browser.get(gateway_url)
    browser.find_element(By.ID, "start").click()
    _wait(browser, "return window.harstream.stream")
    t0 = time.time() * 1000.0
    for g, start in ((9.81, t0), (1.0, t0 + 3000.0)):
        rows = [[start + i * 1000.0 / 60, 0.0, g, 0.0, 0.0, 0.0, 0.0] for i in range(150)]
        browser.execute_script(DISPATCH, rows)
        warned = browser.execute_script("return window.harstream.gravityWarning")
        assert warned == (g == 1.0)
        assert browser.find_element(By.ID, "warning").is_displayed() == (g == 1.0)
    assert "not about 9.81" in browser.find_element(By.ID, "warning").text


def test_the_page_checks_the_sign_of_gravity_against_orientation(gateway_url: str,
                                                                 browser: webdriver.Chrome) -> None:
    """A browser reporting acceleration negated (gravity pointing down while its orientation says the phone
    is upright) is found out, and the gateway told; a W3C one is left alone."""
    for acc_y, sign in ((9.80665, 1), (-9.80665, -1)):
        browser.get(gateway_url)
        browser.find_element(By.ID, "start").click()
        _wait(browser, "return window.harstream.stream")
        browser.execute_script("window.dispatchEvent(new DeviceOrientationEvent('deviceorientation', "
                               "{alpha: 0, beta: 90, gamma: 0}))")  # upright, portrait
        t0 = time.time() * 1000.0
        for k in range(8):  # 8 checks of a still second each
            rows = [[t0 + (60 * k + i) * 1000.0 / 60, 0.0, acc_y, 0.0, 0.0, 0.0, 0.0] for i in range(60)]
            browser.execute_script(DISPATCH, rows)
        assert browser.execute_script("return window.harstream.accSign") == sign
        if sign == -1:
            assert _wait(browser, "return window.harstream.frameConfirmed") == -1
            assert "opposite sign" in browser.find_element(By.ID, "notice").text


def test_the_page_reconnects_and_keeps_its_stream(engine: tuple[str, str], browser: webdriver.Chrome,
                                                   tmp_path: Path) -> None:
    """The gateway stops and comes back on the same port (same token file): the page says it is
    disconnected, reconnects by itself with the same stream id, and its samples flow again."""
    proc, url = _start_gateway(*engine, tmp_path)
    port = int(url.split(":")[2].split("/")[0])
    try:
        browser.get(url)
        browser.find_element(By.ID, "start").click()
        stream = _wait(browser, "return window.harstream.stream")
        _stop(proc)
        assert _wait(browser, "return window.harstream.state.startsWith('disconnected') && "
                     "window.harstream.state").startswith("disconnected")
        proc, _ = _start_gateway(*engine, tmp_path, port)
        _wait(browser, "return window.harstream.state === 'connected'", timeout_s=60)
        _wait(browser, f"return window.harstream.stream === {stream!r}")
        t0 = time.time() * 1000.0
        rows = [[t0 + i * 1000.0 / 60, 0.0, 9.80665, 0.0, 0.0, 0.0, 0.0] for i in range(60)]
        sent_before = browser.execute_script("return window.harstream.sent")
        _wait(browser, "return window.harstream.state === 'connected' && window.harstream.stream !== null")
        time.sleep(0.5)  # the hello's answer
        assert browser.execute_script(DISPATCH, rows) == sent_before + 60
        assert browser.execute_script("return window.harstream.errors") == []
    finally:
        _stop(proc)
