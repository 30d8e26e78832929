// Options: the "which one sounds like you?" check. Rounds come from the suggestion
// panel (background.js keeps them in chrome.storage.session, memory only): your real
// answer and a draft for the same moment, shown in random order. Each pick is counted
// (chrome.storage.local keeps only the two counts) and the round is deleted.
import { createStore } from "./lib/state.js";
import { quizVerdict } from "./lib/suggest.js";

const store = createStore(chrome.storage.local);
const round = document.getElementById("quiz-round");
const them = document.getElementById("quiz-them-text");
const choices = [...document.querySelectorAll(".quiz-choice")];
const reveal = document.getElementById("quiz-reveal");
const score = document.getElementById("quiz-score");
let current = null;

async function showScore() {
  score.textContent = quizVerdict(await store.getQuizScore()).words;
}

async function nextRound() {
  const { quizRounds = [] } = await chrome.storage.session.get("quizRounds");
  current = quizRounds[0] || null;
  round.hidden = !current;
  if (!current) return;
  const draftFirst = crypto.getRandomValues(new Uint8Array(1))[0] % 2 === 0;
  const order = draftFirst ? [current.draft, current.real] : [current.real, current.draft];
  them.textContent = current.them;
  choices.forEach((button, index) => {
    button.textContent = order[index];
    button.dataset.draft = String((index === 0) === draftFirst);
  });
}

for (const button of choices) {
  button.addEventListener("click", async () => {
    if (!current) return;
    const pickedDraft = button.dataset.draft === "true";
    await store.recordQuizPick(pickedDraft);
    reveal.textContent = pickedDraft
      ? `That was your chatbot's draft; you wrote: "${current.real}"`
      : "Right, that one was really yours.";
    const { quizRounds = [] } = await chrome.storage.session.get("quizRounds");
    await chrome.storage.session.set({ quizRounds: quizRounds.slice(1) });
    await showScore();
    await nextRound();
  });
}

document.getElementById("quiz-reset").addEventListener("click", async () => {
  await store.resetQuizScore();
  reveal.textContent = "";
  await showScore();
});

chrome.storage.session.onChanged.addListener((changes) => {
  if (changes.quizRounds && !current) nextRound();
});
await showScore();
await nextRound();
if (location.hash === "#quiz") document.getElementById("quiz").scrollIntoView();
