// Checks the popup and options forms before anything leaves the browser.
//
// These are hints that save a round trip; the backend stays the authority and
// its own error (wrong file, too large, name taken) is what the user sees for
// anything these checks let through. Pure functions: `node --test test/` covers them.

// Persona names become Kubernetes resource names, so they follow DNS-1123 labels, short
// enough (like the backend's `NAME_MAX_LENGTH`) to leave room for the training Job suffix.
export const NAME_PATTERN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
export const NAME_MAX_LENGTH = 40;

// File pickers offer these; the backend sniffs the content whatever the name says.
export const EXPORT_ACCEPT = ".zip,.json,.txt";

export function validateName(name) {
  if (!name) return "Choose a name for your chatbot.";
  if (name.length > NAME_MAX_LENGTH) return `Use at most ${NAME_MAX_LENGTH} characters.`;
  if (!NAME_PATTERN.test(name)) {
    return "Use lowercase letters, digits and dashes, starting and ending with a letter or digit.";
  }
  return null;
}

/**
 * Returns `{field: message}` for each problem in the create form (empty when fine).
 * `source` is "file" (a picked export) or "conversation" (the open Messenger tab).
 */
export function validateCreateForm({ name, isPublic, password, source, file, consent }) {
  const errors = {};
  const nameError = validateName(name);
  if (nameError) errors.name = nameError;
  if (!isPublic && !password) errors.password = "A private chatbot needs a password.";
  if (source === "conversation") {
    if (!consent) errors.consent = "Tick the box to let mimical read this conversation.";
  } else if (!file) {
    errors.file = "Pick your chat export (a .zip, .json or .txt file).";
  }
  return errors;
}

/**
 * Turns what the user typed in Options into a clean base URL without a trailing
 * slash, or throws an Error saying what is wrong with it.
 */
export function normalizeBackendUrl(input) {
  const text = (input || "").trim();
  if (!text) throw new Error("Enter the address of your mimical backend.");
  let url;
  try {
    url = new URL(/^[a-z][a-z0-9+.-]*:\/\//i.test(text) ? text : `http://${text}`);
    // Typed without a scheme: plain http only on this computer, https anywhere else.
    if (!/^[a-z][a-z0-9+.-]*:\/\//i.test(text) && !isLoopbackHost(url.hostname)) {
      url = new URL(`https://${text}`);
    }
  } catch {
    throw new Error(`"${text}" is not a web address.`);
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    throw new Error("The backend address must start with http:// or https://.");
  }
  if (url.username || url.password || url.search || url.hash) {
    throw new Error("Leave credentials, ?query and #fragment out of the backend address.");
  }
  if (!isSecureBackend(url.href)) {
    throw new Error(
      "Use https:// for a backend that is not on this computer: over http:// your exports, " +
        "passwords and owner tokens would travel unencrypted.",
    );
  }
  return `${url.origin}${url.pathname.replace(/\/+$/, "")}`;
}

/** True for this computer's own addresses (localhost, 127.0.0.0/8, ::1). */
export function isLoopbackHost(hostname) {
  return hostname === "localhost" || hostname === "[::1]" || /^127(\.\d{1,3}){3}$/.test(hostname);
}

/** True if exports, passwords and tokens may go to `backendUrl`: https, or http on loopback. */
export function isSecureBackend(backendUrl) {
  const url = new URL(backendUrl);
  return url.protocol === "https:" || (url.protocol === "http:" && isLoopbackHost(url.hostname));
}

/** The host-permission match pattern that covers exactly this backend (scheme, host, port). */
export function hostPermissionPattern(backendUrl) {
  const url = new URL(backendUrl);
  return `${url.protocol}//${url.host}/*`;
}

/**
 * The Messenger link friends use to reach the backend's Facebook page: a page
 * username or an m.me / messenger.com link, returned as a clean https URL.
 * Empty input means "no Messenger page" and returns "".
 */
export function normalizeMessengerUrl(input) {
  const text = (input || "").trim();
  if (!text) return "";
  if (/^[A-Za-z0-9.]{5,50}$/.test(text)) return `https://m.me/${text}`;
  let url;
  try {
    url = new URL(text);
  } catch {
    throw new Error(`"${text}" is neither a page username nor a link.`);
  }
  const allowed = ["m.me", "www.messenger.com", "messenger.com"];
  if (url.protocol !== "https:" || !allowed.includes(url.hostname)) {
    throw new Error("Use the page's https://m.me/… link (or just its username).");
  }
  return `${url.origin}${url.pathname.replace(/\/+$/, "")}`;
}
