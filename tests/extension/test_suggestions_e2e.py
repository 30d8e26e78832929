"""End to end: reply suggestions in real Chromium, from a live `mimical serve` with a
trained (tiny) persona, on a fixture page shaped like Messenger's conversation view.

Switch suggestions on in Options, open the conversation (Playwright answers for
https://www.messenger.com with tests/extension/fixtures/messenger-conversation.html,
so nothing leaves the machine), wait for three drafts beside the composer, put one in
the composer by click and another by keyboard, and check that nothing was sent.

    .venv/bin/pytest tests/extension/test_suggestions_e2e.py -q
    MIMICAL_UPDATE_SCREENSHOTS=1 .venv/bin/pytest tests/extension/test_suggestions_e2e.py -q

The panel's shadow root is closed, so neither the page nor Playwright's locators see
into it: `Panel` reads and presses it from the content script's own world over the
DevTools protocol, with `chrome.dom.openOrClosedShadowRoot` (an extension API), and
clicks with the mouse where the drafts are.

Chrome's permission prompt is browser UI that Playwright cannot answer, so the test
loads a copy of the extension whose manifest already holds the Messenger origins: the
click's `chrome.permissions.request` then resolves at once and everything after it
(registering the content scripts, the panel, the backend call) runs as for a person.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests

from mimical.config import Settings
from mimical.orchestration import open_registry
from tests.fixtures.browser import CHROMIUM, CHROMIUM_FLAGS
from tests.extension.conftest import (
    EXTENSION,
    REPO,
    close_options_opened_on_install,
)
from mimical.testing.servers import free_port, stop_server, wait_for, wait_for_port

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("extension-suggestions")]

PERSONA = "sam-friend"
CONVERSATION_URL = "https://www.messenger.com/t/100012345"
FIXTURE = Path(__file__).parent / "fixtures" / "messenger-conversation.html"
SCREENSHOT = REPO / "docs" / "images" / "extension-suggestions.png"
MESSENGER_ORIGINS = ["https://www.messenger.com/*", "https://www.facebook.com/*"]
PANEL_HOST = "mimical-suggestions"


class Panel:
    """The suggestion panel of `page`, read through its closed shadow root in the
    extension's isolated world (a test hook: pages have no such world to evaluate in)."""

    def __init__(self, page):
        self.page = page
        self.worlds: list[dict] = []
        self.cdp = page.context.new_cdp_session(page)
        self.cdp.on("Runtime.executionContextCreated", lambda e: self.worlds.append(e["context"]))
        self.cdp.send("Runtime.enable")

    def evaluate(self, body: str, *args):
        """`body` run with `root` (the shadow root) and `args`; None before the panel is."""
        world = next(
            (
                w["id"]
                for w in reversed(self.worlds)
                if w.get("auxData", {}).get("type") == "isolated"
                and w["origin"].startswith("chrome-extension://")
            ),
            None,
        )
        if world is None:
            return None
        expression = (
            f"((args) => {{ const host = document.getElementById('{PANEL_HOST}');"
            " const root = host && chrome.dom.openOrClosedShadowRoot(host);"
            f" if (!root) return null; {body} }})({json.dumps(list(args))})"
        )
        call = {"expression": expression, "contextId": world, "returnByValue": True}
        answer = self.cdp.send("Runtime.evaluate", call)
        assert "exceptionDetails" not in answer, answer
        return answer["result"].get("value")

    def drafts(self) -> list[str]:
        texts = "return [...root.querySelectorAll('.draft .text')].map(e => e.innerText)"
        return self.evaluate(texts) or []

    def text(self, selector: str) -> str:
        return self.evaluate("return root.querySelector(args[0]).textContent", selector)

    def wait_for_drafts(self, count: int) -> list[str]:
        def enough():
            drafts = self.drafts()
            return drafts if len(drafts) >= count else None

        return wait_for(f"{count} drafts", enough, 60)

    def click(self, selector: str, index: int = 0) -> None:
        """A real mouse click on the `index`th match (the page sees only the host)."""
        x, y = self.evaluate(
            "const box = root.querySelectorAll(args[0])[args[1]].getBoundingClientRect();"
            " return [box.x + box.width / 2, box.y + box.height / 2];",
            selector,
            index,
        )
        self.page.mouse.click(x, y)


