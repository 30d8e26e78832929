// The optional "use this conversation" source: when the active tab is a Messenger
// conversation and the user ticks the consent box, the popup runs
// `collectVisibleMessages` once in that tab (chrome.scripting + activeTab, so no
// standing access to Messenger), then turns the result into a Messenger chat
// export (one JSON file per thread, as messenger.com exports them) that the backend
// imports like a downloaded one. Nothing else in the page is read: no cookies, no
// tokens, no other conversations.

const CONVERSATION_URL = /^https:\/\/(www\.)?(messenger\.com\/(e2ee\/)?t\/|facebook\.com\/messages\/(e2ee\/)?t\/)[^/?#]+/;

export function isMessengerConversation(url) {
  return typeof url === "string" && CONVERSATION_URL.test(url);
}

/**
 * Runs inside the Messenger tab (serialized by chrome.scripting, so it must not use
 * anything outside its own body). Reads the message rows already loaded in the
 * conversation pane and returns `[{fromMe, text}]` oldest first. Messenger draws
 * your own messages on the right-hand side, which is how `fromMe` is decided.
 */
export function collectVisibleMessages() {
  const pane = document.querySelector('[role="main"]') || document.body;
  const box = pane.getBoundingClientRect();
  const middle = box.left + box.width / 2;
  const messages = [];
  for (const row of pane.querySelectorAll('[role="row"]')) {
    // Leaf text blocks only: Messenger nests dir="auto" elements.
    const blocks = [...row.querySelectorAll('[dir="auto"]')].filter(
      (node) => !node.querySelector('[dir="auto"]'),
    );
    const text = blocks
      .map((node) => (node.innerText || node.textContent || "").trim())
      .filter(Boolean)
      .join("\n");
    if (!text) continue;
    const bubble = blocks[0].getBoundingClientRect();
    messages.push({ fromMe: bubble.left + bubble.width / 2 > middle, text });
  }
  return messages;
}

/**
 * Builds a Messenger end-to-end-encrypted chat export (the one-file-per-thread JSON
 * that messenger.com's "Download secure storage data" gives) from collected
 * messages. Timestamps are synthesized a minute apart, since the page does not
 * show exact ones.
 */
export function toMessengerExport(messages, { me, friend = "Friend", now = Date.now() }) {
  const count = messages.length;
  return {
    participants: [me, friend],
    threadName: friend,
    messages: messages.map((message, index) => ({
      senderName: message.fromMe ? me : friend,
      text: message.text,
      timestamp: now - (count - index) * 60_000,
      type: "text",
      isUnsent: false,
      media: [],
      reactions: [],
    })),
  };
}

/** The file name the backend sees for a collected conversation. */
export const CONVERSATION_FILE_NAME = "messenger-conversation.json";
