"""Messenger's side of the chat: answer queued webhook events through the Send API.

The webhook stores each event in the queue (`mimical.messenger.event_queue`: a Redis
Stream, or memory without Redis) and answers 200; worker threads here take them
one user at a time, in order, and answer each `mid` once:

1. `mark_seen`, then `typing_on` while the dialog thinks;
2. the dialog's replies, cut into pieces of at most 2,000 characters (the Send API's
   limit), are stored under the `mid` before the first piece goes out, so an event
   redelivered after a crash resends the same replies instead of asking the model
   (and moving the session) again;
3. each piece is marked "in flight" before its POST (after checking this worker
   still holds the user) and "sent" after it, and carries a tag (`metadata`) that
   Messenger echoes back to the webhook when the page is subscribed to
   `message_echoes` (`mimical messenger setup` subscribes it). A piece found in
   flight on redelivery (its sender was killed), like a POST whose outcome is
   unknown (a 5xx without a Graph error, a read timeout), is sent again only if
   echoes flow and its echo did not come within `ECHO_WAIT_SECONDS`: Graph has no
   idempotency key. Without echoes nobody can tell, and we prefer a rare lost piece
   to a duplicated one; `mimical_messenger_sends_total{outcome="ambiguous"}` counts
   those.

Graph errors are handled by kind (`mimical.messenger.graph_errors`): temporary ones are
retried with backoff, throttles (613, 800xx) until Meta's reply window for the message
closes (`Settings.messenger_reply_window_seconds` after the event's `sent_at`; then
"expired" and counted, never sent late); a message already older than that when taken
(a backlog) is not answered at all (`mimical_messenger_events_total{outcome="expired"}`);
an unreachable user (blocked the page, outside the 24-hour window) is dropped and
counted; a bad page token, a lost permission or a policy block is logged once as an
error, counted by code, and fails the readiness checks until a send succeeds
(`mimical.messenger.page_health`).

Conversation routing (`mimical.messenger.payload`): messages of conversations
another app or the Page inbox owns (`standby`) are never answered, and a Page
admin's own message silences the persona in that conversation for
`Settings.messenger_human_pause_seconds`, until the user's `%restart` or the
thread is handed back. `%human` (the menu's *Talk to a person*) and a person writing
while the persona is silent pass the conversation to the Page inbox, which the next
message after the silence takes back (`mimical.messenger.handover`). `%forget` deletes
what is kept about the user (their session, queued messages, stored replies and
silence; the privacy page says so).

The first reply to a person (whatever they sent: a sticker too) starts with the
automated-reply disclosure (`Settings.messenger_disclosure_text`) unless
`messenger_disclosure` is off, and so does the first after a person of the Page answered
or the conversation went to the Page inbox, and the first after a day without one
(`EventQueue.claim_disclosure`). While
the user is choosing a persona, the last piece offers the public personas as
quick replies.

Usage (what `mimical.messenger.webhook` does):

    worker = MessengerWorker(lambda: engine, settings)
    worker.submit(payload)   # a signed webhook payload (`object: page`)
"""

from __future__ import annotations

import logging
import threading
import time

from mimical.config import Settings
from mimical.dialog.sessions import SESSION_TTL_SECONDS
from mimical.errors import InputError, MimicalError
from mimical.messenger.event_queue import Event, EventQueue, RedisEventQueue
from mimical.messenger.graph import QUICK_REPLIES_MAX, GraphApi, GraphError, split_message
from mimical.messenger.handover import Handover
from mimical.messenger.page_health import PAGE_STOPPERS, MessengerMetrics, PageHealth
from mimical.messenger.payload import ECHO_TAG_PREFIX, HUMAN_COMMAND, Routing, read_payload

log = logging.getLogger(__name__)


def open_event_queue(settings: Settings, **redis_options) -> EventQueue:
    """The Redis queue with `REDIS_URL`, else memory answered by this process's threads."""
    settings.check_someone_answers()
    if settings.redis_url:
        return RedisEventQueue(settings.redis_url, **redis_options)
    from mimical.messenger.memory_queue import MemoryEventQueue

    return MemoryEventQueue(settings.messenger_workers)


