import assert from "node:assert/strict";
import { afterEach, test } from "node:test";

import {
  collectVisibleMessages,
  isMessengerConversation,
  toMessengerExport,
} from "../lib/messenger.js";

test("only Messenger conversation pages offer the conversation source", () => {
  assert.ok(isMessengerConversation("https://www.messenger.com/t/100012345678"));
  assert.ok(isMessengerConversation("https://www.messenger.com/e2ee/t/7412345"));
  assert.ok(isMessengerConversation("https://www.facebook.com/messages/t/100012345678/"));
  assert.ok(!isMessengerConversation("https://www.messenger.com/"));
  assert.ok(!isMessengerConversation("https://www.facebook.com/"));
  assert.ok(!isMessengerConversation("https://evil.example/www.messenger.com/t/1"));
  assert.ok(!isMessengerConversation(undefined));
});

/** A tiny stand-in for the DOM nodes collectVisibleMessages touches. */
function node({ text = "", left = 0, width = 0, children = [], attrs = {} }) {
  const self = {
    attrs,
    children,
    innerText: text,
    getBoundingClientRect: () => ({ left, width }),
    descendants() {
      return children.flatMap((child) => [child, ...child.descendants()]);
    },
    querySelectorAll(selector) {
      const [, name, value] = selector.match(/^\[([a-z-]+)="([^"]+)"\]$/);
      return self.descendants().filter((child) => child.attrs[name] === value);
    },
    querySelector(selector) {
      return self.querySelectorAll(selector)[0] || null;
    },
  };
  return self;
}

const bubble = (text, left) => node({ attrs: { dir: "auto" }, children: [node({ text, left, width: 100, attrs: { dir: "auto" } })] });
const row = (...children) => node({ attrs: { role: "row" }, children });

afterEach(() => {
  delete globalThis.document;
});

test("visible rows become messages; right-hand ones are mine", () => {
  const pane = node({
    left: 0,
    width: 800,
    attrs: { role: "main" },
    children: [
      row(bubble("hey, coming tonight?", 20)),
      row(bubble("sure! 8pm?", 650)),
      row(), // a date separator or an image: no text
      row(bubble("perfect", 30)),
    ],
  });
  globalThis.document = { querySelector: () => pane, body: pane };
  assert.deepEqual(collectVisibleMessages(), [
    { fromMe: false, text: "hey, coming tonight?" },
    { fromMe: true, text: "sure! 8pm?" },
    { fromMe: false, text: "perfect" },
  ]);
});

test("collected messages become a Messenger chat export, oldest first", () => {
  const exported = toMessengerExport(
    [
      { fromMe: false, text: "ça va ?" },
      { fromMe: true, text: "oui 👍" },
    ],
    { me: "Zoë", friend: "Sam", now: 1_700_000_000_000 },
  );
  assert.deepEqual(exported.participants, ["Zoë", "Sam"]);
  assert.equal(exported.threadName, "Sam");
  assert.deepEqual(exported.messages.map((m) => [m.senderName, m.text]), [
    ["Sam", "ça va ?"],
    ["Zoë", "oui 👍"],
  ]);
  assert.ok(exported.messages[0].timestamp < exported.messages[1].timestamp);
  assert.ok(exported.messages[1].timestamp < 1_700_000_000_000);
});
