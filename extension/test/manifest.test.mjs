// Checks on the package as Chrome loads it: Manifest V3, every referenced file
// present, no remote code, and the privacy promises (no cookies, narrow hosts).
import assert from "node:assert/strict";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { test } from "node:test";

const root = new URL("../", import.meta.url);
const manifest = JSON.parse(readFileSync(new URL("manifest.json", root), "utf8"));
const sources = ["popup.js", "options.js", "options-suggestions.js", "options-quiz.js", "background.js", "chatbot-card.js"]
  .concat(readdirSync(new URL("lib/", root)).map((name) => `lib/${name}`))
  .concat(readdirSync(new URL("content/", root)).map((name) => `content/${name}`))
  .concat(["popup.html", "options.html"]);

test("manifest is MV3 and every file it names exists", () => {
  assert.equal(manifest.manifest_version, 3);
  const named = [
    ...Object.values(manifest.icons),
    ...Object.values(manifest.action.default_icon),
    manifest.action.default_popup,
    manifest.options_page,
    manifest.background.service_worker,
  ];
  for (const path of named) assert.ok(existsSync(new URL(path, root)), path);
});

test("host access is loopback by default; anything else is asked for at run time", () => {
  assert.deepEqual(manifest.host_permissions, ["http://127.0.0.1/*", "http://localhost/*"]);
  assert.deepEqual(manifest.optional_host_permissions, ["https://*/*", "http://*/*"]);
  assert.ok(!manifest.permissions.includes("cookies"));
  assert.ok(!manifest.permissions.includes("tabs"), "activeTab is enough");
  assert.ok(!manifest.permissions.includes("webRequest"));
});

test("no remote code: scripts are local and the CSP allows only 'self'", () => {
  assert.equal(manifest.content_security_policy.extension_pages, "script-src 'self'; object-src 'self'");
  for (const path of sources) {
    const text = readFileSync(new URL(path, root), "utf8");
    assert.doesNotMatch(text, /<script[^>]+src=["']https?:/, path);
    assert.doesNotMatch(text, /\bimport\s*\(?\s*["']https?:/, path);
    assert.doesNotMatch(text, /\beval\(|new Function\(/, path);
  }
});

test("nothing reads cookies or session storage of any site", () => {
  for (const path of sources) {
    const text = readFileSync(new URL(path, root), "utf8");
    assert.doesNotMatch(text, /document\.cookie|chrome\.cookies|sessionStorage|localStorage/, path);
  }
});