CHANNEL = "messenger"
NOT_TEXT = "Sorry, I can only read text messages."
TRY_AGAIN = "Sorry, something went wrong on our side. Please try again in a minute."
FORGOTTEN = (
    "Done: we deleted what this page kept about you (your chat session, messages waiting "
    "for an answer and our stored replies). The conversation in your Messenger inbox is "
    "yours: delete it there."
)
HANDED_OVER = (
    "I've asked a person from this Page to answer you here; they will reply as soon as "
    'they can. Send "%restart" to talk to the persona again.'
)
# How long a message's replies and sending progress are kept: long enough for a
# killed worker's events to be taken over (seconds to minutes), short enough that
# Redis does not hold a day of replies.
REPLY_STATE_TTL_SECONDS = 3600
# Where a message's replies are kept (in the dialog's session store): this, "<psid>:<mid>".
REPLY_KEY_PREFIX = "messenger:reply:"
# How long an idle worker thread waits for work before checking whether to stop.
POLL_SECONDS = 1.0
# How long to wait for the echo of a piece whose send was cut short before sending it
# again; echoes usually take well under a second.
ECHO_WAIT_SECONDS = 5.0
# Times a piece is sent again after sends that Graph may or may not have delivered.
AMBIGUOUS_RESENDS = 2
# The disclosure is said again after this long without one (a dialog session's life).
DISCLOSURE_RENEW_SECONDS = SESSION_TTL_SECONDS


def forget_user(queue, sessions, user: str, keep_mid: str | None = None) -> int:
    """Delete what is kept about a Messenger user: their dialog session, the replies
    stored for their messages, their queued messages (but `keep_mid`, being answered)
    and their silence. Returns how many queued messages were deleted.

    `queue` is the `EventQueue`, `sessions` the dialog's `SessionStore`; the webhook's
    `%forget` and `mimical messenger forget PSID` both come here."""
    deleted = queue.forget(user, keep_mid=keep_mid)
    sessions.delete(f"{CHANNEL}:{user}")  # the dialog's key (`DialogEngine`)
    sessions.delete_prefix(f"{REPLY_KEY_PREFIX}{user}:")
    log.info("deleted a Messenger user's data on request (%d queued messages)", deleted)
    return deleted


