// The web chat page: post each line to /chat/messages and show the replies.
// Text is always inserted with textContent, never as HTML.
(function () {
  "use strict";
  const messages = document.getElementById("messages");
  const composer = document.getElementById("composer");
  const input = document.getElementById("text");
  const messagesUrl = document.querySelector("main").dataset.messagesUrl;

  function show(text, who) {
    const item = document.createElement("li");
    item.className = "message " + who;
    item.textContent = text;
    messages.appendChild(item);
    messages.scrollTop = messages.scrollHeight;
    return item;
  }

  async function send(text) {
    const typing = show("…", "bot typing");
    let body;
    try {
      const response = await fetch(messagesUrl, {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        credentials: "same-origin",
        body: JSON.stringify({ text: text }),
      });
      body = await response.json();
      if (!response.ok) {
        body = { replies: [body.message || "Something went wrong, please try again."] };
      }
    } catch (error) {
      body = { replies: ["The chat server cannot be reached, please try again in a minute."] };
    }
    typing.remove();
    for (const reply of body.replies || []) {
      show(reply, "bot");
    }
    // Passwords are typed without showing them.
    input.type = body.state === "password" ? "password" : "text";
    input.placeholder = body.state === "password" ? "Password" : "Type a message…";
  }

  // One message at a time, in the order typed: the dialog is a state machine, so a
  // persona name must be handled before the message typed right after it.
  let pending = Promise.resolve();
  function enqueue(text) {
    pending = pending.then(() => send(text));
  }

  composer.addEventListener("submit", function (event) {
    event.preventDefault();
    const text = input.value.trim();
    if (!text) {
      return;
    }
    show(input.type === "password" ? "••••••" : text, "me");
    input.value = "";
    enqueue(text);
  });

  enqueue("");
})();
