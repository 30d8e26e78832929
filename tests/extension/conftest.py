"""Fixtures for the extension's end-to-end tests: a live `mimical serve` and real
Chromium with the unpacked extension loaded (Debian's /usr/bin/chromium, never a
downloaded browser).

Both are module-scoped: starting them costs seconds, and the tests in one module
share one backend and one browser profile.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from mimical.testing.servers import free_port, stop_server, wait_for_port
from tests.fixtures.browser import CHROMIUM, CHROMIUM_FLAGS

REPO = Path(__file__).resolve().parents[2]
EXTENSION = REPO / "extension"
# The popup's own width (popup.css); the height fits a card plus the form.
POPUP_VIEWPORT = {"width": 360, "height": 720}


@pytest.fixture(scope="module")
def backend_url(tmp_path_factory) -> Iterator[str]:
    """The embedded all-in-one server on a free loopback port with a fresh home."""
    home = tmp_path_factory.mktemp("mimical-home")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "MIMICAL_HOME": str(home),
        "MIMICAL_PUBLIC_URL": url,
    }
    log = home / "serve.log"
    process = subprocess.Popen(
        [
            *(sys.executable, "-m", "mimical.cli", "serve", "--host", "127.0.0.1"),
            *("--port", str(port)),
            # Tiny training: the persona only has to answer, not to be good.
            *("--epochs", "1", "--max-minutes", "0.25"),
        ],
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        env=env,
    )
    try:
        wait_for_port(port, process, timeout=60)
        yield url
    finally:
        stop_server(process)
        if os.environ.get("MIMICAL_TEST_SHOW_LOGS"):
            print(log.read_text(errors="replace"))


@dataclass
class ExtensionBrowser:
    context: object  # playwright BrowserContext
    extension_id: str

    def url(self, page: str) -> str:
        return f"chrome-extension://{self.extension_id}/{page}"


def close_options_opened_on_install(context, timeout_ms: int = 15_000) -> None:
    """Close the options tab background.js opens on install before any test opens a page.

    Chromium may open it in the tab a test has just created and interrupt that tab's
    navigation, so the tests start only once it is there and gone.
    """
    waiter = context.pages[0] if context.pages else context.new_page()
    for _ in range(timeout_ms // 100):
        opened = [page for page in context.pages if page.url.endswith("/options.html")]
        if opened:
            for page in opened:
                page.close()
            return
        waiter.wait_for_timeout(100)  # lets Playwright take in Chromium's page events
    pytest.fail("the extension did not open its options page on install")


@pytest.fixture(scope="module")
def extension_browser(tmp_path_factory) -> Iterator[ExtensionBrowser]:
    """Chromium (new headless mode) with extension/ loaded unpacked."""
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing (scripts/bootstrap installs the chromium package)")
    profile = tmp_path_factory.mktemp("chromium-profile")
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(profile),
            executable_path=CHROMIUM,
            headless=True,
            viewport=POPUP_VIEWPORT,
            args=[
                f"--load-extension={EXTENSION}",
                f"--disable-extensions-except={EXTENSION}",
                *CHROMIUM_FLAGS,
            ],
        )
        try:
            worker = (
                context.service_workers[0]
                if context.service_workers
                else context.wait_for_event("serviceworker", timeout=15_000)
            )
            close_options_opened_on_install(context)
            # chrome-extension://<id>/background.js
            yield ExtensionBrowser(context, worker.url.split("/")[2])
        finally:
            context.close()
