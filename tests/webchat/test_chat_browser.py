"""The web chat page in real Chromium (Debian's, never a downloaded one)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from mimical.dialog.engine import GREETING, NOW_CHATTING, PASSWORD_PROMPT
from tests.fixtures.browser import CHROMIUM, CHROMIUM_FLAGS
from tests.fixtures.chat import PASSWORD, PRIVATE, PUBLIC

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "tests" / "artifacts"


@pytest.fixture
def page():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_FLAGS
        )
        yield browser.new_page(viewport={"width": 720, "height": 720})
        browser.close()


@pytest.mark.slow
def test_chat_with_a_private_persona_in_chromium(page, live_url):
    from playwright.sync_api import expect

    page.goto(f"{live_url}/chat")
    bot = page.locator(".message.bot")
    expect(bot.first).to_have_text(GREETING)

    page.fill("#text", PRIVATE)
    page.press("#text", "Enter")
    expect(bot.last).to_have_text(PASSWORD_PROMPT)
    expect(page.locator("#text")).to_have_attribute("type", "password")

    page.fill("#text", PASSWORD)
    page.click("button[type=submit]")
    expect(bot.last).to_contain_text("You are now chatting with Secret Agent")
    expect(page.locator(".message.me").last).to_have_text("••••••")
    expect(page.locator("#text")).to_have_attribute("type", "text")

    page.fill("#text", "hey, how was your weekend?")
    page.press("#text", "Enter")
    expect(bot).to_have_count(5)
    expect(page.locator(".message.typing")).to_have_count(0)
    assert bot.last.text_content().strip()
    assert PASSWORD not in page.content()

    ARTIFACTS.mkdir(exist_ok=True)
    screenshot = ARTIFACTS / "webchat.png"
    page.screenshot(path=str(screenshot))
    assert screenshot.stat().st_size > 0
    docs_image = ROOT / "docs" / "images" / "webchat.png"
    if not docs_image.exists():  # the README's picture, refreshed by deleting it
        docs_image.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(screenshot, docs_image)


@pytest.mark.slow
def test_messages_typed_in_a_burst_are_answered_in_order(page, live_url):
    """The dialog is a state machine: a name typed right after "%show all" must not overtake it."""
    from playwright.sync_api import expect

    page.goto(f"{live_url}/chat")
    bot = page.locator(".message.bot")
    expect(bot.first).to_have_text(GREETING)
    for text in ("%show all", PUBLIC):
        page.fill("#text", text)
        page.press("#text", "Enter")
    expect(bot.last).to_have_text(NOW_CHATTING.format(name="Tiny"))
    expect(bot.nth(-2)).to_contain_text("Public personas:")
