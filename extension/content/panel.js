// Content script (2 of 2): the suggestion panel beside Messenger's composer.
//
// Three drafts in your voice for the open conversation, from your own backend (the
// service worker asks it; this page never sees the owner token). Click a draft, or
// press Alt+Shift+1/2/3, to put it in the composer; edit it and send it yourself.
// Alt+Shift+S (or ↻) asks for new drafts; × hides the panel until Alt+Shift+S.
// New drafts are asked for when the conversation opens and when the other person
// writes; nothing is sent in Messenger by the extension, ever. "Which one sounds
// like you?" starts the check that Options shows (background.js drafts the rounds).
"use strict";

(() => {
  if (window.top !== window || document.getElementById("mimical-suggestions")) return;
  const conversation = globalThis.mimicalConversation;
  const SUGGEST_MESSAGE = "mimical:suggest"; // lib/suggest.js (content scripts are not modules)
  const COUNT = 3;

  const STYLE = `
    :host { all: initial; position: fixed; z-index: 2147483000; }
    .panel { box-sizing: border-box; width: 100%; font: 13px/1.35 system-ui, sans-serif; color: #1d1b26;
      background: #fff; border: 1px solid #d9d6e3; border-radius: 10px; box-shadow: 0 4px 16px #0002; padding: 8px; }
    header { display: flex; align-items: center; gap: 6px; font-weight: 600; color: #5b3fd6; }
    header span { flex: 1; overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
    header button { border: 0; background: none; cursor: pointer; font-size: 15px; color: #6b6878; padding: 2px 6px; }
    header button:hover { color: #5b3fd6; }
    ol { list-style: none; margin: 6px 0 0; padding: 0; display: grid; gap: 4px; }
    .draft { width: 100%; text-align: left; border: 1px solid #ece8fc; background: #f7f5fe; border-radius: 8px;
      padding: 6px 8px; cursor: pointer; font: inherit; color: inherit; }
    .draft:hover, .draft:focus-visible { border-color: #5b3fd6; outline: none; }
    .draft kbd { color: #6b6878; font: 11px system-ui, sans-serif; margin-right: 6px; }
    .status { margin: 6px 0 0; color: #6b6878; font-size: 12px; }
    .status.error { color: #b3261e; }
    .status:empty { display: none; }
    footer { margin-top: 6px; text-align: right; }
    footer button { border: 0; background: none; color: #5b3fd6; cursor: pointer; font: 12px system-ui, sans-serif;
      text-decoration: underline; padding: 0; }
  `;

  const host = document.createElement("div");
  host.id = "mimical-suggestions";
  host.hidden = true;
  // Closed: the page (Messenger's scripts) cannot read or press the drafts.
  const shadow = host.attachShadow({ mode: "closed" });
  const sheet = new CSSStyleSheet(); // constructed sheets are not inline styles: page CSPs allow them
  sheet.replaceSync(STYLE);
  shadow.adoptedStyleSheets = [sheet];
  shadow.innerHTML = `
    <section class="panel" role="complementary" aria-label="mimical reply suggestions">
      <header><span class="title">Replies in your voice</span>
        <button class="refresh" type="button" title="New drafts (Alt+Shift+S)" aria-label="New drafts">↻</button>
        <button class="close" type="button" title="Hide (Alt+Shift+S shows it again)" aria-label="Hide">×</button>
      </header>
      <ol class="drafts"></ol>
      <p class="status" role="status"></p>
      <footer><button class="quiz" type="button">Which one sounds like you?</button></footer>
    </section>`;
  document.documentElement.append(host);
  const list = shadow.querySelector(".drafts");
  const status = shadow.querySelector(".status");
  let drafts = [];
  let closed = false;
  let asking = 0;
  let lastSeen = "";

  function say(text, kind = "") {
    status.textContent = text;
    status.className = `status ${kind}`;
  }

  function render() {
    list.replaceChildren(
      ...drafts.map((text, index) => {
        const item = document.createElement("li");
        const button = document.createElement("button");
        button.type = "button";
        button.className = "draft";
        const key = document.createElement("kbd");
        key.textContent = String(index + 1);
        const words = document.createElement("span");
        words.className = "text";
        words.textContent = text; // text, never HTML
        button.append(key, words);
        button.addEventListener("click", () => insert(index));
        item.append(button);
        return item;
      }),
    );
  }

  function insert(index) {
    if (drafts[index] === undefined) return;
    if (conversation.insertDraft(drafts[index])) say("In the composer: edit it, then send it yourself.");
  }

  async function refresh() {
    const messages = conversation.readMessages();
    const ticket = ++asking;
    say("Thinking of replies…");
    let answer;
    try {
      answer = await chrome.runtime.sendMessage({ type: SUGGEST_MESSAGE, messages, count: COUNT });
    } catch {
      answer = { error: "mimical was updated or switched off: reload this page." };
    }
    if (ticket !== asking) return; // a newer request is on its way
    if (!answer || answer.error) {
      drafts = [];
      render();
      say(answer?.error || "No answer from mimical.", "error");
      return;
    }
    shadow.querySelector(".title").textContent = `Replies in your voice · ${answer.chatbot}`;
    drafts = answer.suggestions;
    render();
    say(drafts.length ? "" : "No draft this time: try ↻.");
  }

  function place() {
    const composer = conversation.findComposer();
    host.hidden = closed || !composer;
    if (host.hidden) return;
    const box = composer.getBoundingClientRect();
    const width = Math.min(Math.max(box.width, 280), 420);
    host.style.width = `${width}px`;
    host.style.left = `${Math.max(8, Math.min(box.left, window.innerWidth - width - 8))}px`;
    host.style.bottom = `${Math.max(8, window.innerHeight - box.top + 8)}px`;
  }

  // New drafts when a conversation opens or the other person writes (not on our own edits).
  function watch() {
    place();
    const messages = conversation.readMessages();
    const last = messages[messages.length - 1];
    const seen = `${location.pathname}\n${messages.length}\n${last?.fromMe}\n${last?.text}`;
    if (seen === lastSeen || closed || !conversation.findComposer()) return;
    const opened = !lastSeen.startsWith(`${location.pathname}\n`);
    lastSeen = seen;
    if (opened || (last && !last.fromMe)) refresh();
  }

  let pending = 0;
  new MutationObserver(() => {
    clearTimeout(pending);
    pending = setTimeout(watch, 600);
  }).observe(document.body, { childList: true, subtree: true, characterData: true });
  window.addEventListener("resize", place);

  async function quiz() {
    say("Drafting for the moments you answered…");
    const messages = conversation.readMessages();
    let answer;
    try {
      answer = await chrome.runtime.sendMessage({ type: "mimical:quiz", messages });
    } catch {
      answer = { error: "mimical was updated or switched off: reload this page." };
    }
    if (answer?.error) say(answer.error, "error");
    else say(`${answer.rounds} rounds are ready in mimical's Options tab.`);
  }

  shadow.querySelector(".refresh").addEventListener("click", refresh);
  shadow.querySelector(".quiz").addEventListener("click", quiz);
  shadow.querySelector(".close").addEventListener("click", () => {
    closed = true;
    place();
  });
  document.addEventListener(
    "keydown",
    (event) => {
      if (!event.altKey || !event.shiftKey || event.ctrlKey || event.metaKey) return;
      if (event.code === "KeyS") {
        closed = false;
        place();
        refresh();
      } else if (/^Digit[1-3]$/.test(event.code) && !closed) {
        insert(Number(event.code.slice(5)) - 1);
      } else {
        return;
      }
      event.preventDefault();
      event.stopPropagation();
    },
    true,
  );
  watch();
})();
