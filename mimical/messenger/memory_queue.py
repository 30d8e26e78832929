"""The Messenger queue without Redis: memory, one process (embedded `mimical serve`, tests).

Same contract as `mimical.messenger.event_queue.RedisEventQueue` (order per user, each
`mid` once, echoes, silences, `forget`), but not durable: a crash loses what was
queued. Usage: `mimical.messenger.responder.open_event_queue(settings)` picks it when
`REDIS_URL` is empty.
"""

from __future__ import annotations

import queue
import threading
import time
import zlib
from collections import OrderedDict

from mimical.messenger.event_queue import (
    DEDUPE_TTL_SECONDS,
    MEMORY_DEDUPE_MAX,
    Event,
    Handler,
)


class MemoryEventQueue:
    """One in-process queue per worker thread; a user always lands on the same one.

    Not durable: events queued here are lost if the process dies.
    """

    def __init__(self, workers: int):
        self._queues = [queue.Queue() for _ in range(workers)]
        self._paused: dict[str, float] = {}  # user -> monotonic time the silence ends
        self._handed: dict[str, float] = {}  # user -> monotonic time the mark ends
        self._disclosed: dict[str, float] = {}  # user -> when the disclosure is due again
        self._dropped: set[str] = set()  # mids of forgotten events, skipped when taken
        self._seen: OrderedDict[str, float] = OrderedDict()
        self._echoes: OrderedDict[str, None] = OrderedDict()  # bounded like `_seen`
        self._seen_lock = threading.Lock()

    def _first_time(self, mid: str) -> bool:
        now = time.monotonic()
        with self._seen_lock:
            if mid in self._seen and self._seen[mid] > now:
                return False
            self._seen[mid] = now + DEDUPE_TTL_SECONDS
            self._seen.move_to_end(mid)
            while len(self._seen) > MEMORY_DEDUPE_MAX:  # bounded: forget the oldest
                self._seen.popitem(last=False)
            return True

    def record_echoes(self, tags: list[str]) -> None:
        with self._seen_lock:
            for tag in tags:
                self._echoes[tag] = None
                self._echoes.move_to_end(tag)
            while len(self._echoes) > MEMORY_DEDUPE_MAX:
                self._echoes.popitem(last=False)

    def echoed(self, tag: str) -> bool | None:
        with self._seen_lock:
            return True if tag in self._echoes else (False if self._echoes else None)

    def pause(self, users: list[str], seconds: float) -> None:
        with self._seen_lock:
            for user in users:
                self._paused[user] = time.monotonic() + seconds
                self._disclosed.pop(user, None)  # a person spoke: say it again

    def resume(self, users: list[str]) -> None:
        with self._seen_lock:
            for user in users:
                self._paused.pop(user, None)

    def paused(self, user: str) -> bool:
        with self._seen_lock:
            until = self._paused.get(user)
            if until is not None and until <= time.monotonic():
                del self._paused[user]  # a user's silence is forgotten once over
                until = None
            return until is not None

    def mark_handed_over(self, users: list[str], seconds: float) -> None:
        with self._seen_lock:
            for user in users:
                self._handed[user] = time.monotonic() + seconds
                self._disclosed.pop(user, None)

    def handed_over(self, users: list[str]) -> set[str]:
        now = time.monotonic()
        with self._seen_lock:
            for user in [u for u, until in self._handed.items() if until <= now]:
                del self._handed[user]
            return {user for user in users if user in self._handed}

    def clear_handed_over(self, users: list[str]) -> None:
        with self._seen_lock:
            for user in users:
                self._handed.pop(user, None)

    def claim_disclosure(self, user: str, seconds: float) -> bool:
        now = time.monotonic()
        with self._seen_lock:
            if self._disclosed.get(user, 0.0) > now:
                return False
            if len(self._disclosed) >= MEMORY_DEDUPE_MAX:  # bounded: forget the lapsed
                self._disclosed = {u: due for u, due in self._disclosed.items() if due > now}
            self._disclosed[user] = now + seconds
            return True

    def forget(self, user: str, keep_mid: str | None = None) -> int:
        events = self._queues[self._worker_of(user)]
        with events.mutex:  # a snapshot: the queue's own lock
            waiting = [e.mid for e in events.queue if e.user == user and e.mid != keep_mid]
        with self._seen_lock:
            self._dropped.update(waiting)
            self._paused.pop(user, None)
            self._handed.pop(user, None)
            self._disclosed.pop(user, None)
        return len(waiting)

    def _worker_of(self, user: str) -> int:
        # A stable hash keeps each user on one worker, so their messages stay in order.
        return zlib.crc32(user.encode()) % len(self._queues)

    def put(self, events: list[Event]) -> int:
        new = 0
        for event in events:
            if self._first_time(event.mid):
                self._queues[self._worker_of(event.user)].put(event)
                new += 1
        return new

    def serve_once(self, worker: int, handle: Handler, block_seconds: float) -> None:
        try:
            event = self._queues[worker].get(timeout=block_seconds)
        except queue.Empty:
            return
        try:
            with self._seen_lock:
                forgotten = event.mid in self._dropped
                self._dropped.discard(event.mid)
            if not forgotten:
                handle(event, lambda: None)
        finally:
            self._queues[worker].task_done()

    def idle(self) -> bool:
        return all(q.unfinished_tasks == 0 for q in self._queues)

    def drain(self) -> None:
        for events in self._queues:
            events.join()

    def close(self) -> None:
        pass
