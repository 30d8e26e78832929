// Talks to the mimical backend API (see the README's "Backend API" section).
//
// Only what the user picked is sent: the export file, the form fields, and the
// chatbot's owner token or password in headers when the backend asks for them.
// Requests carry no cookies (`credentials: "omit"`, `withCredentials = false`).
// `fetch` and `XMLHttpRequest` are injectable so `node --test` can drive this
// module without a browser. Nothing goes to a plain http:// backend that is not
// this computer (`isSecureBackend`).

import { isSecureBackend } from "./validate.js";

// Where the backend reads credentials from (never the URL): the owner token as a
// bearer token, a chatbot's password in its own header.
export const OWNER_TOKEN_HEADER = "Authorization";
export const PASSWORD_HEADER = "X-Chatbot-Password";

/** An error answer from the backend, or no answer at all (status 0). */
export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.code = code;
  }
}

/** Builds an ApiError from a response body in the backend's `{error, message}` shape. */
export function errorFromResponse(status, statusText, bodyText) {
  try {
    const body = JSON.parse(bodyText);
    if (body && typeof body.message === "string") {
      return new ApiError(status, String(body.error || `http_${status}`), body.message);
    }
  } catch {
    // Not JSON: a proxy or a server that is not mimical answered.
  }
  const reason = statusText ? `${status} ${statusText}` : String(status);
  return new ApiError(status, `http_${status}`, `The backend answered ${reason}.`);
}

function unreachable(baseUrl) {
  return new ApiError(
    0,
    "unreachable",
    `Cannot reach the backend at ${baseUrl}. Is it running, and is the address in Options right?`,
  );
}

function insecure(baseUrl) {
  return new ApiError(
    0,
    "insecure",
    `${baseUrl} is plain http:// on another computer: nothing is sent there. Use its https:// address in Options.`,
  );
}

function credentialHeaders({ ownerToken, password } = {}) {
  const headers = {};
  if (ownerToken) headers[OWNER_TOKEN_HEADER] = `Bearer ${ownerToken}`;
  if (password) headers[PASSWORD_HEADER] = password;
  return headers;
}

export function createApi(baseUrl, { fetchImpl = globalThis.fetch, XHR = globalThis.XMLHttpRequest } = {}) {
  const chatbotUrl = (name) => `${baseUrl}/api/chatbots/${encodeURIComponent(name)}`;

  async function requestJson(method, url, headers = {}, body = undefined) {
    if (!isSecureBackend(baseUrl)) throw insecure(baseUrl);
    let response;
    const init = { method, headers, credentials: "omit", cache: "no-store" };
    if (body !== undefined) {
      init.headers = { ...headers, "Content-Type": "application/json" };
      init.body = JSON.stringify(body);
    }
    try {
      response = await fetchImpl(url, init);
    } catch {
      throw unreachable(baseUrl);
    }
    const text = await response.text();
    if (!response.ok) throw errorFromResponse(response.status, response.statusText, text);
    return text ? JSON.parse(text) : {};
  }

  // XMLHttpRequest rather than fetch: only it reports upload progress.
  function upload(url, form, headers, onProgress) {
    if (!isSecureBackend(baseUrl)) return Promise.reject(insecure(baseUrl));
    return new Promise((resolve, reject) => {
      const xhr = new XHR();
      xhr.open("POST", url);
      xhr.withCredentials = false;
      for (const [key, value] of Object.entries(headers)) xhr.setRequestHeader(key, value);
      xhr.upload.onprogress = (event) => {
        if (onProgress && event.lengthComputable) onProgress(event.loaded / event.total);
      };
      xhr.onload = () => {
        if (xhr.status >= 200 && xhr.status < 300) {
          try {
            resolve(xhr.responseText ? JSON.parse(xhr.responseText) : {});
          } catch {
            reject(errorFromResponse(xhr.status, xhr.statusText, xhr.responseText));
          }
        } else {
          reject(errorFromResponse(xhr.status, xhr.statusText, xhr.responseText));
        }
      };
      xhr.onerror = () => reject(unreachable(baseUrl));
      xhr.send(form);
    });
  }

  return {
    baseUrl,

    /** `GET /healthz`: resolves when the backend answers, rejects with an ApiError otherwise. */
    health: () => requestJson("GET", `${baseUrl}/healthz`),

    /**
     * Uploads an export and starts building a chatbot. Resolves with the backend's
     * 202 body: the chatbot resource and its one-time owner token.
     */
    createChatbot({ name, isPublic, password, me, file, fileName }, onProgress) {
      const form = new FormData();
      form.append("name", name);
      form.append("public", isPublic ? "true" : "false");
      if (!isPublic) form.append("password", password);
      if (me) form.append("me", me);
      form.append("export", file, fileName || file.name);
      return upload(`${baseUrl}/api/chatbots`, form, {}, onProgress);
    },

    /** Phase, progress and message of one chatbot; private ones need a credential. */
    getChatbot: (name, credentials) => requestJson("GET", chatbotUrl(name), credentialHeaders(credentials)),

    retrainChatbot(name, { file, fileName, ownerToken }, onProgress) {
      const form = new FormData();
      form.append("export", file, fileName || file.name);
      return upload(`${chatbotUrl(name)}/retrain`, form, credentialHeaders({ ownerToken }), onProgress);
    },

    /** Reply drafts in the owner's voice for `turns` (`[{from: "me"|"them", text}]`). */
    async suggest(name, { turns, count, maxChars, ownerToken }) {
      const body = { turns, count };
      if (maxChars) body.max_chars = maxChars;
      const answer = await requestJson(
        "POST",
        `${chatbotUrl(name)}/suggestions`,
        credentialHeaders({ ownerToken }),
        body,
      );
      return Array.isArray(answer.suggestions) ? answer.suggestions : [];
    },

    /** The away window (`{until, page, note}`): `until` null when the persona does not
     * answer the owner's Page; `setAway` opens one until a `Date` (at most 7 days ahead). */
    getAway: (name, ownerToken) => requestJson("GET", `${chatbotUrl(name)}/away`, credentialHeaders({ ownerToken })),
    setAway: (name, { ownerToken, until }) =>
      requestJson("PUT", `${chatbotUrl(name)}/away`, credentialHeaders({ ownerToken }), {
        until: until.toISOString(),
      }),
    stopAway: (name, ownerToken) => requestJson("DELETE", `${chatbotUrl(name)}/away`, credentialHeaders({ ownerToken })),

    deleteChatbot: (name, ownerToken) => requestJson("DELETE", chatbotUrl(name), credentialHeaders({ ownerToken })),

    /** `PATCH` a new password; everyone chatting with the old one is let out. */
    changePassword: (name, { ownerToken, password }) =>
      requestJson("PATCH", chatbotUrl(name), credentialHeaders({ ownerToken }), { password }),
  };
}