@pytest.fixture(scope="module")
def backend(tmp_path_factory, tiny_model):
    """`mimical serve` over a home holding a Ready private persona (the tiny model)."""
    home = tmp_path_factory.mktemp("suggest-home")
    shutil.copytree(tiny_model.export_dir, home / "storage" / "models" / PERSONA / "1")
    registry = open_registry(Settings(home=home))
    _, token = registry.create(PERSONA, public=False, password="not used here")
    registry.update_status(PERSONA, phase="Ready", progress=1, model_version=1, add_version=1)
    registry.close()
    port = free_port()
    log = home / "serve.log"
    process = subprocess.Popen(
        [sys.executable, "-m", "mimical.cli", "serve", "--host", "127.0.0.1", "--port", str(port)],
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        env={**os.environ, "MIMICAL_HOME": str(home)},
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for_port(port, process, timeout=60)
        warm_up(url, token)
        yield url, token, log
    finally:
        stop_server(process)


def warm_up(url: str, token: str, timeout: float = 240.0) -> None:
    """The first drafts start the in-process model server and load the model (seconds,
    minutes on a busy machine): ask once here so the panel's own request is a normal one."""
    deadline = time.monotonic() + timeout
    body = {"turns": [{"from": "them", "text": "warming up"}], "count": 1}
    while True:
        try:
            answer = requests.post(
                f"{url}/api/chatbots/{PERSONA}/suggestions",
                json=body,
                headers={"Authorization": f"Bearer {token}"},
                timeout=timeout,
            )
            if answer.status_code == 200:
                return
        except requests.RequestException:
            pass
        if time.monotonic() > deadline:
            pytest.fail(f"no drafts from {url} in {timeout} s")
        time.sleep(1)


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    """Chromium with a copy of extension/ whose manifest holds the Messenger origins."""
    from playwright.sync_api import sync_playwright

    extension = tmp_path_factory.mktemp("extension") / "extension"
    shutil.copytree(EXTENSION, extension, ignore=shutil.ignore_patterns("test", "scripts"))
    manifest = json.loads((extension / "manifest.json").read_text())
    manifest["host_permissions"] += MESSENGER_ORIGINS
    (extension / "manifest.json").write_text(json.dumps(manifest))
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path_factory.mktemp("profile")),
            executable_path=CHROMIUM,
            headless=True,
            viewport={"width": 1000, "height": 640},
            args=[
                f"--load-extension={extension}",
                f"--disable-extensions-except={extension}",
                *CHROMIUM_FLAGS,
            ],
        )
        try:
            worker = context.service_workers[0] if context.service_workers else None
            worker = worker or context.wait_for_event("serviceworker", timeout=15_000)
            close_options_opened_on_install(context)
            yield context, worker.url.split("/")[2]
        finally:
            context.close()


def words(text: str) -> str:
    """Text as read, whatever the line breaks (a draft of two messages has one)."""
    return " ".join(text.split())


def switch_suggestions_on(context, extension_id: str, backend_url: str, token: str) -> None:
    options = context.new_page()
    options.goto(f"chrome-extension://{extension_id}/options.html")
    options.fill("#backend-url", backend_url)
    options.click("#save")
    options.wait_for_selector("#options-status.ok")
    # As if the chatbot had been created from this browser's popup (which keeps its token).
    options.evaluate(
        "([backendUrl, name, ownerToken]) => chrome.storage.local.set({chatbots: "
        "[{backendUrl, name, isPublic: false, ownerToken, createdAt: Date.now()}]})",
        [backend_url, PERSONA, token],
    )
    options.wait_for_function(
        "name => document.querySelector('#suggestion-chatbot').value === name", arg=PERSONA
    )
    assert options.text_content("#suggestions-toggle") == "Switch on"
    explanation = " ".join(options.text_content("#suggestions-reads").split())
    assert "nothing else on Facebook is read" in explanation
    options.click("#suggestions-toggle")
    options.wait_for_selector("#suggestions-status.ok")
    assert options.text_content("#suggestions-toggle") == "Switch off"
    options.close()


def test_three_drafts_beside_the_composer_inserted_never_sent(browser, backend, tmp_path):
    context, extension_id = browser
    backend_url, token, log = backend
    messenger_requests = []

    def messenger(route):
        messenger_requests.append(route.request.url)
        route.fulfill(body=FIXTURE.read_text(), content_type="text/html; charset=utf-8")

    context.route("https://www.messenger.com/**", messenger)
    switch_suggestions_on(context, extension_id, backend_url, token)

    page = context.new_page()
    panel = Panel(page)
    page.goto(CONVERSATION_URL)
    drafts = panel.wait_for_drafts(3)
    assert len(drafts) == 3, drafts
    texts = [draft.strip() for draft in drafts]
    assert all(texts) and len(set(texts)) == 3
    assert PERSONA in panel.text(".title")
    # Closed: the page's own scripts cannot reach the drafts.
    assert page.evaluate(f"document.getElementById('{PANEL_HOST}').shadowRoot") is None

    # The panel sits right above the composer.
    box = page.locator(f"#{PANEL_HOST}").bounding_box()
    composer = page.locator('[role="textbox"]').bounding_box()
    assert box["y"] + box["height"] <= composer["y"]
    assert composer["y"] - (box["y"] + box["height"]) < 40

    shot = tmp_path / "extension-suggestions.png"
    page.screenshot(path=str(shot), clip={"x": 300, "y": 280, "width": 700, "height": 360})
    if os.environ.get("MIMICAL_UPDATE_SCREENSHOTS"):
        shutil.copyfile(shot, SCREENSHOT)

    panel.click(".draft", 0)
    assert words(page.inner_text('[role="textbox"]')) == words(texts[0])
    assert "send it yourself" in panel.text(".status")

    # Keyboard: new drafts, then the second one into the composer in place of the first.
    page.keyboard.press("Alt+Shift+KeyS")
    # Answered once the status stops thinking; a persona may repeat itself, so 2+ drafts.
    wait_for(
        "new drafts",
        lambda: "Thinking" not in panel.text(".status") and len(panel.drafts()) >= 2,
        60,
    )
    second = panel.drafts()[1].strip()
    page.keyboard.press("Alt+Shift+Digit2")
    assert words(page.inner_text('[role="textbox"]')) == words(second)

    page.wait_for_timeout(500)
    assert page.evaluate("window.sentMessages") == []
    assert messenger_requests == [CONVERSATION_URL]  # the page itself, nothing posted to it
    # The conversation reached the backend only as the request: not in its log.
    assert "party on saturday" not in log.read_text(errors="replace")


