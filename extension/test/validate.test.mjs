import assert from "node:assert/strict";
import { test } from "node:test";

import {
  hostPermissionPattern,
  isSecureBackend,
  normalizeBackendUrl,
  normalizeMessengerUrl,
  validateCreateForm,
  validateName,
} from "../lib/validate.js";

test("names follow DNS-1123 labels", () => {
  for (const good of ["alex", "a", "alex-2", "9lives", "a".repeat(40)]) {
    assert.equal(validateName(good), null, good);
  }
  assert.match(validateName(""), /Choose a name/);
  assert.match(validateName("a".repeat(41)), /at most 40/);
  for (const bad of ["Alex", "-alex", "alex-", "al_ex", "al ex", "élodie"]) {
    assert.match(validateName(bad), /lowercase letters, digits and dashes/, bad);
  }
});

test("a private chatbot needs a password, a public one does not", () => {
  const base = { name: "alex", source: "file", file: { name: "chat.txt" } };
  assert.deepEqual(validateCreateForm({ ...base, isPublic: true }), {});
  assert.deepEqual(Object.keys(validateCreateForm({ ...base, isPublic: false })), ["password"]);
  assert.deepEqual(validateCreateForm({ ...base, isPublic: false, password: "s3cret" }), {});
});

test("the file source needs a file, the conversation source needs consent", () => {
  const base = { name: "alex", isPublic: true };
  assert.match(validateCreateForm({ ...base, source: "file" }).file, /Pick your chat export/);
  assert.match(validateCreateForm({ ...base, source: "conversation" }).consent, /Tick the box/);
  assert.deepEqual(validateCreateForm({ ...base, source: "conversation", consent: true }), {});
});

test("backend addresses are normalized", () => {
  assert.equal(normalizeBackendUrl(" http://127.0.0.1:8080/ "), "http://127.0.0.1:8080");
  assert.equal(normalizeBackendUrl("localhost:8080"), "http://localhost:8080");
  assert.equal(normalizeBackendUrl("https://bots.example.org/mimical//"), "https://bots.example.org/mimical");
  assert.equal(normalizeBackendUrl("HTTPS://Bots.Example.org"), "https://bots.example.org");
});

test("unusable backend addresses say what is wrong", () => {
  assert.throws(() => normalizeBackendUrl(""), /Enter the address/);
  assert.throws(() => normalizeBackendUrl("ftp://example.org"), /http:\/\/ or https:\/\//);
  assert.throws(() => normalizeBackendUrl("http://user:pw@example.org"), /credentials/);
  assert.throws(() => normalizeBackendUrl("http://example.org/?token=1"), /query/);
  assert.throws(() => normalizeBackendUrl("http://exa mple.org"), /not a web address/);
});

test("plain http is only for this computer; elsewhere https is required or assumed", () => {
  assert.throws(() => normalizeBackendUrl("http://bots.example.org"), /Use https:\/\//);
  assert.throws(() => normalizeBackendUrl("http://192.168.1.20:8080"), /unencrypted/);
  assert.equal(normalizeBackendUrl("bots.example.org"), "https://bots.example.org");
  assert.equal(normalizeBackendUrl("http://127.0.0.2:8080"), "http://127.0.0.2:8080");
  assert.equal(normalizeBackendUrl("http://[::1]:8080"), "http://[::1]:8080");
  assert.equal(isSecureBackend("http://localhost:8080"), true);
  assert.equal(isSecureBackend("http://localhost.example.org"), false);
});

test("host permission covers exactly the backend's origin", () => {
  assert.equal(hostPermissionPattern("http://127.0.0.1:8080"), "http://127.0.0.1:8080/*");
  assert.equal(hostPermissionPattern("https://bots.example.org/mimical"), "https://bots.example.org/*");
});

test("the Messenger page is a username or an m.me / messenger.com link", () => {
  assert.equal(normalizeMessengerUrl(""), "");
  assert.equal(normalizeMessengerUrl("mimical.bot"), "https://m.me/mimical.bot");
  assert.equal(normalizeMessengerUrl("https://m.me/mimicalbot/"), "https://m.me/mimicalbot");
  assert.equal(normalizeMessengerUrl("https://www.messenger.com/t/12345"), "https://www.messenger.com/t/12345");
  assert.throws(() => normalizeMessengerUrl("http://m.me/x"), /m\.me/);
  assert.throws(() => normalizeMessengerUrl("https://evil.example/m.me"), /m\.me/);
  assert.throws(() => normalizeMessengerUrl("not a page!"), /neither a page username nor a link/);
});
