// Options page: the backend address and, optionally, its Messenger page. Saving
// asks Chrome for host access to that one origin (the loopback addresses of the
// embedded server are granted at install), then checks the backend answers `/healthz`.
import { createApi } from "./lib/api.js";
import { createStore } from "./lib/state.js";
import { hostPermissionPattern, normalizeBackendUrl, normalizeMessengerUrl } from "./lib/validate.js";

const store = createStore(chrome.storage.local);
const form = document.getElementById("options-form");
const input = document.getElementById("backend-url");
const messengerInput = document.getElementById("messenger-url");
const status = document.getElementById("options-status");

function say(text, kind = "") {
  status.textContent = text;
  status.className = kind;
}

input.value = await store.getBackendUrl();
messengerInput.value = await store.getMessengerUrl();

form.addEventListener("submit", (event) => {
  event.preventDefault();
  let backendUrl;
  let messengerUrl;
  try {
    backendUrl = normalizeBackendUrl(input.value);
    messengerUrl = normalizeMessengerUrl(messengerInput.value);
  } catch (error) {
    say(error.message, "error");
    return;
  }
  // Requested straight from the click: Chrome only prompts during a user gesture.
  chrome.permissions.request({ origins: [hostPermissionPattern(backendUrl)] }).then(
    async (granted) => {
      if (!granted) {
        say(`Chrome did not grant access to ${backendUrl}; the address was not saved.`, "error");
        return;
      }
      await store.setBackendUrl(backendUrl);
      await store.setMessengerUrl(messengerUrl);
      input.value = backendUrl;
      messengerInput.value = messengerUrl;
      say(`Saved. Checking ${backendUrl}…`);
      try {
        await createApi(backendUrl).health();
        say(`Saved. The backend at ${backendUrl} is up.`, "ok");
      } catch (error) {
        say(`Saved, but: ${error.message}`, "error");
      }
    },
    (error) => say(error.message, "error"),
  );
});
