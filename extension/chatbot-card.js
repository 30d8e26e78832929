// One chatbot in the popup's "Your chatbots" list: live phase and progress from
// the backend until Ready, then "Chat now" (web chat) and Messenger links, and
// Retrain / Delete with the owner token this browser remembered at creation.
// Everything the backend says is written with textContent, never as HTML.
import { EXPORT_ACCEPT } from "./lib/validate.js";
import { describeChatbot, explainError, followChatbot } from "./lib/status.js";

function element(tag, props = {}, ...children) {
  const node = Object.assign(document.createElement(tag), props);
  node.append(...children.filter((child) => child !== null && child !== undefined));
  return node;
}


/**
 * Renders `entry` (what the store remembers) into a new <li> and keeps it up to
 * date. `messengerUrl` is the backend's page on Messenger from Options ("" for
 * none). `onForget` is called after a successful delete so the list can drop it.
 */
export function createChatbotCard({ api, store, entry, messengerUrl, onForget }) {
  const phase = element("span", { className: "phase", textContent: "Checking…" });
  const progress = element("progress", { max: 100, value: 0, ariaLabel: `${entry.name} build progress` });
  const message = element("p", { className: "message" });
  // The web chat asks whom to talk to: the hint says what to answer.
  const chatLink = element("a", {
    className: "chat-link",
    textContent: "Chat now",
    target: "_blank",
    href: `${api.baseUrl}/chat`,
  });
  const chatHint = element("span", { className: "hint", textContent: `ask for “${entry.name}”` });
  const messengerLink = element("a", {
    className: "messenger-link",
    textContent: "On Messenger",
    target: "_blank",
    href: messengerUrl,
    hidden: !messengerUrl,
  });
  const links = element("div", { className: "links", hidden: true }, chatLink, chatHint, messengerLink);
  const retrainInput = element("input", { type: "file", accept: EXPORT_ACCEPT, className: "retrain-file" });
  const retrainLabel = element("label", { className: "button secondary", textContent: "Retrain" }, retrainInput);
  const deleteButton = element("button", { type: "button", className: "delete secondary", textContent: "Delete" });
  // A new password for a private chatbot: friends who had the old one are let out.
  const passwordInput = element("input", {
    type: "password",
    className: "new-password",
    placeholder: "New password",
    autocomplete: "new-password",
    maxLength: 1024,
  });
  const passwordButton = element("button", { type: "submit", className: "secondary", textContent: "Change" });
  const passwordForm = element("form", { className: "password", hidden: entry.isPublic }, passwordInput, passwordButton);
  const actions = element(
    "div",
    { className: "actions", hidden: !entry.ownerToken },
    retrainLabel,
    deleteButton,
    passwordForm,
  );
  const error = element("div", { className: "error", role: "alert" });
  const card = element(
    "li",
    { className: "chatbot" },
    element(
      "div",
      { className: "title" },
      element("strong", { textContent: entry.name }),
      element("span", { className: "badge", textContent: entry.isPublic ? "public" : "private" }),
      phase,
    ),
    progress,
    message,
    links,
    actions,
    error,
  );
  card.dataset.name = entry.name;

  let following = null;

  function showError(caught) {
    const { headline, detail } = explainError(caught);
    error.replaceChildren(element("strong", { textContent: headline }), detail ? ` ${detail}` : "");
  }

  function show(resource) {
    const view = describeChatbot(resource);
    card.dataset.phase = view.phase;
    phase.textContent = view.label;
    progress.value = view.percent;
    progress.hidden = view.settled;
    message.textContent = view.failed || !view.settled ? view.message : "";
    links.hidden = !view.chattable;
  }

  function follow() {
    following?.abort();
    following = new AbortController();
    error.textContent = "";
    followChatbot(() => api.getChatbot(entry.name, { ownerToken: entry.ownerToken }), {
      onUpdate: show,
      signal: following.signal,
    }).catch(showError);
  }

  retrainInput.addEventListener("change", async () => {
    const file = retrainInput.files[0];
    if (!file) return;
    error.textContent = "";
    progress.hidden = false;
    phase.textContent = "Uploading";
    try {
      await api.retrainChatbot(entry.name, { file, ownerToken: entry.ownerToken }, (fraction) => {
        progress.value = Math.round(fraction * 100);
      });
      follow();
    } catch (caught) {
      showError(caught);
    } finally {
      retrainInput.value = "";
    }
  });

  passwordForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    const password = passwordInput.value;
    if (!password) return;
    error.textContent = "";
    try {
      await api.changePassword(entry.name, { ownerToken: entry.ownerToken, password });
      passwordInput.value = "";
      message.textContent = "Password changed: everyone needs the new one now.";
    } catch (caught) {
      showError(caught);
    }
  });

  // Two clicks rather than a confirm() dialog, which would close the popup.
  deleteButton.addEventListener("click", async () => {
    if (deleteButton.dataset.armed !== "true") {
      deleteButton.dataset.armed = "true";
      deleteButton.textContent = "Really delete?";
      return;
    }
    following?.abort();
    try {
      await api.deleteChatbot(entry.name, entry.ownerToken);
    } catch (caught) {
      // Already gone on the backend (which answers 401 for unknown names, as for a wrong
      // token, so that strangers cannot tell): forgetting it locally is what the user wants.
      if (caught.code !== "not_found" && caught.code !== "unauthorized") {
        deleteButton.dataset.armed = "false";
        deleteButton.textContent = "Delete";
        showError(caught);
        return;
      }
    }
    await store.forgetChatbot(entry.backendUrl, entry.name);
    card.remove();
    onForget?.(entry);
  });

  follow();
  return card;
}
