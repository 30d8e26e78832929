"""Where acknowledged Messenger events wait for an answer: a Redis Stream, or memory.

Once the webhook has answered 200, Messenger never sends the event again, so with
Redis the event is stored before that answer and stays stored until its reply went
out. Several webhook replicas (and threads) share the work:

- `put` does, in one Lua script, what must not be split: claim the message id for
  a day (redeliveries are dropped here), `XADD` a doorbell `{user}` to the stream,
  and `RPUSH` the event to the user's own list (`<prefix>user:<psid>`).
- A worker reads doorbells through a consumer group (`XREADGROUP`). For a doorbell
  of user U it takes U's lock (`SET NX PX`, a lease it renews while working) and
  answers U's list from the head, oldest first, until it is empty; each answered
  event is popped, `XACK`ed and `XDEL`ed in one script. Whoever reads a doorbell
  while another worker holds U's lock leaves it pending: the holder answers that
  event too, and releases the lock only if U's list is empty (one script), so a
  message arriving meanwhile is never stranded. So one user's messages are
  answered one at a time, in order, across replicas, and a `%restart` is never
  overtaken by a slow reply to the message before it.
- A worker killed mid-answer (`kill -9`, OOM) leaves its doorbells pending and its
  lock to expire; another worker takes them over with `XAUTOCLAIM` once they have
  been idle for `claim_idle_seconds`, and resumes the user's list.
- Echoes: with the page subscribed to `message_echoes`, Messenger sends every piece
  the page sent back to the webhook, with the `metadata` we gave it. `record_echoes`
  keeps those tags, so a worker resuming a piece whose send was cut short (the sender
  killed, a timeout) can tell whether it arrived (`echoed`) and send it only if not.

Redis must persist (AOF or RDB) for events to survive a Redis restart; keys live
in one Redis (no Cluster hash tags).

Without Redis (embedded mode, tests) `mimical.messenger.memory_queue.MemoryEventQueue`
keeps the same order per user in one process, but it is not durable: a crash loses
what was queued.

Per user, the queue also keeps the persona's silence while a person answers instead
(`pause`/`resume`/`paused`, see `mimical.messenger.payload`), which conversations
we passed to the Page inbox (`mark_handed_over`, see `mimical.messenger.handover`), and
deletes what waits for a user who asks for it (`forget`).

Usage (what `mimical.messenger.responder.MessengerWorker` does; `open_event_queue` there picks
this queue or the memory one):

    events = open_event_queue(settings)
    events.put([Event(psid, mid, text)])
    events.serve_once(worker_index, handle)   # in each worker thread, in a loop
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from typing import NamedTuple, Protocol

import redis

from mimical.errors import UnavailableError
from mimical.messenger.queue_scripts import (
    ENQUEUE,
    FINISH,
    FORGET,
    RELEASE,
    RELEASE_IF_DRAINED,
    RENEW,
)

log = logging.getLogger(__name__)

DEFAULT_PREFIX = "mimical:messenger:"
GROUP = "responders"
# Messenger redelivers for hours when it thinks a webhook failed; a day covers it.
DEDUPE_TTL_SECONDS = 24 * 3600
MEMORY_DEDUPE_MAX = 100_000
STALE_CONSUMER_MS = 24 * 3600 * 1000
# Echoes of sent pieces are kept as long as the reply states they confirm
# (`mimical.messenger.responder.REPLY_STATE_TTL_SECONDS`); one echo in a week shows the page
# is subscribed to `message_echoes`.
ECHO_TTL_SECONDS = 3600
ECHOES_FLOW_TTL_SECONDS = 7 * 24 * 3600


class Event(NamedTuple):
    user: str  # the Messenger PSID: events of one user are answered in order
    mid: str  # the message id: each is answered once
    text: str | None  # None for stickers, images...
    # When the person sent it (seconds since the epoch, from Messenger's `timestamp`):
    # a reply past Meta's reply window is not sent late. None: not known.
    sent_at: float | None = None


class LeaseLost(Exception):
    """This worker's lock on a user expired (it stalled); another worker took over."""


Handler = Callable[[Event, Callable[[], None]], None]


