import assert from "node:assert/strict";
import { test } from "node:test";

import { ApiError } from "../lib/api.js";
import { describeChatbot, explainError, followChatbot, progressPercent } from "../lib/status.js";

test("progress is a clamped whole percentage, 100 when Ready", () => {
  assert.equal(progressPercent({ phase: "Training", progress: 0.423 }), 42);
  assert.equal(progressPercent({ phase: "Training", progress: 7 }), 100);
  assert.equal(progressPercent({ phase: "Importing" }), 0);
  assert.equal(progressPercent({ phase: "Ready", progress: 0 }), 100);
});

test("each phase has a plain label; unknown phases read as Pending", () => {
  assert.equal(describeChatbot({ phase: "Training", progress: 0.5 }).label, "Learning how you talk");
  assert.equal(describeChatbot({ phase: "Mystery" }).phase, "Pending");
  const failed = describeChatbot({ phase: "Failed", message: "chat.txt: no messages from 'Me'" });
  assert.equal(failed.settled, true);
  assert.equal(failed.failed, true);
  assert.match(failed.message, /no messages/);
});

test("backend errors become a headline plus the backend's own words", () => {
  const error = new ApiError(413, "too_large", "export.zip is 600 MB; the limit is 512 MB");
  assert.deepEqual(explainError(error), {
    headline: "That file is too large.",
    detail: "export.zip is 600 MB; the limit is 512 MB",
  });
  assert.equal(explainError(new ApiError(409, "conflict", "x")).headline, "That name is taken.");
  assert.equal(explainError(new ApiError(415, "unsupported_format", "x")).headline,
    "That file is not a chat export mimical can read.");
  assert.equal(explainError(new Error("boom")).headline, "Something went wrong.");
  // Flask's own 413 (the upload cap) has its own code; the status still says it.
  const capped = new ApiError(413, "request_entity_too_large", "The data value transmitted exceeds the capacity limit.");
  assert.equal(explainError(capped).headline, "That file is too large.");
});

const noSleep = async () => {};

test("following stops at Ready and reports every answer", async () => {
  const answers = [
    { phase: "Pending" },
    { phase: "Importing", progress: 0.1 },
    { phase: "Training", progress: 0.6 },
    { phase: "Ready", progress: 1 },
  ];
  const seen = [];
  const final = await followChatbot(async () => answers.shift(), {
    onUpdate: (resource) => seen.push(resource.phase),
    sleep: noSleep,
  });
  assert.equal(final.phase, "Ready");
  assert.deepEqual(seen, ["Pending", "Importing", "Training", "Ready"]);
});

test("following retries passing failures but gives up on client errors", async () => {
  let calls = 0;
  const flaky = async () => {
    calls += 1;
    if (calls < 3) throw new ApiError(0, "unreachable", "down");
    return { phase: "Failed", message: "bad export" };
  };
  assert.equal((await followChatbot(flaky, { sleep: noSleep })).phase, "Failed");

  calls = 0;
  const gone = async () => {
    calls += 1;
    throw new ApiError(404, "not_found", "no chatbot named alex");
  };
  await assert.rejects(followChatbot(gone, { sleep: noSleep }), /no chatbot named alex/);
  assert.equal(calls, 1);

  const down = async () => {
    throw new ApiError(0, "unreachable", "down");
  };
  await assert.rejects(followChatbot(down, { sleep: noSleep, maxFailures: 3 }), /down/);
});

test("following slows down when rate limited instead of failing", async () => {
  const answers = [new ApiError(429, "too_many_requests", "slow down"), { phase: "Ready" }];
  const delays = [];
  const final = await followChatbot(
    async () => {
      const next = answers.shift();
      if (next instanceof Error) throw next;
      return next;
    },
    { intervalMs: 1000, sleep: async (ms) => delays.push(ms) },
  );
  assert.equal(final.phase, "Ready");
  assert.deepEqual(delays, [2000]);
});

test("a retrain keeps the chat open while the next version builds", () => {
  assert.equal(describeChatbot({ phase: "Training", ready: true }).chattable, true);
  assert.equal(describeChatbot({ phase: "Training", ready: false }).chattable, false);
  assert.equal(describeChatbot({ phase: "Ready" }).chattable, true);
});

test("following stops when aborted", async () => {
  const controller = new AbortController();
  const final = await followChatbot(
    async () => {
      controller.abort();
      return { phase: "Training" };
    },
    { signal: controller.signal, sleep: noSleep },
  );
  assert.equal(final, null);
});
