// Content script (1 of 2), in Messenger conversation pages once the person switched
// reply suggestions on: reads the open conversation and fills the composer.
//
// Messenger's class names are generated and change with every release, so nothing
// here uses them: the conversation is the page's `main` landmark, each message a
// `row` (the messages list is labelled "Messages in conversation with …"), the
// sender is in the row's screen-reader heading ("You sent" for your own), text is in
// the innermost `dir="auto"` blocks, and the composer is the `textbox` that is
// contenteditable. A row without a heading is placed by where it is drawn: your own
// messages are on the right.
"use strict";

(() => {
  const OWN_HEADING = /^you sent\b/i;

  function pane() {
    return document.querySelector('[role="main"]') || document.body;
  }

  function leafTexts(row) {
    const blocks = [...row.querySelectorAll('[dir="auto"]')].filter(
      (node) => !node.querySelector('[dir="auto"]') && !node.closest('h1, h2, h3, h4, h5, h6, [role="heading"]'),
    );
    return blocks;
  }

  function sentByMe(row, blocks, middle) {
    const heading = row.querySelector('h4, h5, h6, [role="heading"]');
    const label = (heading?.textContent || "").trim();
    if (label) return OWN_HEADING.test(label);
    const box = blocks[0].getBoundingClientRect();
    return box.left + box.width / 2 > middle;
  }

  /** The loaded messages of the open conversation, `[{fromMe, text}]`, oldest first. */
  function readMessages() {
    const main = pane();
    const list = main.querySelector('[aria-label^="Messages in conversation"]') || main;
    const box = list.getBoundingClientRect();
    const middle = box.left + box.width / 2;
    const messages = [];
    for (const row of list.querySelectorAll('[role="row"]')) {
      const blocks = leafTexts(row);
      const text = blocks
        .map((node) => (node.innerText || node.textContent || "").trim())
        .filter(Boolean)
        .join("\n");
      if (text) messages.push({ fromMe: sentByMe(row, blocks, middle), text });
    }
    return messages;
  }

  /** The message composer, or null when no conversation is open. */
  function findComposer() {
    const boxes = [...document.querySelectorAll('[role="textbox"][contenteditable="true"]')];
    return boxes.find((box) => /message/i.test(box.getAttribute("aria-label") || "")) || boxes[0] || null;
  }

  /**
   * Puts `text` in the composer in place of what is there, as typing would (the
   * editor's own input events fire), and leaves the caret at its end. Never sends:
   * no Enter, no click on the send button.
   */
  function insertDraft(text) {
    const composer = findComposer();
    if (!composer) return false;
    composer.focus();
    const range = document.createRange();
    range.selectNodeContents(composer);
    const selection = window.getSelection();
    selection.removeAllRanges();
    selection.addRange(range);
    // execCommand is the one way that rich editors (Lexical, Draft.js) take as input.
    if (!document.execCommand("insertText", false, text)) {
      composer.textContent = text;
      composer.dispatchEvent(new InputEvent("input", { bubbles: true, inputType: "insertText", data: text }));
    }
    return true;
  }

  globalThis.mimicalConversation = { readMessages, findComposer, insertDraft };
})();