class EventQueue(Protocol):
    def put(self, events: list[Event]) -> int:
        """Store events (durably, with Redis) before the webhook acknowledges them;
        returns how many were new (the rest were redeliveries)."""
        ...

    def serve_once(self, worker: int, handle: Handler, block_seconds: float) -> None:
        """Wait up to `block_seconds` for work; answer it with `handle(event, keep_alive)`.

        `handle` calls `keep_alive()` before each slow step; it raises `LeaseLost`
        when another worker has taken the user over.
        """
        ...

    def record_echoes(self, tags: list[str]) -> None:
        """Messenger echoed these sent pieces back (`message_echoes`): they arrived."""
        ...

    def echoed(self, tag: str) -> bool | None:
        """Whether the piece `tag` was echoed; None while no echo has ever been seen (the
        page is not subscribed to `message_echoes`, so absence proves nothing)."""
        ...

    def pause(self, users: list[str], seconds: float) -> None:
        """Silence the persona towards these users for `seconds` (a person took over)."""
        ...

    def resume(self, users: list[str]) -> None:
        """End these users' silence (the thread was handed back, or they `%restart`)."""
        ...

    def paused(self, user: str) -> bool: ...

    def mark_handed_over(self, users: list[str], seconds: float) -> None:
        """We passed these users' conversations to the Page inbox (for `seconds` at most)."""
        ...

    def handed_over(self, users: list[str]) -> set[str]:
        """Which of these users' conversations we passed to the Page inbox."""
        ...

    def clear_handed_over(self, users: list[str]) -> None:
        """These conversations are ours again (taken or passed back)."""
        ...

    def claim_disclosure(self, user: str, seconds: float) -> bool:
        """True if `user`'s next reply must say it is automated: none did in the last
        `seconds`, or a person of the Page has answered since (`pause`,
        `mark_handed_over`, `forget` make it due again)."""
        ...

    def forget(self, user: str, keep_mid: str | None = None) -> int:
        """Delete what waits for `user` (their queued messages but `keep_mid`, the one
        being answered, their silence, handover mark and disclosure); returns how many
        messages were deleted."""
        ...

    def idle(self) -> bool:
        """Whether every event put so far has been answered (tests, benchmarks)."""
        ...

    def drain(self) -> None:
        """Before a clean shutdown: answer what would be lost otherwise."""
        ...

    def close(self) -> None: ...


