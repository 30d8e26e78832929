// Reply suggestions on Messenger: the sites, the switch, and the request's shape.
//
// Off until the person switches it on in Options. Switching on asks Chrome for
// access to the two Messenger sites (an optional host permission, requested from
// that click) and registers the content scripts in content/ for the conversation
// pages only; switching off unregisters them and gives the access back. The
// content script reads the open conversation's last turns and asks the service
// worker, which alone holds the owner token, for drafts from the person's own
// backend. Nothing is sent anywhere else, and nothing is ever sent in Messenger:
// a draft only goes into the composer when the person clicks it.

// Host access asked for when switching on (Chrome grants whole origins).
export const SUGGESTION_ORIGINS = ["https://www.messenger.com/*", "https://www.facebook.com/*"];
// Where the content scripts run: conversation pages only, not the rest of Facebook.
export const SUGGESTION_MATCHES = [
  "https://www.messenger.com/t/*",
  "https://www.messenger.com/e2ee/t/*",
  "https://www.facebook.com/messages/t/*",
  "https://www.facebook.com/messages/e2ee/t/*",
];
export const CONTENT_SCRIPT_ID = "mimical-suggestions";
export const CONTENT_SCRIPT_FILES = ["content/conversation.js", "content/panel.js"];

// The backend's limits (mimical/web/suggestions.py): turns per request, characters
// per turn, drafts per request.
export const TURNS_SENT = 12;
export const TURN_MAX_CHARS = 2000;
export const SUGGESTION_COUNT = 3;
export const DRAFT_MAX_CHARS = 200;

// Messages between the content script and the service worker.
export const SUGGEST_MESSAGE = "mimical:suggest";

/**
 * The request's `turns` from collected messages (`[{fromMe, text}]`, oldest first):
 * the last `TURNS_SENT` non-empty ones, each cut to the backend's limit.
 */
export function toTurns(messages, limit = TURNS_SENT) {
  return messages
    .map((message) => ({
      from: message.fromMe ? "me" : "them",
      text: String(message.text || "").trim().slice(0, TURN_MAX_CHARS),
    }))
    .filter((turn) => turn.text)
    .slice(-limit);
}

/** Is the message from one of our own content scripts on a conversation page? */
export function isFromOurContentScript(sender, extensionId) {
  if (!sender || sender.id !== extensionId || !sender.tab || typeof sender.url !== "string") {
    return false;
  }
  return SUGGESTION_MATCHES.some((pattern) => matchesPattern(pattern, sender.url));
}

function matchesPattern(pattern, url) {
  const escaped = pattern.replace(/[.+?^${}()|[\]\\]/g, "\\$&").replace(/\*/g, ".*");
  return new RegExp(`^${escaped}$`).test(url);
}

/**
 * The chatbot the drafts come from: the chosen one if this browser still knows its
 * owner token, else none (the person picks one in Options).
 */
export function suggestionChatbot(chatbots, chosenName) {
  return chatbots.find((entry) => entry.name === chosenName && entry.ownerToken) || null;
}

// ---------------------------------------------------------------- "which one sounds like you?"

export const QUIZ_MESSAGE = "mimical:quiz";
export const QUIZ_ROUNDS = 5;

/**
 * Rounds for the quiz from a conversation (`[{fromMe, text}]`, oldest first): each
 * time you answered them, the messages before your answer and the answer itself
 * (your consecutive messages joined), the most recent `limit` of them.
 */
export function quizPairs(messages, limit = QUIZ_ROUNDS) {
  const pairs = [];
  for (let index = 1; index < messages.length; index += 1) {
    if (!messages[index].fromMe || messages[index - 1].fromMe) continue;
    const mine = [];
    for (let next = index; next < messages.length && messages[next].fromMe; next += 1) {
      mine.push(String(messages[next].text).trim());
    }
    const before = messages.slice(Math.max(0, index - TURNS_SENT), index);
    pairs.push({ before, them: String(before.at(-1).text).trim(), real: mine.join("\n") });
  }
  return pairs.slice(-limit);
}

/**
 * What a score means: how often the draft was taken for you, with a 95% Wilson
 * interval. A persona that sounds exactly like you is picked half the time.
 */
export function quizVerdict({ rounds, pickedDraft }) {
  if (!rounds) return { share: null, low: null, high: null, words: "No rounds yet." };
  const share = pickedDraft / rounds;
  const z = 1.96;
  const centre = (share + (z * z) / (2 * rounds)) / (1 + (z * z) / rounds);
  const half = (z / (1 + (z * z) / rounds)) * Math.sqrt((share * (1 - share)) / rounds + (z * z) / (4 * rounds * rounds));
  const low = Math.max(0, centre - half);
  const high = Math.min(1, centre + half);
  const percent = (value) => `${Math.round(value * 100)}%`;
  let words;
  if (high < 0.5) words = "You can tell the drafts from your own replies.";
  else if (low > 0.5) words = "The drafts sound more like you than your own replies do.";
  else words = "You cannot tell the drafts from your own replies yet: they pass as you.";
  const summary = `The draft was picked as yours in ${pickedDraft} of ${rounds} rounds (${percent(share)}, 95% interval ${percent(low)}–${percent(high)}).`;
  return { share, low, high, words: `${summary} ${words}` };
}
