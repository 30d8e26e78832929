// Turns backend answers into what the popup shows: phase labels, a progress
// percentage, plain-words errors, and a polling loop that follows a chatbot until
// it is Ready or Failed. Pure functions (the clock is injectable) for `node --test`.

// The backend's phases, in the order a chatbot goes through them.
export const PHASES = ["Pending", "Importing", "Training", "Deploying", "Ready", "Failed"];

const PHASE_LABELS = {
  Pending: "Waiting to start",
  Importing: "Reading your messages",
  Training: "Learning how you talk",
  Deploying: "Getting ready to chat",
  Ready: "Ready",
  Failed: "Failed",
};

export function isSettled(phase) {
  return phase === "Ready" || phase === "Failed";
}

/** Progress as a whole percentage; the backend reports a fraction between 0 and 1. */
export function progressPercent(resource) {
  if (resource.phase === "Ready") return 100;
  const value = Number(resource.progress);
  if (!Number.isFinite(value)) return 0;
  return Math.max(0, Math.min(100, Math.round(value * 100)));
}

/** What the popup needs to draw one chatbot's card. */
export function describeChatbot(resource) {
  const phase = PHASES.includes(resource.phase) ? resource.phase : "Pending";
  return {
    phase,
    label: PHASE_LABELS[phase],
    percent: progressPercent({ ...resource, phase }),
    settled: isSettled(phase),
    failed: phase === "Failed",
    // A previous version keeps serving while a retrain builds the next one.
    chattable: resource.ready ?? phase === "Ready",
    message: resource.message || "",
  };
}

// Plain-words headlines for the backend's error codes; the backend's own
// one-line message follows, since it names the exact problem.
const ERROR_HEADLINES = {
  unsupported_format: "That file is not a chat export mimical can read.",
  invalid_input: "That file could not be used.",
  too_large: "That file is too large.",
  conflict: "That name is taken.",
  unauthorized: "The password or owner token was not accepted.",
  insecure: "Not sent: that backend is plain http:// on another computer.",
  not_found: "That chatbot does not exist (any more).",
  too_many_requests: "Too many tries; wait a minute and try again.",
  unavailable: "The backend is busy or down; try again shortly.",
  unreachable: "The backend cannot be reached.",
};

// Codes a proxy or the web framework itself may use, by HTTP status.
const STATUS_CODES = {
  401: "unauthorized",
  404: "not_found",
  409: "conflict",
  413: "too_large",
  415: "unsupported_format",
  422: "invalid_input",
  429: "too_many_requests",
  503: "unavailable",
};

/** `{headline, detail}` for any error the popup catches. */
export function explainError(error) {
  const headline =
    ERROR_HEADLINES[error.code] || ERROR_HEADLINES[STATUS_CODES[error.status]] || "Something went wrong.";
  const detail = error.message && error.message !== headline ? error.message : "";
  return { headline, detail };
}

const defaultSleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Calls `fetchStatus()` until the chatbot is Ready or Failed, reporting each answer
 * to `onUpdate`. Passing errors (backend restarting, one dropped request) are retried;
 * `maxFailures` in a row give up with the last error. "Too many requests" slows the
 * polling down instead of failing. Stops early when `signal` aborts.
 */
export async function followChatbot(
  fetchStatus,
  { onUpdate = () => {}, intervalMs = 2000, maxFailures = 5, signal, sleep = defaultSleep } = {},
) {
  let failures = 0;
  let delay = intervalMs;
  while (!signal?.aborted) {
    try {
      const resource = await fetchStatus();
      failures = 0;
      delay = intervalMs;
      onUpdate(resource);
      if (isSettled(resource.phase)) return resource;
    } catch (error) {
      if (error.status === 429) {
        delay = Math.min(delay * 2, 60_000);
      } else {
        // Other 4xx (deleted, credential refused) will not fix themselves: stop at once.
        failures += 1;
        if (failures >= maxFailures || (error.status >= 400 && error.status < 500)) throw error;
      }
    }
    await sleep(delay);
  }
  return null;
}
