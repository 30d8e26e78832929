// Options: switching reply suggestions on and off, and which chatbot drafts them.
//
// Switching on asks Chrome for the Messenger sites from the click itself (Chrome
// prompts only during a user gesture), then registers the content scripts for
// conversation pages; switching off unregisters them and removes the access.
import { createStore } from "./lib/state.js";
import {
  CONTENT_SCRIPT_FILES,
  CONTENT_SCRIPT_ID,
  SUGGESTION_MATCHES,
  SUGGESTION_ORIGINS,
} from "./lib/suggest.js";

const store = createStore(chrome.storage.local);
const select = document.getElementById("suggestion-chatbot");
const toggle = document.getElementById("suggestions-toggle");
const status = document.getElementById("suggestions-status");

function say(text, kind = "") {
  status.textContent = text;
  status.className = kind;
}

async function registerContentScripts() {
  const registered = await chrome.scripting.getRegisteredContentScripts({ ids: [CONTENT_SCRIPT_ID] });
  if (registered.length) return;
  await chrome.scripting.registerContentScripts([
    {
      id: CONTENT_SCRIPT_ID,
      matches: SUGGESTION_MATCHES,
      js: CONTENT_SCRIPT_FILES,
      runAt: "document_idle",
      persistAcrossSessions: true,
    },
  ]);
}

async function unregisterContentScripts() {
  const registered = await chrome.scripting.getRegisteredContentScripts({ ids: [CONTENT_SCRIPT_ID] });
  if (registered.length) await chrome.scripting.unregisterContentScripts({ ids: [CONTENT_SCRIPT_ID] });
}

async function show() {
  const settings = await store.getSuggestions();
  const chatbots = (await store.listChatbots(await store.getBackendUrl())).filter((entry) => entry.ownerToken);
  select.replaceChildren(
    ...chatbots.map((entry) => {
      const option = document.createElement("option");
      option.value = option.textContent = entry.name;
      return option;
    }),
  );
  if (chatbots.some((entry) => entry.name === settings.chatbot)) select.value = settings.chatbot;
  select.disabled = toggle.disabled = !chatbots.length;
  toggle.textContent = settings.enabled ? "Switch off" : "Switch on";
  toggle.dataset.enabled = String(settings.enabled);
  if (!chatbots.length) {
    say("Create a chatbot from the popup first: drafts come from a chatbot made in this browser.");
  }
}

function switchOn() {
  // No await before this call: Chrome shows its prompt only inside the click.
  chrome.permissions.request({ origins: SUGGESTION_ORIGINS }).then(
    async (granted) => {
      if (!granted) {
        say("Chrome did not grant access to Messenger; suggestions stay off.", "error");
        return;
      }
      await registerContentScripts();
      await store.setSuggestions({ enabled: true, chatbot: select.value });
      await show();
      say(`On. Open (or reload) a Messenger conversation to see drafts from ${select.value}.`, "ok");
    },
    (error) => say(error.message, "error"),
  );
}

async function switchOff() {
  await unregisterContentScripts();
  await chrome.permissions.remove({ origins: SUGGESTION_ORIGINS });
  await store.setSuggestions({ enabled: false, chatbot: select.value });
  await show();
  say("Off. mimical no longer reads Messenger pages.", "ok");
}

toggle.addEventListener("click", () => {
  if (toggle.dataset.enabled === "true") switchOff().catch((error) => say(error.message, "error"));
  else switchOn();
});
select.addEventListener("change", async () => {
  const settings = await store.getSuggestions();
  await store.setSuggestions({ ...settings, chatbot: select.value });
  say(`Drafts now come from ${select.value}.`, "ok");
});

// The chatbot list follows the backend address and chatbots created in the popup.
chrome.storage.onChanged.addListener((changes) => {
  if (changes.backendUrl || changes.chatbots) show();
});
await show();
