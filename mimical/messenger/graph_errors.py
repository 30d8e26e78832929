"""How a failed Graph API call is read: `GraphError` and its kind, by Graph's error code.

Graph reports most failures as HTTP 400 with an error `code` (and sometimes an
`error_subcode`) in the JSON body, so failures are classified by code, not status:

- temporary (rate limits 4, 17, 32, 613 and the business-use-case throttles 80000-80099,
  e.g. 80006 for Messenger; "try again" 1, 1200; HTTP 429; a 5xx carrying one of those
  codes): the request was not carried out, retried with exponential backoff (or the
  server's `Retry-After`). A `GraphApi.call` given a `deadline` (the end of Meta's reply window for
  the message it answers) retries a throttle until then rather than a fixed number of
  times, and gives up (`GraphError` kind "expired") rather than send after it. Code 2
  ("an unexpected error") is also what Graph answers when the person blocked the Page,
  so it is retried once only (`graph.MAYBE_BLOCKED_ATTEMPTS`);
- unreachable user (551; 10/2018278 and 10/2018065 outside the 24-hour window;
  10/2018108 not receiving messages from the Page; 100/2018001 no such user;
  200/1545041 not available): dropped, retrying cannot help;
- bad page token (190, 102): the whole page is muted until an operator fixes it;
- page blocked (10 and 200 with any other subcode: a permission lost, e.g.
  `pages_messaging` without Advanced Access; 3 and 230: a capability or permission
  missing; 368: blocked for a policy violation; 1/99: "missing permissions can cause
  this"): every send will fail the same way, so none is retried and the Page is
  reported unable to send (`mimical.messenger.page_health`);
- ambiguous (a 5xx without a Graph error, a read timeout): the message may or
  may not have gone out. Graph has no idempotency key, so a message text is not
  sent again (at most once); sender actions are, being harmless to repeat.
"""

from __future__ import annotations

from dataclasses import dataclass

TEMPORARY_CODES = frozenset({1, 2, 4, 17, 32, 613, 1200})
RATE_LIMIT_CODES = frozenset({4, 17, 32, 613})
# Business-use-case rate limits: 80006 Messenger, 80001 Pages, and the rest of the range
# for the other use cases. The app sent more than Meta allows for a while: wait, retry.
BUSINESS_USE_CASE_CODES = range(80000, 80100)
UNREACHABLE = frozenset(
    {
        (551, None),
        (10, 2018278),
        (10, 2018065),
        (10, 2018108),
        (100, 2018001),
        (200, 1545041),
    }
)
BAD_TOKEN_CODES = frozenset({102, 190})
PAGE_BLOCKED_CODES = frozenset({3, 10, 200, 230, 368})
PAGE_BLOCKED = frozenset({(1, 99)})


@dataclass
class GraphError(Exception):
    """A Graph call that did not succeed; `kind` says what the caller should do."""

    # "temporary", "unreachable", "bad_token", "page_blocked", "ambiguous", "rejected",
    # or "expired" (throttled until past the call's deadline: not sent)
    kind: str
    status: int
    code: int | None = None
    subcode: int | None = None
    message: str = ""
    retry_after: float | None = None

    def __str__(self) -> str:
        code = f" code {self.code}" + (f"/{self.subcode}" if self.subcode else "")
        return f"Graph API {self.kind} error (HTTP {self.status}{code}): {self.message}"

    @property
    def rate_limited(self) -> bool:
        """Graph refused for a while because of how much was sent (not this request)."""
        return (
            self.code in RATE_LIMIT_CODES
            or self.code in BUSINESS_USE_CASE_CODES
            or self.status == 429
        )


def classify(status: int, body: object) -> tuple[str, int | None, int | None, str]:
    """(kind, code, subcode, message) of a failed Graph answer."""
    error = body.get("error") if isinstance(body, dict) else None
    error = error if isinstance(error, dict) else {}
    code = error.get("code") if isinstance(error.get("code"), int) else None
    subcode = error.get("error_subcode") if isinstance(error.get("error_subcode"), int) else None
    message = str(error.get("message") or "")[:200]
    if code in BAD_TOKEN_CODES:
        kind = "bad_token"
    elif (code, subcode) in UNREACHABLE or (code, None) in UNREACHABLE:
        kind = "unreachable"
    elif code in PAGE_BLOCKED_CODES or (code, subcode) in PAGE_BLOCKED:
        kind = "page_blocked"
    elif code in TEMPORARY_CODES or code in BUSINESS_USE_CASE_CODES or status == 429:
        kind = "temporary"
    elif status >= 500:
        kind = "ambiguous"  # a proxy's 502, or Graph failing mid-way: delivered or not
    else:
        kind = "rejected"
    return kind, code, subcode, message