def test_which_one_sounds_like_you(browser, backend, tmp_path):
    """The panel's link drafts a reply for the moment you answered and Options shows
    it next to your real answer; a pick is counted, and only the counts are kept."""
    context, extension_id = browser
    backend_url, token, _ = backend
    context.route(
        "https://www.messenger.com/**",
        lambda route: route.fulfill(body=FIXTURE.read_text(), content_type="text/html"),
    )
    page = context.new_page()
    panel = Panel(page)
    page.goto(CONVERSATION_URL)
    panel.wait_for_drafts(3)
    with context.expect_page(timeout=60_000) as opened:
        panel.click(".quiz")
    options = opened.value
    options.wait_for_selector("#quiz-round:not([hidden])")
    assert options.url.endswith("/options.html#quiz")
    assert options.text_content("#quiz-them-text") == "hey! long time"
    choices = options.locator(".quiz-choice").all_text_contents()
    assert "haha yes, how have you been?" in choices and len(set(choices)) == 2
    options.locator(".quiz-choice", has_text="haha yes").click()
    options.wait_for_selector("#quiz-round[hidden]", state="attached")
    assert "really yours" in options.text_content("#quiz-reveal")
    assert "picked as yours in 0 of 1 rounds" in options.text_content("#quiz-score")
    kept = options.evaluate("() => chrome.storage.local.get(null)")
    assert kept["quizScore"] == {"rounds": 1, "pickedDraft": 0}
    assert "haha yes" not in json.dumps(kept) and "long time" not in json.dumps(kept)
    assert options.evaluate("() => chrome.storage.session.get('quizRounds')") == {"quizRounds": []}
    page.close()
    options.close()


def test_away_mode_from_options(browser, backend):
    """Options opens the away window on the live backend, shows its refusal of a past
    time in the backend's words, and closes it."""
    context, extension_id = browser
    backend_url, token, _ = backend
    away_url = f"{backend_url}/api/chatbots/{PERSONA}/away"
    owner = {"Authorization": f"Bearer {token}"}
    options = context.new_page()
    options.goto(f"chrome-extension://{extension_id}/options.html")
    options.evaluate(
        "([backendUrl, name, ownerToken]) => chrome.storage.local.set({backendUrl, chatbots: "
        "[{backendUrl, name, isPublic: false, ownerToken, createdAt: Date.now()}]})",
        [backend_url, PERSONA, token],
    )
    options.wait_for_function(
        "name => document.querySelector('#away-chatbot').value === name", arg=PERSONA
    )
    options.wait_for_function(
        "() => document.querySelector('#away-status').textContent.includes('you do')"
    )

    def set_until(hours: float) -> None:
        options.evaluate(
            "hours => { const end = new Date(Date.now() + hours * 3600e3);"
            " document.querySelector('#away-until').value = new Date(end - end.getTimezoneOffset()"
            " * 60000).toISOString().slice(0, 16); }",
            hours,
        )

    set_until(-1)
    options.click("#away-start")
    options.wait_for_selector("#away-status.error")
    assert "the window must end in the future" in options.text_content("#away-status")

    set_until(2)
    options.click("#away-start")
    options.wait_for_selector("#away-status.ok")
    shown = options.text_content("#away-status")
    assert f"{PERSONA} answers your Page until" in shown and "[Automated reply: " in shown
    state = requests.get(away_url, headers=owner, timeout=30).json()
    until = datetime.fromisoformat(state["until"])
    assert timedelta(hours=1.9) < until - datetime.now(UTC) <= timedelta(hours=2)

    options.click("#away-stop")
    options.wait_for_function(
        "() => document.querySelector('#away-status').textContent.includes('you do')"
    )
    assert requests.get(away_url, headers=owner, timeout=30).json()["until"] is None
    options.close()
