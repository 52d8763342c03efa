"""A headless Chromium driven through chromedriver: the machine's own, never a download.

Debian's `chromium` and `chromium-driver` (`python3 ci/dev.py test` installs them for the
update tier), or Google Chrome and its driver where a CI image ships those instead.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "chrome")


def _found(names: tuple[str, ...], *folders: str) -> str:
    for name in names:
        for folder in folders:
            candidate = Path(folder) / name
            if folder and candidate.is_file():
                return str(candidate)
        path = shutil.which(name)
        if path:
            return path
    raise RuntimeError(f"none of {', '.join(names)} is on PATH: install chromium-driver")


@contextlib.contextmanager
def chromium(width: int = 1600, height: int = 1000) -> Iterator[Any]:
    """A Selenium WebDriver over headless Chromium; the browser and driver stop on the way out."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = _found(BROWSERS)
    for argument in (
        "--headless=new",
        "--no-sandbox",  # as root in a container, Chromium's sandbox cannot start
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--disable-extensions",
        "--disable-background-networking",
        f"--window-size={width},{height}",
    ):
        options.add_argument(argument)
    driver_path = _found(("chromedriver",), os.environ.get("CHROMEWEBDRIVER", ""))
    service = Service(executable_path=driver_path)
    driver = webdriver.Chrome(service=service, options=options)
    try:
        yield driver
    finally:
        driver.quit()


def load_seconds(driver: Any) -> dict[str, float]:
    """The page's navigation timing, in seconds: DOM ready and load event, from the start."""
    timing = driver.execute_script(
        "const n = performance.getEntriesByType('navigation')[0];"
        "return [n.domContentLoadedEventEnd, n.loadEventEnd];"
    )
    return {"dom_ready": timing[0] / 1000, "loaded": timing[1] / 1000}
