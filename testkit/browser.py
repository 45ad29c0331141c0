"""Open a report or a web UI in headless Chromium (Debian `chromium` + `chromium-driver`, via selenium): for
tests and the benchmark. Returns what a reader would see: load time, console messages, sections or the
visible text, a screenshot.

Needs the dev extra (`selenium`); the driver binary is given explicitly, so selenium never tries to
download one.
"""
from __future__ import annotations

import base64
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

CHROMIUM = ("chromium", "chromium-browser", "google-chrome")
DRIVER = ("chromedriver",)
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-dev-shm-usage", "--window-size=1400,1000")


@dataclass
class PageView:
    load_ms: float                       # navigation start to the end of the load event
    console: list[dict] = field(default_factory=list)   # browser log entries (level, message)
    sections: list[str] = field(default_factory=list)   # ids of <section> elements
    counts: dict[str, int] = field(default_factory=dict)  # elements per CSS selector asked for
    broken_images: int = 0               # <img> elements that did not decode
    title: str = ""
    text: str = ""                       # the page's visible text (every <details> opened, for view)


def find_browser() -> tuple[str, str] | None:
    """(chromium, chromedriver) paths, or None when either is missing."""
    browser = next((p for p in map(shutil.which, CHROMIUM) if p), None)
    driver = next((p for p in map(shutil.which, DRIVER) if p), None)
    return (browser, driver) if browser and driver else None


@contextmanager
def _chromium() -> Iterator:
    """A fresh headless Chromium (its own profile) driven by selenium; quit afterwards."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    found = find_browser()
    if found is None:
        raise RuntimeError("headless Chromium needs the Debian packages chromium and chromium-driver "
                           "(`make debs` installs them)")
    browser, driver_path = found
    with tempfile.TemporaryDirectory(prefix="curate-chromium-") as profile:
        opts = webdriver.ChromeOptions()
        opts.binary_location = browser
        for flag in (*FLAGS, f"--user-data-dir={profile}"):
            opts.add_argument(flag)
        opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        driver = webdriver.Chrome(service=Service(executable_path=driver_path), options=opts)
        try:
            yield driver
        finally:
            driver.quit()


def view_url(url: str, wait_for: tuple[str, ...], timeout: float = 90, screenshot: str | Path | None = None) -> PageView:
    """Load `url` (a web app: it renders after loading) and wait until its visible text holds every string of
    `wait_for`, or `timeout` seconds pass; returns the text then, the console and the load time."""
    with _chromium() as driver:
        driver.get(url)
        deadline = time.monotonic() + timeout
        text = ""
        while time.monotonic() < deadline:
            text = driver.execute_script("return document.body ? document.body.innerText : '';") or ""
            if all(w in text for w in wait_for):
                break
            time.sleep(0.5)
        load_ms = driver.execute_script(
            "const n = performance.getEntriesByType('navigation')[0]; return n.loadEventEnd - n.startTime;")
        if screenshot:
            driver.save_screenshot(str(screenshot))
        return PageView(float(load_ms), driver.get_log("browser"), title=driver.title, text=text)


def view(page: str | Path, screenshot: str | Path | None = None, selectors: tuple[str, ...] = ()) -> PageView:
    """Load `page` (a local HTML file) in a fresh headless Chromium and report what happened."""
    with _chromium() as driver:
        driver.get(Path(page).resolve().as_uri())
        load_ms = driver.execute_script(
            "const n = performance.getEntriesByType('navigation')[0]; return n.loadEventEnd - n.startTime;")
        sections = driver.execute_script("return [...document.querySelectorAll('section')].map(s => s.id);")
        driver.set_script_timeout(30)
        driver.execute_script("document.querySelectorAll('details').forEach(d => d.open = true);")
        # The load event waits for every (non-lazy) image, so a loaded image of zero width is broken.
        broken = driver.execute_script(
            "return [...document.images].filter(i => !i.complete || i.naturalWidth === 0).length;")
        counts = {sel: driver.execute_script("return document.querySelectorAll(arguments[0]).length;", sel)
                  for sel in selectors}
        if screenshot:
            _full_page_png(driver, Path(screenshot))
        text = driver.execute_script("return document.body ? document.body.innerText : '';") or ""
        console = driver.get_log("browser")
        return PageView(float(load_ms), console, list(sections), counts, int(broken), driver.title, text)


def _full_page_png(driver, path: Path) -> None:
    """A screenshot of the whole page, not just the window (DevTools captureBeyondViewport)."""
    width, height = driver.execute_script(
        "return [document.documentElement.scrollWidth, document.documentElement.scrollHeight];")
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                           {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False})
    driver.execute_async_script("const done = arguments[arguments.length - 1];"
                                "requestAnimationFrame(() => requestAnimationFrame(() => done()));")
    shot = driver.execute_cdp_cmd("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True})
    path.write_bytes(base64.b64decode(shot["data"]))
