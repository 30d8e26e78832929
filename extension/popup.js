// The popup: lists the chatbots made from this browser and the form that creates
// a new one from an export file (or, with consent, from the open Messenger
// conversation). Logic lives in lib/ (unit tested); this file wires it to the page.
import { createChatbotCard } from "./chatbot-card.js";
import { createApi } from "./lib/api.js";
import {
  CONVERSATION_FILE_NAME,
  collectVisibleMessages,
  isMessengerConversation,
  toMessengerExport,
} from "./lib/messenger.js";
import { createStore } from "./lib/state.js";
import { explainError } from "./lib/status.js";
import { EXPORT_ACCEPT, validateCreateForm } from "./lib/validate.js";

const store = createStore(chrome.storage.local);
const backendUrl = await store.getBackendUrl();
const api = createApi(backendUrl);
const messengerUrl = await store.getMessengerUrl();

const $ = (id) => document.getElementById(id);
const form = $("create-form");
const fields = {
  name: $("name"),
  isPublic: $("public"),
  password: $("password"),
  me: $("me"),
  file: $("export"),
  consent: $("consent"),
};
const uploadProgress = $("upload-progress");
const formError = $("form-error");

$("backend-url").textContent = backendUrl;
fields.file.accept = EXPORT_ACCEPT;

// --- Your chatbots -------------------------------------------------------------

function addCard(entry) {
  const list = $("chatbot-list");
  list.querySelector(`[data-name="${CSS.escape(entry.name)}"]`)?.remove();
  list.prepend(
    createChatbotCard({
      api,
      store,
      entry,
      messengerUrl,
      onForget: () => {
        $("chatbots").hidden = list.children.length === 0;
      },
    }),
  );
  $("chatbots").hidden = false;
}

for (const entry of (await store.listChatbots(backendUrl)).reverse()) addCard(entry);

// --- The create form -------------------------------------------------------------

function selectedSource() {
  return form.elements.source.value || "file";
}

function syncVisibility() {
  $("password-row").hidden = fields.isPublic.checked;
  const fromConversation = selectedSource() === "conversation";
  $("file-row").hidden = fromConversation;
  $("conversation-row").hidden = !fromConversation;
}

// The Messenger source is offered only when the popup opened over a conversation;
// activeTab lets us see that tab's address and nothing more until the user consents.
const [activeTab] = await chrome.tabs.query({ active: true, currentWindow: true });
if (activeTab && isMessengerConversation(activeTab.url)) $("source-choice").hidden = false;

form.addEventListener("change", syncVisibility);
syncVisibility();

function showFieldErrors(errors) {
  for (const key of ["name", "password", "file", "consent"]) {
    $(`${key}-error`).textContent = errors[key] || "";
  }
}

function showFormError(caught) {
  const { headline, detail } = explainError(caught);
  const strong = document.createElement("strong");
  strong.textContent = headline;
  formError.replaceChildren(strong, detail ? ` ${detail}` : "");
}

/** Reads the open Messenger conversation into an export file (explicit consent given). */
async function conversationExport(me) {
  const [injection] = await chrome.scripting.executeScript({
    target: { tabId: activeTab.id },
    func: collectVisibleMessages,
  });
  const messages = injection?.result || [];
  if (!messages.some((message) => message.fromMe)) {
    throw Object.assign(new Error("Scroll up so some of your own messages are on screen, then try again."), {
      code: "invalid_input",
    });
  }
  const exported = toMessengerExport(messages, { me });
  return new File([JSON.stringify(exported)], CONVERSATION_FILE_NAME, { type: "application/json" });
}

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  formError.textContent = "";
  const values = {
    name: fields.name.value.trim(),
    isPublic: fields.isPublic.checked,
    password: fields.password.value,
    me: fields.me.value.trim(),
    source: selectedSource(),
    file: fields.file.files[0],
    consent: fields.consent.checked,
  };
  const errors = validateCreateForm(values);
  showFieldErrors(errors);
  if (Object.keys(errors).length) return;

  $("create").disabled = true;
  uploadProgress.hidden = false;
  uploadProgress.value = 0;
  try {
    let { file, me } = values;
    if (values.source === "conversation") {
      // The export names the user this way, so the backend must be told the same.
      me = me || "Me";
      file = await conversationExport(me);
    }
    const created = await api.createChatbot({ ...values, me, file }, (fraction) => {
      uploadProgress.value = Math.round(fraction * 100);
    });
    const entry = await store.rememberChatbot({
      backendUrl,
      name: values.name,
      isPublic: values.isPublic,
      ownerToken: created.owner_token,
    });
    addCard(entry);
    form.reset();
    syncVisibility();
  } catch (caught) {
    showFormError(caught);
  } finally {
    $("create").disabled = false;
    uploadProgress.hidden = true;
  }
});

$("open-tab").addEventListener("click", (event) => {
  event.preventDefault();
  chrome.tabs.create({ url: chrome.runtime.getURL("popup.html") });
});
$("options-link").addEventListener("click", (event) => {
  event.preventDefault();
  chrome.runtime.openOptionsPage();
});
