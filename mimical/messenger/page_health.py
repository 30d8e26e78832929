"""Whether the Page can still send, as `/metrics` and readiness checks see it.

Graph errors that concern the whole Page, not one person (`mimical.messenger.graph`:
`bad_token`, an expired or revoked page token; `page_blocked`, a permission lost or a
policy block), stop every reply until an operator acts. Each outage is logged once as
an error (every failed call, retried or not, is counted by kind and Graph code in
`mimical_messenger_graph_errors_total`), sets
`mimical_messenger_page_can_send` to 0 (an alert: `mimical_messenger_page_can_send == 0`)
and makes `problem()` say why, which the webhook's readiness check and the responder's
`/readyz` report. A send that works again clears it; for a bad token, `problem()` also
asks Graph (`GET /me`) at most every `TOKEN_RECHECK_SECONDS`.

    health = PageHealth(graph, MessengerMetrics(registry))
    health.failed(error)      # after a GraphError
    health.works()            # after a successful send
    health.problem()          # None, or why the Page cannot send
"""

from __future__ import annotations

import logging
import threading
import time

from mimical.messenger.graph import GraphApi, GraphError

log = logging.getLogger(__name__)

# How often `problem()` may ask Graph whether a page token reported bad works again.
TOKEN_RECHECK_SECONDS = 30.0
# Graph error kinds that stop the whole Page, and what an operator has to do.
PAGE_STOPPERS = {
    "bad_token": "replace the page access token (MIMICAL_FB_PAGE_ACCESS_TOKEN)",
    "page_blocked": "check the app's permissions (pages_messaging) and the Page's quality "
    "in the Page's Support Inbox / Business Support Home",
}


class MessengerMetrics:
    """Counters for `/metrics`, on the app's Prometheus registry."""

    def __init__(self, registry=None):
        from prometheus_client import CollectorRegistry, Counter, Gauge

        registry = registry or CollectorRegistry()
        self.events = Counter(
            "mimical_messenger_events",
            "Messenger events by outcome (queued, duplicate, standby, paused, owner_present,"
            " forgotten, deletion_requested, handed_over, expired: past the reply window)",
            ["outcome"],
            registry=registry,
        )
        self.sends = Counter(
            "mimical_messenger_sends",
            "Reply pieces by outcome (sent, unreachable, bad_token, page_blocked, ambiguous,"
            " failed, expired: throttled until the reply window closed)",
            ["outcome"],
            registry=registry,
        )
        self.graph_errors = Counter(
            "mimical_messenger_graph_errors",
            "Graph API errors by kind and code (code 0: no Graph error in the answer)",
            ["kind", "code"],
            registry=registry,
        )
        # With several workers (`mimical.appkit.metrics`): 0 when any worker sees the failure.
        self.token_ok = Gauge(
            "mimical_messenger_page_token_ok",
            "0 after Graph rejected the page token",
            registry=registry,
            multiprocess_mode="livemin",
        )
        self.can_send = Gauge(
            "mimical_messenger_page_can_send",
            "0 while Graph refuses the Page's sends (bad token, permission lost, policy block)",
            registry=registry,
            multiprocess_mode="livemin",
        )
        self.usage = Gauge(
            "mimical_messenger_graph_usage_percent",
            "Highest rate-limit usage Graph reported (X-Business-Use-Case-Usage, X-App-Usage)",
            registry=registry,
            multiprocess_mode="livemax",
        )
        self.token_ok.set(1)
        self.can_send.set(1)

    def graph_error(self, error: GraphError) -> None:
        """Count one failed Graph call, retried or not (`GraphApi(on_error=...)`)."""
        self.graph_errors.labels(error.kind, str(error.code or 0)).inc()


class PageHealth:
    """The Page's sending state in this process, shared by its worker threads."""

    def __init__(self, graph: GraphApi, metrics: MessengerMetrics):
        self.graph = graph
        self.metrics = metrics
        self._stopped: GraphError | None = None  # the error that stopped the Page
        self._checked_at = 0.0
        self._lock = threading.Lock()

    def failed(self, error: GraphError) -> None:
        """Note a call that failed for good; one that stops the Page raises the alarm
        once per outage."""
        if error.kind not in PAGE_STOPPERS:
            log.warning("Send API: %s", error)
            return
        with self._lock:
            alarm, self._stopped = self._stopped is None, error
        if alarm:  # once per outage, not once per message
            log.error(
                "Graph refuses the Page's messages; Messenger users get no answers until "
                "you %s (%s)",
                PAGE_STOPPERS[error.kind],
                error,
            )
            self.metrics.can_send.set(0)
            if error.kind == "bad_token":
                self.metrics.token_ok.set(0)

    def works(self) -> None:
        """A send went through: the Page can send (again)."""
        if self._stopped is not None:
            with self._lock:
                self._stopped = None
            log.warning("Graph accepts the Page's messages again")
            self.metrics.can_send.set(1)
            self.metrics.token_ok.set(1)

    def problem(self) -> str | None:
        """Why this process cannot answer Messenger, or None (a readiness check)."""
        stopped = self._stopped
        if stopped is None:
            return None
        if stopped.kind == "bad_token":
            with self._lock:
                due = time.monotonic() - self._checked_at >= TOKEN_RECHECK_SECONDS
                if due:
                    self._checked_at = time.monotonic()
            if due:
                try:
                    self.graph.check_token()
                except GraphError as error:
                    self.failed(error)
                else:
                    self.works()
                    return None
            return "Graph rejects the page access token"
        return f"Graph refuses the Page's messages: {stopped}"