class MessengerWorker:
    """Stores webhook events, and answers queued ones with `Settings.messenger_workers`
    background threads (none: the webhook only stores; `mimical messenger respond`
    answers).

    `engine` returns the `DialogEngine`; the worker threads call it before they take
    any event, in the background, because connecting to the model server loads
    TensorFlow (seconds): storing events and acknowledging them needs only the queue.

    `queue_options` go to `RedisEventQueue` (`prefix`, `lease_seconds`,
    `claim_idle_seconds`); `graph_options` to `GraphApi` (`attempts`, backoff).
    `owner_page` (`mimical.dialog.away.OwnerPage`): the Page is one owner's, answered by
    their persona only while they are away.
    """

    def __init__(
        self,
        engine,
        settings: Settings,
        *,
        metrics: MessengerMetrics | None = None,
        queue_options: dict | None = None,
        graph_options: dict | None = None,
        owner_page=None,
    ):
        self._make_engine = engine
        self.owner_page = owner_page
        self._engine = None
        self.metrics = metrics or MessengerMetrics()
        self.graph = GraphApi(
            settings.graph_api_url,
            settings.fb_page_access_token,
            settings.fb_app_secret,
            on_error=self.metrics.graph_error,
            on_usage=self.metrics.usage.set,
            **(graph_options or {}),
        )
        self.queue = open_event_queue(settings, **(queue_options or {}))
        self.health = PageHealth(self.graph, self.metrics)
        self.handover = Handover(self.graph, self.queue, self.metrics, settings)
        self.app_id = settings.fb_app_id
        self.pause_seconds = settings.messenger_human_pause_seconds
        self.reply_window = settings.messenger_reply_window_seconds
        disclose = settings.messenger_disclosure
        self.disclosure = settings.messenger_disclosure_text if disclose else ""
        self._stopping = threading.Event()
        self._threads = [
            threading.Thread(target=self._run, args=(i,), name=f"messenger-{i}", daemon=True)
            for i in range(settings.messenger_workers)
        ]
        for thread in self._threads:
            thread.start()

    def submit(self, payload: dict) -> None:
        """Queue a page payload's messages, note echoes of our own pieces, and silence
        or free conversations people took over or handed back; returns once stored."""
        self.store(read_payload(payload, self.app_id))

    def store(self, routing: Routing) -> None:
        """`submit` for a payload already read (`read_payload` with `Settings.fb_app_id`)."""
        if routing.echo_tags:
            self.queue.record_echoes(routing.echo_tags)
        if routing.pause:
            self.queue.pause(routing.pause, self.pause_seconds)
        if routing.resume:
            self.queue.resume(routing.resume)
            self.queue.clear_handed_over(routing.resume)
        # Standby messages of conversations we passed to the Page inbox: ours to take back.
        ours = self.queue.handed_over(sorted({event.user for event in routing.standby}))
        messages = [*routing.messages, *(e for e in routing.standby if e.user in ours)]
        self.metrics.events.labels("standby").inc(len(routing.standby))
        if not messages:
            return
        new = self.queue.put(messages)
        self.metrics.events.labels("queued").inc(new)
        self.metrics.events.labels("duplicate").inc(len(messages) - new)

    def _run(self, worker: int) -> None:
        failures = 0
        while not self._stopping.is_set():
            try:
                # The engine first (TensorFlow's import, the model connection: seconds):
                # a thread that took a user and then waited for it would let the user's
                # lease run out, and another worker would answer the same event.
                _ = self.engine
                self.queue.serve_once(worker, self.process, POLL_SECONDS)
                failures = 0
            except Exception:  # Redis down, say: keep trying, a little slower each time
                failures += 1
                if failures in (1, 10) or failures % 100 == 0:
                    log.exception("the Messenger worker cannot take events")
                self._stopping.wait(min(0.1 * 2**failures, 5.0))

    @property
    def engine(self):
        if self._engine is None:
            self._engine = self._make_engine()  # made once: the maker is thread-safe
        return self._engine

    def process(self, event: Event, keep_alive=lambda: None) -> None:
        """Answer one event, resuming where an earlier (killed) attempt stopped; an
        event past Meta's reply window is left unanswered (and counted), though a late
        `%forget` still deletes what is kept."""
        sessions = self.engine.sessions
        command = " ".join((event.text or "").lower().split())
        deadline = event.sent_at + self.reply_window if event.sent_at else None
        if deadline is not None and time.time() > deadline:
            if command == "%forget":
                forget_user(self.queue, sessions, event.user, keep_mid=event.mid)
            self.metrics.events.labels("expired").inc()
            return
        key = f"{REPLY_KEY_PREFIX}{event.user}:{event.mid}"
        state = sessions.load(key)
        if state is None:
            if command == "%restart":
                self.queue.resume([event.user])
            elif self.queue.paused(event.user):  # a person answers this conversation
                self.handover.pass_to_inbox(event.user, "a Page admin is answering")
                self.metrics.events.labels("paused").inc()
                return
            if not self.handover.take_back(event.user):  # its owner keeps it
                self.metrics.events.labels("paused").inc()
                return
            if command != "%forget" and self.owner_page and not self.owner_page.away_until():
                self.metrics.events.labels("owner_present").inc()  # left for the owner
                return
            self._action(event.user, "mark_seen")
            if event.text:
                self._action(event.user, "typing_on")
            if command == "%forget":
                deleted = forget_user(self.queue, sessions, event.user, keep_mid=event.mid)
                self.metrics.events.labels("forgotten").inc(deleted)
                replies, quick = [FORGOTTEN], []
            elif command == HUMAN_COMMAND:
                replies, quick = [HANDED_OVER], []
            else:
                replies, quick = self._answer(event)
            if (
                self.disclosure
                and replies
                and self.queue.claim_disclosure(event.user, DISCLOSURE_RENEW_SECONDS)
            ):
                replies = [self.disclosure, *replies]
            keep_alive()  # still this user's worker: only then record the replies
            pieces = [piece for reply in replies for piece in split_message(reply)]
            state = {"pieces": pieces, "quick": quick, "next": 0, "in_flight": None}
            state["hand_over"] = command == HUMAN_COMMAND
            sessions.save(key, state, REPLY_STATE_TTL_SECONDS)
        pieces = state["pieces"]
        while state["next"] < len(pieces):
            index = state["next"]
            tag = f"{event.mid}:{index}"
            # A killed attempt may have sent it: its echo tells.
            if state["in_flight"] == index and self._arrived(tag, keep_alive):
                delivered = True
            else:
                keep_alive()  # still this user's worker: only then name the piece in flight
                state["in_flight"] = index
                sessions.save(key, state, REPLY_STATE_TTL_SECONDS)
                quick = state["quick"] if index == len(pieces) - 1 else []
                delivered = self._send(event.user, pieces[index], quick, tag, keep_alive, deadline)
            # Undeliverable: the rest cannot arrive either.
            state["next"] = index + 1 if delivered else len(pieces)
            state["in_flight"] = None
            sessions.save(key, state, REPLY_STATE_TTL_SECONDS)
        if state.get("hand_over"):  # after the reply that says so; both repeatable
            self.queue.pause([event.user], self.pause_seconds)
            self.handover.pass_to_inbox(event.user, "the person asked for a human")

    def _answer(self, event: Event) -> tuple[list[str], list[str]]:
        """The dialog's replies, and the quick replies to offer with the last one."""
        try:
            # text is None for stickers, images, audio...
            if event.text is None:
                return [NOT_TEXT], []
            if self.owner_page:
                replies = self.owner_page.answer(self.engine, CHANNEL, event.user, event.text)
            else:
                replies = self.engine.handle(CHANNEL, event.user, event.text)
            if self.engine.state(CHANNEL, event.user) != "choosing":
                return replies, []
            personas = [p.name for p in self.engine.directory.list_public() if p.servable]
            return replies, personas[:QUICK_REPLIES_MAX]
        except InputError as error:  # e.g. a message over the length limit
            return [str(error)], []
        except MimicalError as error:  # the model or Redis is down: answer, not silence
            log.warning("cannot handle a Messenger message: %s", error)
            return [TRY_AGAIN], []

    def _action(self, psid: str, action: str) -> None:
        try:
            self.graph.sender_action(psid, action)
        except GraphError as error:
            self.health.failed(error)

    def _send(
        self,
        psid: str,
        text: str,
        quick_replies: list[str],
        tag: str,
        keep_alive,
        deadline: float | None,
    ) -> bool:
        """Send one piece; False if the user (or the page) cannot be reached at all, or
        not before `deadline` (throttled until Meta's reply window closed)."""
        resends = 0
        while True:
            try:
                self.graph.send_text(
                    psid,
                    text,
                    quick_replies,
                    keep_alive,
                    metadata=ECHO_TAG_PREFIX + tag,
                    deadline=deadline,
                )
            except GraphError as error:
                if error.kind == "expired":
                    self.metrics.sends.labels("expired").inc()
                    return False
                if error.kind != "ambiguous":
                    self.health.failed(error)
                    # Code 2 after its one retry: most likely the person blocked the Page.
                    unreachable = error.kind == "unreachable" or error.code == 2
                    stopped = error.kind in PAGE_STOPPERS
                    outcome = "unreachable" if unreachable else "failed"
                    self.metrics.sends.labels(error.kind if stopped else outcome).inc()
                    return not (unreachable or stopped)
                if self._arrived(tag, keep_alive):
                    return True  # its echo came, or nobody can tell (counted by `_arrived`)
                if resends == AMBIGUOUS_RESENDS:  # Graph keeps failing mid-way: give up
                    self.metrics.sends.labels("failed").inc()
                    return True
                resends += 1  # echoes flow and this one never came: send it again
                continue
            self.metrics.sends.labels("sent").inc()
            self.health.works()
            return True

    def _arrived(self, tag: str, keep_alive) -> bool:
        """Whether a piece whose send was cut short reached Messenger: its echo came,
        within `ECHO_WAIT_SECONDS`. Without any echoes (the page is not subscribed to
        `message_echoes`) nobody can tell: count it ambiguous and assume it arrived."""
        deadline = time.monotonic() + ECHO_WAIT_SECONDS
        while (echoed := self.queue.echoed(tag)) is False and time.monotonic() < deadline:
            keep_alive()
            time.sleep(0.1)
        if echoed is None:
            log.warning("a reply piece may or may not have arrived (no message_echoes)")
        if echoed is not False:
            self.metrics.sends.labels("sent" if echoed else "ambiguous").inc()
        return echoed is not False

    def readiness_problem(self) -> str | None:
        """Why this process cannot answer Messenger, or None (`PageHealth.problem`)."""
        return self.health.problem()

    def join(self, timeout: float = 60.0) -> None:
        """Wait until every queued event is answered (tests, benchmarks)."""
        deadline = time.monotonic() + timeout
        while not self.queue.idle() and time.monotonic() < deadline:
            time.sleep(0.02)

    def close(self) -> None:
        """Stop taking events; without Redis, answer what was queued first (it is
        nowhere else). With Redis the rest waits there for another worker."""
        self.queue.drain()
        self._stopping.set()
        for thread in self._threads:
            thread.join()
        self.queue.close()
        self.graph.close()
