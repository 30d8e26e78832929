"""End to end: the unpacked extension in real Chromium against a live `mimical serve`.

Point the extension at the backend in Options, create a private chatbot from a
sample Facebook "Download Your Information" zip in the popup, follow it to Ready,
chat with it through the popup's "Chat now" link, delete it from the popup, and
check that a file that is not an export shows the backend's own error in the popup.

    .venv/bin/pytest tests/extension/test_e2e.py -q
    MIMICAL_UPDATE_SCREENSHOTS=1 .venv/bin/pytest tests/extension/test_e2e.py -q  # refresh docs

The popup screenshot is written to the test's temporary directory and, with
MIMICAL_UPDATE_SCREENSHOTS=1, to docs/images/extension-popup.png.
"""

from __future__ import annotations

import os
import shutil
import zipfile
from pathlib import Path

import pytest
import requests
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

from tests.extension.conftest import REPO

# One backend and one browser for the module: keep its tests on one xdist worker.
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("extension-e2e")]

PERSONA = "e2e-friend"
PASSWORD = "correct horse battery"
# Import, a tiny training run and loading the model into the in-process server: about
# 20 s alone; a bound, not a wait: a loaded CI machine whose other worker trains too has
# taken over 120 s.
READY_TIMEOUT_MS = 300_000
SCREENSHOT = REPO / "docs" / "images" / "extension-popup.png"


@pytest.fixture(scope="module")
def export_zip(sample_export, tmp_path_factory) -> Path:
    """A sample Messenger DYI export zipped the way Facebook hands it out."""
    tree = sample_export("messenger")
    archive = tmp_path_factory.mktemp("upload") / "facebook-export.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zipped:
        for path in sorted(tree.rglob("*")):
            if path.is_file():
                zipped.write(path, path.relative_to(tree).as_posix())
    return archive


@pytest.fixture(scope="module")
def popup(extension_browser, backend_url):
    """The popup page (opened as a tab), after pointing Options at the test backend."""
    options = extension_browser.context.new_page()
    options.goto(extension_browser.url("options.html"))
    options.fill("#backend-url", backend_url)
    options.click("#save")
    # The first /healthz of a backend that has just started: slow on a loaded machine.
    options.wait_for_selector("#options-status.ok", timeout=120_000)
    assert "is up" in options.text_content("#options-status")
    options.close()

    page = extension_browser.context.new_page()
    page.goto(extension_browser.url("popup.html"))
    assert page.text_content("#backend-url") == backend_url
    return page


def fill_create_form(page, name: str, upload: Path) -> None:
    page.fill("#name", name)
    page.uncheck("#public")
    page.fill("#password", PASSWORD)
    page.set_input_files("#export", str(upload))
    page.click("#create")


def test_a_bad_file_shows_the_backends_error(popup, backend_url, tmp_path):
    # The classic slip: a photo instead of the export (any PNG will do).
    not_an_export = tmp_path / "holiday-photo.png"
    shutil.copyfile(REPO / "extension" / "icons" / "icon128.png", not_an_export)
    # What the backend itself says about this file, to compare with the popup.
    answer = requests.post(
        f"{backend_url}/api/chatbots",
        data={"name": "direct-check", "public": "true"},
        files={"export": (not_an_export.name, not_an_export.read_bytes())},
        timeout=30,
    )
    assert answer.status_code == 415
    backend_message = answer.json()["message"]

    fill_create_form(popup, "bad-file", not_an_export)
    error = popup.wait_for_selector("#form-error:not(:empty)")
    assert backend_message in error.text_content()
    assert popup.locator(".chatbot[data-name='bad-file']").count() == 0


def test_create_a_private_chatbot_chat_with_it_and_delete_it(
    popup, backend_url, export_zip, tmp_path
):
    fill_create_form(popup, PERSONA, export_zip)
    card = popup.locator(f".chatbot[data-name='{PERSONA}']")
    card.wait_for()
    assert card.locator(".badge").text_content() == "private"
    try:
        popup.wait_for_selector(
            f".chatbot[data-name='{PERSONA}'][data-phase='Ready']", timeout=READY_TIMEOUT_MS
        )
    except PlaywrightTimeoutError:
        pytest.fail(f"not Ready in time; the card says: {card.inner_text()!r}")
    assert popup.text_content("#form-error") == ""

    shot = tmp_path / "extension-popup.png"
    popup.locator("body").screenshot(path=str(shot))
    if os.environ.get("MIMICAL_UPDATE_SCREENSHOTS"):
        SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shot, SCREENSHOT)

    with popup.context.expect_page() as opened:
        card.locator(".chat-link").click()
    chat = opened.value
    chat.wait_for_load_state()
    say_and_wait(chat, None, "Who would you like to talk to?")
    say_and_wait(chat, PERSONA, "This persona is password protected. Please enter a password.")
    say_and_wait(chat, PASSWORD, f"You are now chatting with {PERSONA}")
    reply = say_and_wait(chat, "hey, how are you?", None)
    assert reply.strip()
    chat.close()

    # Delete takes two clicks and uses the owner token the popup remembered.
    card.locator(".delete").click()
    assert card.locator(".delete").text_content() == "Really delete?"
    card.locator(".delete").click()
    card.wait_for(state="detached")
    answer = requests.get(f"{backend_url}/api/chatbots/{PERSONA}", timeout=10)
    assert answer.status_code == 401  # gone: answered as if private


def say_and_wait(chat, text: str | None, expected: str | None) -> str:
    """Send `text` in the web chat (None: just wait) and return the next bot reply."""
    replies = chat.locator(".message.bot:not(.typing)")
    before = replies.count() if text is not None else 0
    if text is not None:
        chat.fill("#text", text)
        chat.press("#text", "Enter")
    chat.wait_for_function(
        "n => document.querySelectorAll('.message.bot:not(.typing)').length > n",
        arg=before,
        timeout=30_000,
    )
    reply = replies.nth(before).text_content()
    if expected is not None:
        assert expected in reply
    return reply
