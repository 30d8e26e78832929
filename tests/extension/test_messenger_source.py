"""The "use this conversation" collector against a real browser layout.

`collectVisibleMessages` decides who wrote a message from where Chromium draws it
(your own messages sit on the right of the conversation pane), which node's unit
tests can only imitate. Here it runs in Chromium over a page shaped like
messenger.com's conversation pane, exactly as chrome.scripting would inject it, and
what it collects becomes an export that mimical's importer reads.

    .venv/bin/pytest tests/extension/test_messenger_source.py -q
"""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.slow

# The parts of messenger.com's markup the collector relies on: a [role=main] pane,
# one [role=row] per message, text in (nested) [dir=auto] blocks; mine right-aligned.
CONVERSATION_PAGE = """
<!doctype html>
<style>
  body { margin: 0; font: 15px sans-serif; }
  [role=main] { width: 800px; }
  .theirs { display: flex; justify-content: flex-start; }
  .mine { display: flex; justify-content: flex-end; }
</style>
<nav><div dir="auto">Chats</div><div dir="auto">Another conversation</div></nav>
<div role="main">
  <div role="row"><div class="theirs">
    <div dir="auto"><div dir="auto">are you coming tonight?</div></div>
  </div></div>
  <div role="row"><div class="mine"><div dir="auto">yes! 8pm at the usual place</div></div></div>
  <div role="row"><div class="theirs"><img alt="" width="40" height="40"></div></div>
  <div role="row"><div class="theirs"><div dir="auto">perfect, see you 🎉</div></div></div>
</div>
"""


def in_extension(extension_browser, script: str, arg=None):
    """Evaluate `script` (a function of `messenger`, lib/messenger.js, and `arg`) in an
    extension page, so it runs the module exactly as the extension ships it."""
    page = extension_browser.context.new_page()
    page.goto(extension_browser.url("manifest.json"))
    try:
        return page.evaluate(
            f"async (arg) => {{ const messenger = await import('/lib/messenger.js'); "
            f"return ({script})(messenger, arg); }}",
            arg,
        )
    finally:
        page.close()


@pytest.fixture(scope="module")
def collected(extension_browser) -> list[dict]:
    source = in_extension(extension_browser, "(m) => m.collectVisibleMessages.toString()")
    page = extension_browser.context.new_page()
    page.set_content(CONVERSATION_PAGE)
    try:
        return page.evaluate(f"({source})()")
    finally:
        page.close()


def test_collects_the_loaded_messages_and_tells_mine_apart(collected):
    assert collected == [
        {"fromMe": False, "text": "are you coming tonight?"},
        {"fromMe": True, "text": "yes! 8pm at the usual place"},
        {"fromMe": False, "text": "perfect, see you 🎉"},
    ]


def test_the_collected_export_imports_as_a_messenger_chat(extension_browser, collected, tmp_path):
    from mimical.corpus.importer import import_exports

    exported = in_extension(
        extension_browser,
        "(m, messages) => m.toMessengerExport(messages, {me: 'Me', friend: 'Sam'})",
        collected,
    )
    upload = tmp_path / in_extension(extension_browser, "(m) => m.CONVERSATION_FILE_NAME")
    upload.write_text(json.dumps(exported), encoding="utf-8")
    stats = import_exports([upload], tmp_path / "corpus.jsonl", me="Me")
    assert stats["format"] == "messenger-e2ee"
    assert stats["persona_messages"] == 1
    assert stats["pairs"] == 1
