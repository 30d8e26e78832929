// What the extension remembers, in `chrome.storage.local` (this browser only,
// never synced): the backend address, its Messenger page link and, per chatbot the user created, the
// one-time owner token that lets them retrain or delete it later; whether reply
// suggestions are on and from which chatbot; the "which one sounds like you?"
// tally (two counts, no message text). Passwords are never stored. `area` is any object with promise-returning `get`/`set`, so tests
// pass an in-memory one.

// The embedded all-in-one server's address (`mimical serve` defaults).
export const DEFAULT_BACKEND_URL = "http://127.0.0.1:8080";

export function createStore(area) {
  async function readChatbots() {
    const { chatbots } = await area.get("chatbots");
    return Array.isArray(chatbots) ? chatbots : [];
  }

  return {
    async getBackendUrl() {
      const { backendUrl } = await area.get("backendUrl");
      return backendUrl || DEFAULT_BACKEND_URL;
    },

    setBackendUrl: (backendUrl) => area.set({ backendUrl }),

    /** The backend's Facebook page on Messenger ("" when it has none). */
    async getMessengerUrl() {
      const { messengerUrl } = await area.get("messengerUrl");
      return messengerUrl || "";
    },

    setMessengerUrl: (messengerUrl) => area.set({ messengerUrl }),

    /** Chatbots created from this browser on `backendUrl`, newest first. */
    async listChatbots(backendUrl) {
      return (await readChatbots()).filter((entry) => entry.backendUrl === backendUrl);
    },

    /** Remembers (or refreshes) a chatbot; `ownerToken` is kept as the backend gave it. */
    async rememberChatbot({ backendUrl, name, isPublic, ownerToken }) {
      const others = (await readChatbots()).filter(
        (entry) => !(entry.backendUrl === backendUrl && entry.name === name),
      );
      const entry = { backendUrl, name, isPublic: Boolean(isPublic), ownerToken, createdAt: Date.now() };
      await area.set({ chatbots: [entry, ...others] });
      return entry;
    },

    /** Reply suggestions: `{enabled, chatbot}` (off, no chatbot, until switched on). */
    async getSuggestions() {
      const { suggestions } = await area.get("suggestions");
      return { enabled: false, chatbot: "", ...(suggestions || {}) };
    },

    setSuggestions: ({ enabled, chatbot }) =>
      area.set({ suggestions: { enabled: Boolean(enabled), chatbot: chatbot || "" } }),

    /** "Which one sounds like you?" tally: rounds played, and how often the draft was picked. */
    async getQuizScore() {
      const { quizScore } = await area.get("quizScore");
      return { rounds: 0, pickedDraft: 0, ...(quizScore || {}) };
    },

    async recordQuizPick(pickedDraft) {
      const score = await this.getQuizScore();
      const next = { rounds: score.rounds + 1, pickedDraft: score.pickedDraft + (pickedDraft ? 1 : 0) };
      await area.set({ quizScore: next });
      return next;
    },

    resetQuizScore: () => area.set({ quizScore: { rounds: 0, pickedDraft: 0 } }),

    async forgetChatbot(backendUrl, name) {
      const kept = (await readChatbots()).filter(
        (entry) => !(entry.backendUrl === backendUrl && entry.name === name),
      );
      await area.set({ chatbots: kept });
    },
  };
}
