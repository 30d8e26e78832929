import assert from "node:assert/strict";
import { File } from "node:buffer";
import { test } from "node:test";

import { ApiError, createApi, errorFromResponse, OWNER_TOKEN_HEADER, PASSWORD_HEADER } from "../lib/api.js";

const BASE = "http://127.0.0.1:8080";

/** A fetch that records its calls and answers from `respond(url, init)`. */
function recordingFetch(respond) {
  const calls = [];
  const fetchImpl = async (url, init) => {
    calls.push({ url, init });
    const { status = 200, body = {} } = respond(url, init);
    const text = typeof body === "string" ? body : JSON.stringify(body);
    return { ok: status < 300, status, statusText: "", text: async () => text };
  };
  return { calls, fetchImpl };
}

/** Enough of XMLHttpRequest for uploads: records the request, answers `response`. */
function fakeXhrClass(response, { fail = false } = {}) {
  const sent = [];
  class FakeXhr {
    constructor() {
      this.headers = {};
      this.upload = {};
    }
    open(method, url) {
      Object.assign(this, { method, url });
    }
    setRequestHeader(key, value) {
      this.headers[key] = value;
    }
    send(body) {
      sent.push(this);
      this.body = body;
      queueMicrotask(() => {
        if (fail) return this.onerror();
        this.upload.onprogress?.({ lengthComputable: true, loaded: 50, total: 100 });
        this.upload.onprogress?.({ lengthComputable: true, loaded: 100, total: 100 });
        Object.assign(this, response);
        this.onload();
      });
    }
  }
  return { sent, FakeXhr };
}

test("create uploads the picked file and form fields, reporting progress", async () => {
  const answer = { chatbot: { name: "alex", phase: "Pending" }, owner_token: "tok" };
  const { sent, FakeXhr } = fakeXhrClass({ status: 202, responseText: JSON.stringify(answer) });
  const api = createApi(BASE, { XHR: FakeXhr });
  const progress = [];
  const file = new File(["hello"], "chat.txt", { type: "text/plain" });
  const created = await api.createChatbot(
    { name: "alex", isPublic: false, password: "s3cret", me: "Alex", file },
    (fraction) => progress.push(fraction),
  );
  assert.deepEqual(created, answer);
  assert.deepEqual(progress, [0.5, 1]);
  const [request] = sent;
  assert.equal(request.method, "POST");
  assert.equal(request.url, `${BASE}/api/chatbots`);
  assert.equal(request.withCredentials, false);
  assert.equal(request.body.get("name"), "alex");
  assert.equal(request.body.get("public"), "false");
  assert.equal(request.body.get("password"), "s3cret");
  assert.equal(request.body.get("me"), "Alex");
  assert.equal(request.body.get("export").name, "chat.txt");
});

test("a public chatbot's upload carries no password field", async () => {
  const { sent, FakeXhr } = fakeXhrClass({ status: 202, responseText: "{}" });
  const api = createApi(BASE, { XHR: FakeXhr });
  await api.createChatbot({ name: "sam", isPublic: true, password: "typed then unticked", file: new File(["x"], "a.json") });
  assert.equal(sent[0].body.get("public"), "true");
  assert.equal(sent[0].body.has("password"), false);
  assert.equal(sent[0].body.has("me"), false);
});

test("an upload refused by the backend rejects with its code and message", async () => {
  const body = { error: "unsupported_format", message: "notes.txt is not a WhatsApp, Telegram or Messenger export" };
  const { FakeXhr } = fakeXhrClass({ status: 415, statusText: "Unsupported Media Type", responseText: JSON.stringify(body) });
  const api = createApi(BASE, { XHR: FakeXhr });
  await assert.rejects(api.createChatbot({ name: "x", isPublic: true, file: new File(["x"], "notes.txt") }), (error) => {
    assert.ok(error instanceof ApiError);
    assert.equal(error.status, 415);
    assert.equal(error.code, "unsupported_format");
    assert.match(error.message, /notes.txt is not/);
    return true;
  });
});

test("an unreachable backend is reported as such", async () => {
  const { FakeXhr } = fakeXhrClass({}, { fail: true });
  const api = createApi(BASE, { XHR: FakeXhr });
  await assert.rejects(api.createChatbot({ name: "x", isPublic: true, file: new File(["x"], "a.txt") }), {
    code: "unreachable",
    message: /Cannot reach the backend at http:\/\/127.0.0.1:8080/,
  });
  const offline = createApi(BASE, { fetchImpl: async () => { throw new TypeError("Failed to fetch"); } });
  await assert.rejects(offline.getChatbot("alex"), { code: "unreachable", status: 0 });
});

test("status, retrain and delete send the owner token in a header, never in the URL", async () => {
  const { calls, fetchImpl } = recordingFetch(() => ({ body: { name: "alex", phase: "Training" } }));
  const { sent, FakeXhr } = fakeXhrClass({ status: 202, responseText: "{}" });
  const api = createApi(BASE, { fetchImpl, XHR: FakeXhr });

  assert.equal((await api.getChatbot("alex", { ownerToken: "tok" })).phase, "Training");
  await api.deleteChatbot("alex", "tok");
  await api.retrainChatbot("alex", { file: new File(["x"], "new.zip"), ownerToken: "tok" });

  assert.deepEqual(calls.map((call) => [call.init.method, call.url]), [
    ["GET", `${BASE}/api/chatbots/alex`],
    ["DELETE", `${BASE}/api/chatbots/alex`],
  ]);
  for (const call of calls) {
    assert.equal(call.init.headers[OWNER_TOKEN_HEADER], "Bearer tok");
    assert.equal(call.init.credentials, "omit");
  }
  assert.equal(sent[0].url, `${BASE}/api/chatbots/alex/retrain`);
  assert.equal(sent[0].headers[OWNER_TOKEN_HEADER], "Bearer tok");
  assert.ok(!calls.some((call) => call.url.includes("tok")));
});

