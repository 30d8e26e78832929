// The extension's service worker. On first install it opens Options so the user can
// point the extension at their backend (the popup does the rest). It also answers
// the suggestion panel's requests (content/panel.js): the panel sends the open
// conversation's turns, this worker adds the owner token (which never enters the
// Messenger page) and asks the person's own backend for drafts; for the "which one
// sounds like you?" check it drafts a reply for each moment you answered.
import { createApi } from "./lib/api.js";
import { createStore } from "./lib/state.js";
import {
  DRAFT_MAX_CHARS,
  isFromOurContentScript,
  QUIZ_MESSAGE,
  quizPairs,
  SUGGEST_MESSAGE,
  SUGGESTION_COUNT,
  suggestionChatbot,
  toTurns,
} from "./lib/suggest.js";

const store = createStore(chrome.storage.local);

chrome.runtime.onInstalled.addListener(({ reason }) => {
  if (reason === chrome.runtime.OnInstalledReason.INSTALL) chrome.runtime.openOptionsPage();
});

/** The backend client and chatbot that draft replies, or `{error}` saying what is missing. */
async function drafter() {
  const settings = await store.getSuggestions();
  if (!settings.enabled) return { error: "Reply suggestions are switched off in mimical's Options." };
  const backendUrl = await store.getBackendUrl();
  const chatbot = suggestionChatbot(await store.listChatbots(backendUrl), settings.chatbot);
  if (!chatbot) return { error: "Pick the chatbot that drafts your replies in mimical's Options." };
  const api = createApi(backendUrl);
  const draft = (turns, count) =>
    api.suggest(chatbot.name, { turns, count, maxChars: DRAFT_MAX_CHARS, ownerToken: chatbot.ownerToken });
  return { chatbot: chatbot.name, draft };
}

async function suggest(messages, count) {
  const { error, chatbot, draft } = await drafter();
  if (error) return { error };
  const turns = toTurns(messages);
  if (!turns.length) return { error: "No messages to answer in this conversation yet." };
  try {
    return { chatbot, suggestions: await draft(turns, count || SUGGESTION_COUNT) };
  } catch (failure) {
    return { error: failure.message };
  }
}

/**
 * "Which one sounds like you?": one draft for each moment you answered in this
 * conversation, kept with your real answer in `chrome.storage.session` (memory only,
 * gone when the browser closes, each round deleted once played) for Options to show.
 */
async function startQuiz(messages) {
  const { error, draft } = await drafter();
  if (error) return { error };
  const pairs = quizPairs(messages);
  if (!pairs.length) return { error: "No reply of yours in the loaded messages to compare with." };
  try {
    const drafts = await Promise.all(pairs.map((pair) => draft(toTurns(pair.before), 1)));
    const rounds = pairs
      .map((pair, index) => ({ them: pair.them, real: pair.real, draft: drafts[index][0] || "" }))
      .filter((round) => round.draft && round.draft !== round.real);
    if (!rounds.length) return { error: "No drafts came back for this conversation; try again." };
    await chrome.storage.session.set({ quizRounds: rounds });
    await chrome.tabs.create({ url: chrome.runtime.getURL("options.html#quiz") });
    return { rounds: rounds.length };
  } catch (failure) {
    return { error: failure.message };
  }
}

chrome.runtime.onMessage.addListener((message, sender, sendResponse) => {
  const known = message?.type === SUGGEST_MESSAGE || message?.type === QUIZ_MESSAGE;
  if (!known || !isFromOurContentScript(sender, chrome.runtime.id)) return false;
  const messages = Array.isArray(message.messages) ? message.messages : [];
  const work = message.type === QUIZ_MESSAGE ? startQuiz(messages) : suggest(messages, message.count);
  work.then(sendResponse);
  return true; // answered asynchronously
});