class RedisEventQueue:
    def __init__(
        self,
        redis_url: str,
        *,
        prefix: str = DEFAULT_PREFIX,
        lease_seconds: float = 20.0,
        claim_idle_seconds: float = 15.0,
    ):
        self._redis_errors = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)
        self.redis = redis.Redis.from_url(
            redis_url, socket_timeout=10, socket_connect_timeout=5, health_check_interval=30
        )
        self.prefix = prefix
        self.stream = prefix + "events"
        self.lease_ms = int(lease_seconds * 1000)
        self.claim_idle_ms = int(claim_idle_seconds * 1000)
        # Unique per process start: a restarted worker must not inherit a dead one's name.
        self.consumer = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self._enqueue = self.redis.register_script(ENQUEUE)
        self._finish = self.redis.register_script(FINISH)
        self._release_if_drained = self.redis.register_script(RELEASE_IF_DRAINED)
        self._renew = self.redis.register_script(RENEW)
        self._forget = self.redis.register_script(FORGET)
        self._release = self.redis.register_script(RELEASE)
        self._claim_lock = threading.Lock()
        self._next_claim_at = 0.0
        self._claim_cursor = "0-0"
        self._group_ready = False

    @contextlib.contextmanager
    def _reachable(self):
        """Redis unreachable: an `UnavailableError` (503 to the webhook's caller)."""
        try:
            yield
        except self._redis_errors as error:
            raise UnavailableError(f"the Messenger queue (Redis) is unreachable: {error}") from None

    def _user_key(self, user: str) -> str:
        return f"{self.prefix}user:{user}"

    def _lock_key(self, user: str) -> str:
        return f"{self.prefix}lock:{user}"

    def _pause_key(self, user: str) -> str:
        return f"{self.prefix}paused:{user}"

    def _disclosed_key(self, user: str) -> str:
        return f"{self.prefix}disclosed:{user}"

    def _handed_key(self, user: str) -> str:
        return f"{self.prefix}handed:{user}"

    def _ensure_group(self) -> None:
        if self._group_ready:
            return
        try:
            # From the stream's start: events stored before the group existed count too.
            self.redis.xgroup_create(self.stream, GROUP, id="0", mkstream=True)
        except redis.exceptions.ResponseError as error:
            if "BUSYGROUP" not in str(error):
                raise
        self._group_ready = True

    def put(self, events: list[Event]) -> int:
        with self._reachable(), self.redis.pipeline(transaction=False) as pipe:
            for event in events:
                self._enqueue(
                    keys=[
                        self.stream,
                        f"{self.prefix}mid:{event.mid}",
                        self._user_key(event.user),
                    ],
                    args=[
                        event.user,
                        json.dumps({"mid": event.mid, "text": event.text, "at": event.sent_at}),
                        DEDUPE_TTL_SECONDS,
                    ],
                    client=pipe,
                )
            return sum(pipe.execute())

    def serve_once(self, worker: int, handle: Handler, block_seconds: float) -> None:
        self._ensure_group()
        consumer = f"{self.consumer}-{worker}"
        doorbells = self._claim_idle(consumer)
        if not doorbells:
            answer = self.redis.xreadgroup(
                GROUP,
                consumer,
                {self.stream: ">"},
                count=1,
                block=max(1, int(block_seconds * 1000)),
            )
            doorbells = answer[0][1] if answer else []
        for _entry_id, fields in doorbells:
            self._serve_user(fields[b"user"].decode(), handle)

    def _claim_idle(self, consumer: str) -> list:
        """Doorbells a dead (or stalled) worker left pending, at most every half idle time."""
        with self._claim_lock:
            if time.monotonic() < self._next_claim_at:
                return []
            self._next_claim_at = time.monotonic() + self.claim_idle_ms / 2000
            cursor = self._claim_cursor
        answer = self.redis.xautoclaim(
            self.stream, GROUP, consumer, self.claim_idle_ms, start_id=cursor, count=16
        )
        with self._claim_lock:
            self._claim_cursor = answer[0]
        return answer[1]

    def _serve_user(self, user: str, handle: Handler) -> None:
        lock, pending = self._lock_key(user), self._user_key(user)
        token = uuid.uuid4().hex
        if not self.redis.set(lock, token, nx=True, px=self.lease_ms):
            return  # the holder answers this user's events, ours included

        def keep_alive() -> None:
            if not self._renew(keys=[lock], args=[token, self.lease_ms]):
                raise LeaseLost(user)

        try:
            while True:
                raw = self.redis.lindex(pending, 0)
                if raw is None:
                    if self._release_if_drained(keys=[lock, pending], args=[token]) != 0:
                        return
                    continue  # an event arrived after the read: answer it too
                event = json.loads(raw)
                keep_alive()
                # Events queued by an earlier release carry no time ("at").
                handle(Event(user, event["mid"], event["text"], event.get("at")), keep_alive)
                self._finish(keys=[self.stream, pending], args=[GROUP, event["id"], raw])
        except LeaseLost:
            log.warning("lost the lease on a Messenger user; another worker took over")
        except BaseException:
            # The event stays at the head of the list and its doorbell pending: retried.
            self._release(keys=[lock], args=[token])
            raise

    def record_echoes(self, tags: list[str]) -> None:
        with self._reachable(), self.redis.pipeline(transaction=False) as pipe:
            for tag in tags:
                pipe.set(f"{self.prefix}echo:{tag}", 1, ex=ECHO_TTL_SECONDS)
            pipe.set(f"{self.prefix}echoes-flow", 1, ex=ECHOES_FLOW_TTL_SECONDS)
            pipe.execute()

    def echoed(self, tag: str) -> bool | None:
        seen, flowing = self.redis.mget(f"{self.prefix}echo:{tag}", f"{self.prefix}echoes-flow")
        return True if seen else (False if flowing else None)

    def pause(self, users: list[str], seconds: float) -> None:
        with self._reachable(), self.redis.pipeline(transaction=False) as pipe:
            for user in users:
                pipe.set(self._pause_key(user), 1, px=max(1, int(seconds * 1000)))
                pipe.delete(self._disclosed_key(user))  # a person spoke: say it again
            pipe.execute()

    def resume(self, users: list[str]) -> None:
        with self._reachable():
            self.redis.delete(*map(self._pause_key, users))

    def paused(self, user: str) -> bool:
        return bool(self.redis.exists(self._pause_key(user)))

    def mark_handed_over(self, users: list[str], seconds: float) -> None:
        with self._reachable(), self.redis.pipeline(transaction=False) as pipe:
            for user in users:
                pipe.set(self._handed_key(user), 1, ex=max(1, int(seconds)))
                pipe.delete(self._disclosed_key(user))
            pipe.execute()

    def handed_over(self, users: list[str]) -> set[str]:
        if not users:
            return set()
        with self._reachable():
            marks = self.redis.mget([self._handed_key(user) for user in users])
        return {user for user, mark in zip(users, marks, strict=True) if mark}

    def clear_handed_over(self, users: list[str]) -> None:
        with self._reachable():
            self.redis.delete(*map(self._handed_key, users))

    def claim_disclosure(self, user: str, seconds: float) -> bool:
        with self._reachable():
            key = self._disclosed_key(user)
            return bool(self.redis.set(key, 1, nx=True, ex=max(1, int(seconds))))

    def forget(self, user: str, keep_mid: str | None = None) -> int:
        self._ensure_group()
        keys = [
            self._user_key(user),
            self.stream,
            self._pause_key(user),
            self._handed_key(user),
            self._disclosed_key(user),
        ]
        return int(self._forget(keys=keys, args=[GROUP, keep_mid or ""]))

    def idle(self) -> bool:
        return self.redis.xlen(self.stream) == 0

    def drain(self) -> None:
        pass  # what is queued stays in Redis for the other workers

    def close(self) -> None:
        """Forget this process's consumers, and those of replicas killed a day ago or
        more, once they hold nothing pending (their names are never reused)."""
        try:
            for consumer in self.redis.xinfo_consumers(self.stream, GROUP):
                name = consumer["name"].decode()
                gone = name.startswith(self.consumer) or consumer["idle"] > STALE_CONSUMER_MS
                if gone and consumer["pending"] == 0:
                    self.redis.xgroup_delconsumer(self.stream, GROUP, name)
        except (*self._redis_errors, redis.exceptions.ResponseError):
            pass  # Redis down or the stream never made: nothing to tidy
        self.redis.close()