test("a password goes in its own header; names are URL-encoded", async () => {
  const { calls, fetchImpl } = recordingFetch(() => ({ body: {} }));
  const api = createApi(BASE, { fetchImpl });
  await api.getChatbot("a/b", { password: "pw" });
  assert.equal(calls[0].url, `${BASE}/api/chatbots/a%2Fb`);
  assert.deepEqual(calls[0].init.headers, { [PASSWORD_HEADER]: "pw" });
});

test("suggest posts the turns as JSON with the owner token and returns the drafts", async () => {
  const { calls, fetchImpl } = recordingFetch(() => ({ body: { suggestions: ["yes!", "maybe"] } }));
  const api = createApi(BASE, { fetchImpl });
  const turns = [{ from: "them", text: "coming tonight?" }];
  const drafts = await api.suggest("alex", { turns, count: 2, maxChars: 120, ownerToken: "tok" });
  assert.deepEqual(drafts, ["yes!", "maybe"]);
  const [{ url, init }] = calls;
  assert.equal(url, `${BASE}/api/chatbots/alex/suggestions`);
  assert.equal(init.method, "POST");
  assert.equal(init.credentials, "omit");
  assert.equal(init.headers[OWNER_TOKEN_HEADER], "Bearer tok");
  assert.equal(init.headers["Content-Type"], "application/json");
  assert.deepEqual(JSON.parse(init.body), { turns, count: 2, max_chars: 120 });
});

test("a refused suggestion request rejects with the backend's message", async () => {
  const { fetchImpl } = recordingFetch(() => ({
    status: 409,
    body: { error: "conflict", message: "'alex' has no model yet (phase Training)" },
  }));
  await assert.rejects(createApi(BASE, { fetchImpl }).suggest("alex", { turns: [], count: 3 }), {
    status: 409,
    message: "'alex' has no model yet (phase Training)",
  });
});

test("nothing is sent to a plain http backend on another computer", async () => {
  const { calls, fetchImpl } = recordingFetch(() => ({}));
  const { sent, FakeXhr } = fakeXhrClass({ status: 202, responseText: "{}" });
  const api = createApi("http://bots.example.org", { fetchImpl, XHR: FakeXhr });
  await assert.rejects(api.getChatbot("alex", { password: "pw" }), (error) => error.code === "insecure");
  await assert.rejects(api.deleteChatbot("alex", "tok"), (error) => error.code === "insecure");
  const file = new File(["x"], "export.zip");
  await assert.rejects(
    api.createChatbot({ name: "alex", isPublic: false, password: "pw", file }),
    (error) => error.code === "insecure",
  );
  assert.equal(calls.length, 0);
  assert.equal(sent.length, 0);
});

test("a password change is a PATCH with the owner token and a JSON body", async () => {
  const { calls, fetchImpl } = recordingFetch(() => ({ body: { name: "alex" } }));
  await createApi(BASE, { fetchImpl }).changePassword("alex", { ownerToken: "tok", password: "new pw" });
  const [{ url, init }] = calls;
  assert.equal(url, `${BASE}/api/chatbots/alex`);
  assert.equal(init.method, "PATCH");
  assert.equal(init.headers[OWNER_TOKEN_HEADER], "Bearer tok");
  assert.equal(init.headers["Content-Type"], "application/json");
  assert.deepEqual(JSON.parse(init.body), { password: "new pw" });
});

test("away mode: PUT the window's end as ISO time, GET it, DELETE it, with the owner token", async () => {
  const { calls, fetchImpl } = recordingFetch((url, init) => ({
    body: { until: init.method === "PUT" ? "2026-12-05T17:00:00Z" : null, page: true, note: null },
  }));
  const api = createApi(BASE, { fetchImpl });
  const opened = await api.setAway("alex", { ownerToken: "tok", until: new Date("2026-12-05T18:00:00+01:00") });
  assert.equal(opened.until, "2026-12-05T17:00:00Z");
  await api.getAway("alex", "tok");
  await api.stopAway("alex", "tok");
  assert.deepEqual(
    calls.map(({ url, init }) => [init.method, url, init.headers[OWNER_TOKEN_HEADER]]),
    [
      ["PUT", `${BASE}/api/chatbots/alex/away`, "Bearer tok"],
      ["GET", `${BASE}/api/chatbots/alex/away`, "Bearer tok"],
      ["DELETE", `${BASE}/api/chatbots/alex/away`, "Bearer tok"],
    ],
  );
  assert.deepEqual(JSON.parse(calls[0].init.body), { until: "2026-12-05T17:00:00.000Z" });
});

test("away mode: a refused window rejects with the backend's words", async () => {
  const { fetchImpl } = recordingFetch(() => ({
    status: 422,
    body: { error: "invalid_input", message: "until: at most 7 days ahead" },
  }));
  await assert.rejects(
    createApi(BASE, { fetchImpl }).setAway("alex", { ownerToken: "tok", until: new Date() }),
    (error) => error instanceof ApiError && error.message === "until: at most 7 days ahead",
  );
});

test("non-JSON error bodies still give a readable error", () => {
  const error = errorFromResponse(502, "Bad Gateway", "<html>nginx</html>");
  assert.equal(error.code, "http_502");
  assert.equal(error.message, "The backend answered 502 Bad Gateway.");
});
