// Options: away mode. The persona answers the owner's own Messenger Page until a time
// the owner picks (PUT /api/chatbots/NAME/away), or stops now (DELETE); the backend
// refuses windows in the past or more than 7 days ahead and says so.
import { createApi } from "./lib/api.js";
import { createStore } from "./lib/state.js";

const store = createStore(chrome.storage.local);
const select = document.getElementById("away-chatbot");
const until = document.getElementById("away-until");
const start = document.getElementById("away-start");
const stop = document.getElementById("away-stop");
const status = document.getElementById("away-status");

function say(text, kind = "") {
  status.textContent = text;
  status.className = kind;
}

async function chosen() {
  const backendUrl = await store.getBackendUrl();
  const chatbots = await store.listChatbots(backendUrl);
  const entry = chatbots.find((chatbot) => chatbot.name === select.value);
  return { api: createApi(backendUrl), name: select.value, ownerToken: entry?.ownerToken };
}

function describe(state) {
  const page = state.page ? "" : " (note: your backend's Page is not this chatbot's)";
  if (!state.until) return `${select.value} does not answer your Page: you do${page}.`;
  return `${select.value} answers your Page until ${new Date(state.until).toLocaleString()}${page}.`;
}

async function refresh() {
  if (!select.value) return;
  const { api, name, ownerToken } = await chosen();
  try {
    say(describe(await api.getAway(name, ownerToken)));
  } catch (error) {
    say(error.message, "error");
  }
}

async function show() {
  const chatbots = (await store.listChatbots(await store.getBackendUrl())).filter((entry) => entry.ownerToken);
  select.replaceChildren(
    ...chatbots.map((entry) => {
      const option = document.createElement("option");
      option.value = option.textContent = entry.name;
      return option;
    }),
  );
  select.disabled = start.disabled = stop.disabled = until.disabled = !chatbots.length;
  if (!until.value) {
    const tomorrow = new Date(Date.now() + 24 * 3600 * 1000);
    tomorrow.setSeconds(0, 0);
    // datetime-local wants the local time without a zone.
    until.value = new Date(tomorrow - tomorrow.getTimezoneOffset() * 60000).toISOString().slice(0, 16);
  }
  await refresh();
}

start.addEventListener("click", async () => {
  const { api, name, ownerToken } = await chosen();
  const end = new Date(until.value); // the input's local time
  if (Number.isNaN(end.getTime())) {
    say("Pick a date and time.", "error");
    return;
  }
  try {
    const state = await api.setAway(name, { ownerToken, until: end });
    say(`${describe(state)} Replies open with: ${state.note}`, "ok");
  } catch (error) {
    say(error.message, "error");
  }
});

stop.addEventListener("click", async () => {
  const { api, name, ownerToken } = await chosen();
  try {
    say(describe(await api.stopAway(name, ownerToken)), "ok");
  } catch (error) {
    say(error.message, "error");
  }
});

select.addEventListener("change", refresh);
chrome.storage.onChanged.addListener((changes) => {
  if (changes.backendUrl || changes.chatbots) show();
});
await show();
