"""The "use this conversation" collector against a real browser layout.

`collectVisibleMessages` decides who wrote a message from where Chromium draws it
(your own messages sit on the right of the conversation pane), which node's unit
tests can only imitate. Here it runs in Chromium over a page shaped like
messenger.com's conversation pane, exactly as chrome.scripting would inject it.

    .venv/bin/pytest tests/extension/test_messenger_source.py -q
"""

from __future__ import annotations

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


def collector_source(extension_browser) -> str:
    """The collector's source as the extension ships it (lib/messenger.js)."""
    page = extension_browser.context.new_page()
    page.goto(extension_browser.url("manifest.json"))
    source = page.evaluate(
        "async () => (await import('/lib/messenger.js')).collectVisibleMessages.toString()"
    )
    page.close()
    return source


def test_collects_the_loaded_messages_and_tells_mine_apart(extension_browser):
    source = collector_source(extension_browser)
    page = extension_browser.context.new_page()
    page.set_content(CONVERSATION_PAGE)
    messages = page.evaluate(f"({source})()")
    page.close()
    assert messages == [
        {"fromMe": False, "text": "are you coming tonight?"},
        {"fromMe": True, "text": "yes! 8pm at the usual place"},
        {"fromMe": False, "text": "perfect, see you 🎉"},
    ]
