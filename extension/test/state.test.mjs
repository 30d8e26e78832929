import assert from "node:assert/strict";
import { test } from "node:test";

import { createStore, DEFAULT_BACKEND_URL } from "../lib/state.js";

/** The slice of chrome.storage.local the store uses, kept in memory. */
function memoryArea() {
  const data = {};
  return {
    data,
    get: async (key) => (key in data ? { [key]: structuredClone(data[key]) } : {}),
    set: async (values) => Object.assign(data, structuredClone(values)),
  };
}

test("the backend defaults to the embedded server until set", async () => {
  const store = createStore(memoryArea());
  assert.equal(await store.getBackendUrl(), DEFAULT_BACKEND_URL);
  await store.setBackendUrl("https://bots.example.org");
  assert.equal(await store.getBackendUrl(), "https://bots.example.org");
  assert.equal(await store.getMessengerUrl(), "");
  await store.setMessengerUrl("https://m.me/mimicalbot");
  assert.equal(await store.getMessengerUrl(), "https://m.me/mimicalbot");
});

test("chatbots are remembered per backend, newest first, and forgotten", async () => {
  const area = memoryArea();
  const store = createStore(area);
  const here = "http://127.0.0.1:8080";
  await store.rememberChatbot({ backendUrl: here, name: "alex", isPublic: false, ownerToken: "t1" });
  await store.rememberChatbot({ backendUrl: here, name: "sam", isPublic: true, ownerToken: "t2" });
  await store.rememberChatbot({ backendUrl: "https://other.example", name: "alex", ownerToken: "t3" });

  assert.deepEqual((await store.listChatbots(here)).map((entry) => entry.name), ["sam", "alex"]);
  const [alex] = (await store.listChatbots(here)).filter((entry) => entry.name === "alex");
  assert.equal(alex.ownerToken, "t1");
  assert.equal(alex.isPublic, false);

  await store.forgetChatbot(here, "alex");
  assert.deepEqual((await store.listChatbots(here)).map((entry) => entry.name), ["sam"]);
  assert.equal((await store.listChatbots("https://other.example")).length, 1);
});

test("remembering a name again replaces the old entry (a re-created chatbot)", async () => {
  const store = createStore(memoryArea());
  const here = "http://127.0.0.1:8080";
  await store.rememberChatbot({ backendUrl: here, name: "alex", ownerToken: "old" });
  await store.rememberChatbot({ backendUrl: here, name: "alex", ownerToken: "new" });
  const entries = await store.listChatbots(here);
  assert.equal(entries.length, 1);
  assert.equal(entries[0].ownerToken, "new");
});

test("no password is ever stored", async () => {
  const area = memoryArea();
  const store = createStore(area);
  await store.rememberChatbot({
    backendUrl: "http://127.0.0.1:8080",
    name: "alex",
    ownerToken: "t",
    password: "s3cret",
  });
  assert.doesNotMatch(JSON.stringify(area.data), /s3cret/);
});
