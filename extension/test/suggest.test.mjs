import assert from "node:assert/strict";
import { test } from "node:test";

import {
  isFromOurContentScript,
  SUGGESTION_MATCHES,
  suggestionChatbot,
  toTurns,
  TURN_MAX_CHARS,
  TURNS_SENT,
} from "../lib/suggest.js";
import { createStore } from "../lib/state.js";

test("turns for the backend: who and what, last ones only, empty ones dropped, long ones cut", () => {
  const messages = [
    { fromMe: false, text: " hi " },
    { fromMe: true, text: "" },
    { fromMe: true, text: "x".repeat(TURN_MAX_CHARS + 5) },
  ];
  assert.deepEqual(toTurns(messages), [
    { from: "them", text: "hi" },
    { from: "me", text: "x".repeat(TURN_MAX_CHARS) },
  ]);
  const many = Array.from({ length: 30 }, (_, index) => ({ fromMe: index % 2 === 0, text: `m${index}` }));
  const turns = toTurns(many);
  assert.equal(turns.length, TURNS_SENT);
  assert.deepEqual(turns.at(-1), { from: "them", text: "m29" });
});

test("only our own content scripts on conversation pages may ask for drafts", () => {
  const tab = { id: 3 };
  const ok = (url, id = "ext") => isFromOurContentScript({ id, tab, url }, "ext");
  assert.ok(ok("https://www.messenger.com/t/100012345"));
  assert.ok(ok("https://www.facebook.com/messages/e2ee/t/42"));
  assert.ok(!ok("https://www.facebook.com/profile.php?id=1"), "not a conversation");
  assert.ok(!ok("https://www.messenger.com.evil.example/t/1"), "look-alike host");
  assert.ok(!ok("https://www.messenger.com/t/1", "other-extension"));
  assert.ok(!isFromOurContentScript({ id: "ext", url: "https://www.messenger.com/t/1" }, "ext"), "no tab");
  assert.ok(SUGGESTION_MATCHES.every((pattern) => pattern.startsWith("https://www.")));
});

test("drafts come from the chosen chatbot, if this browser holds its owner token", () => {
  const chatbots = [
    { name: "alex", ownerToken: "t1" },
    { name: "sam", ownerToken: "" },
  ];
  assert.equal(suggestionChatbot(chatbots, "alex").ownerToken, "t1");
  assert.equal(suggestionChatbot(chatbots, "sam"), null);
  assert.equal(suggestionChatbot(chatbots, ""), null);
});

function memoryArea() {
  const data = {};
  return {
    data,
    get: async (key) => (key in data ? { [key]: structuredClone(data[key]) } : {}),
    set: async (values) => Object.assign(data, structuredClone(values)),
  };
}

test("suggestions are off until switched on; the quiz keeps two counts and no text", async () => {
  const area = memoryArea();
  const store = createStore(area);
  assert.deepEqual(await store.getSuggestions(), { enabled: false, chatbot: "" });
  await store.setSuggestions({ enabled: true, chatbot: "alex" });
  assert.deepEqual(await store.getSuggestions(), { enabled: true, chatbot: "alex" });

  assert.deepEqual(await store.getQuizScore(), { rounds: 0, pickedDraft: 0 });
  await store.recordQuizPick(true);
  await store.recordQuizPick(false);
  assert.deepEqual(await store.getQuizScore(), { rounds: 2, pickedDraft: 1 });
  assert.deepEqual(area.data.quizScore, { rounds: 2, pickedDraft: 1 });
  await store.resetQuizScore();
  assert.deepEqual(await store.getQuizScore(), { rounds: 0, pickedDraft: 0 });
});

test("the content scripts registered when switching on exist and need no module loader", async () => {
  const { existsSync, readFileSync } = await import("node:fs");
  const { CONTENT_SCRIPT_FILES } = await import("../lib/suggest.js");
  for (const path of CONTENT_SCRIPT_FILES) {
    const url = new URL(`../${path}`, import.meta.url);
    assert.ok(existsSync(url), path);
    assert.doesNotMatch(readFileSync(url, "utf8"), /^\s*(import|export)\s/m, path);
  }
});

test("quiz rounds: each time you answered, what came before and your answer", async () => {
  const { quizPairs } = await import("../lib/suggest.js");
  const messages = [
    { fromMe: true, text: "opener" },
    { fromMe: false, text: "hey" },
    { fromMe: false, text: "party saturday?" },
    { fromMe: true, text: "yes!" },
    { fromMe: true, text: "what time" },
    { fromMe: false, text: "8" },
    { fromMe: true, text: "ok" },
    { fromMe: false, text: "unanswered" },
  ];
  const pairs = quizPairs(messages);
  assert.deepEqual(
    pairs.map(({ them, real, before }) => [them, real, before.length]),
    [
      ["party saturday?", "yes!\nwhat time", 3],
      ["8", "ok", 6],
    ],
  );
  assert.equal(quizPairs(messages, 1).length, 1);
});

test("the quiz verdict says whether the drafts pass as you, with an interval", async () => {
  const { quizVerdict } = await import("../lib/suggest.js");
  assert.equal(quizVerdict({ rounds: 0, pickedDraft: 0 }).share, null);
  const even = quizVerdict({ rounds: 20, pickedDraft: 9 });
  assert.ok(even.low < 0.5 && even.high > 0.5);
  assert.match(even.words, /9 of 20 rounds \(45%, 95% interval 26%–66%\)\. You cannot tell/);
  assert.match(quizVerdict({ rounds: 30, pickedDraft: 2 }).words, /You can tell the drafts/);
  assert.match(quizVerdict({ rounds: 30, pickedDraft: 28 }).words, /more like you than your own/);
});
