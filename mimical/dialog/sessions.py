"""Short-lived dialog state: sessions, message dedupe and password-try limits.

With `REDIS_URL` set everything lives in Redis, so any number of webhook or web
processes share it and a restart loses nothing; without it, in this process's
memory (embedded mode, terminal chat). Sessions expire after `SESSION_TTL_SECONDS`
of silence, which is also how abandoned password prompts are forgotten; Redis
drops them itself (every key has that TTL), memory keeps at most
`MEMORY_SESSIONS_MAX` and forgets the least recently used first, so a client
minting sessions cannot grow the process without bound.

Wrong passwords are counted per (client, persona) and per persona in moving
windows by the `limits` library (the engine behind flask-limiter), in the same
Redis or memory; every channel (web chat, Messenger, API) shares the counts.

Usage:

    store = open_session_store(settings)
    store.save("web:abc", {"state": "choosing"})
    store.claim("mid:m_123", ttl=86400)  # True the first time only
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from typing import Protocol

import orjson

from mimical.config import Settings
from mimical.errors import TooLargeError, UnavailableError

SESSION_TTL_SECONDS = 24 * 3600
# A chat's session holds its last turns (`DialogEngine`: 3 messages of at most 2,000
# characters and 3 replies, about 26 KB in UTF-8 at 4 bytes a character). The engine
# saves it with this cap (`save(..., max_bytes=)`): past it the save is refused
# (`TooLargeError`, 413) rather than stored, so no visitor can grow the shared Redis.
# Values only we write (a Messenger reply's pieces, away windows) have no cap.
SESSION_MAX_BYTES = 32 * 1024
# ~7 KB each in a typical chat (`SESSION_MAX_BYTES` at most): ~70 MB for one process.
MEMORY_SESSIONS_MAX = 10_000
KEY_PREFIX = "mimical:"


def encode_session(session: dict, max_bytes: int | None = None) -> bytes:
    """A session as stored: UTF-8 JSON (an emoji takes 4 bytes, not a 12-byte escape),
    refused past `max_bytes` when one is given."""
    encoded = orjson.dumps(session)
    if max_bytes is not None and len(encoded) > max_bytes:
        raise TooLargeError(
            f"this conversation's state would take {len(encoded)} bytes; "
            f"the limit is {max_bytes}: send shorter messages"
        )
    return encoded


class SessionStore(Protocol):
    def load(self, key: str) -> dict | None: ...

    def save(
        self,
        key: str,
        session: dict,
        ttl: int = SESSION_TTL_SECONDS,
        max_bytes: int | None = None,
    ) -> None:
        """Store `session` under `key` for `ttl` seconds (`TooLargeError` past `max_bytes`)."""
        ...

    def delete(self, key: str) -> None: ...

    def delete_prefix(self, prefix: str) -> None:
        """Delete every key starting with `prefix` (a user's data, on their request)."""
        ...

    def claim(self, key: str, ttl: int) -> bool:
        """True if nobody claimed `key` in the last `ttl` seconds (then it is ours)."""
        ...


class MemorySessionStore:
    """A least-recently-used dict with expiry times and at most `max_items`; one process."""

    def __init__(self, max_items: int = MEMORY_SESSIONS_MAX):
        self._items: OrderedDict[str, tuple[float, object]] = OrderedDict()
        self._max_items = max_items
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._items)

    def _get(self, key: str):
        entry = self._items.get(key)
        if entry is None:
            return None
        expires_at, value = entry
        if expires_at < time.monotonic():
            del self._items[key]
            return None
        self._items.move_to_end(key)
        return value

    def _put(self, key: str, ttl: int, value: object) -> None:
        self._items[key] = (time.monotonic() + ttl, value)
        self._items.move_to_end(key)
        while len(self._items) > self._max_items:
            self._items.popitem(last=False)

    def _purge_expired(self) -> None:
        now = time.monotonic()
        for key in [k for k, (expires_at, _) in self._items.items() if expires_at < now]:
            del self._items[key]

    def load(self, key: str) -> dict | None:
        with self._lock:
            value = self._get(key)
        return orjson.loads(value) if value is not None else None

    def save(
        self,
        key: str,
        session: dict,
        ttl: int = SESSION_TTL_SECONDS,
        max_bytes: int | None = None,
    ) -> None:
        # Stored encoded so callers never share mutable state with the store.
        encoded = encode_session(session, max_bytes)
        with self._lock:
            if len(self._items) % 1024 == 0:
                self._purge_expired()
            self._put(key, ttl, encoded)

    def delete(self, key: str) -> None:
        with self._lock:
            self._items.pop(key, None)

    def delete_prefix(self, prefix: str) -> None:
        with self._lock:
            for key in [k for k in self._items if k.startswith(prefix)]:
                del self._items[key]

    def claim(self, key: str, ttl: int) -> bool:
        with self._lock:
            if self._get(key) is not None:
                return False
            self._put(key, ttl, "1")
            return True


class RedisSessionStore:
    """JSON values with a TTL in Redis; `claim` is an atomic SET NX EX."""

    def __init__(self, redis_url: str):
        import redis

        # Down, slow, or refusing writes (full: `maxmemory` with `noeviction`): all one
        # "unavailable" to the caller (503), never a crash.
        self._errors = redis.exceptions.RedisError
        self.redis = redis.Redis.from_url(
            redis_url, socket_timeout=5, socket_connect_timeout=5, health_check_interval=30
        )

    def _do(self, function, *args, **kwargs):
        try:
            return function(*args, **kwargs)
        except self._errors as error:
            raise UnavailableError(f"session store (Redis) is unavailable: {error}") from None

    def load(self, key: str) -> dict | None:
        raw = self._do(self.redis.get, KEY_PREFIX + key)
        return orjson.loads(raw) if raw is not None else None

    def save(
        self,
        key: str,
        session: dict,
        ttl: int = SESSION_TTL_SECONDS,
        max_bytes: int | None = None,
    ) -> None:
        encoded = encode_session(session, max_bytes)
        self._do(self.redis.set, KEY_PREFIX + key, encoded, ex=ttl)

    def delete(self, key: str) -> None:
        self._do(self.redis.delete, KEY_PREFIX + key)

    def delete_prefix(self, prefix: str) -> None:
        # SCAN walks the keyspace without blocking Redis; glob characters are escaped.
        pattern = "".join("\\" + c if c in "*?[]\\" else c for c in KEY_PREFIX + prefix) + "*"
        keys = self._do(lambda: list(self.redis.scan_iter(match=pattern, count=1000)))
        if keys:
            self._do(self.redis.delete, *keys)

    def claim(self, key: str, ttl: int) -> bool:
        return bool(self._do(self.redis.set, KEY_PREFIX + key, "1", nx=True, ex=ttl))


def open_session_store(settings: Settings) -> SessionStore:
    return RedisSessionStore(settings.redis_url) if settings.redis_url else MemorySessionStore()


def moving_window_limiter(settings: Settings):
    """A `limits` moving-window rate limiter counting in Redis, or in memory without it."""
    from limits.storage import storage_from_string
    from limits.strategies import MovingWindowRateLimiter

    return MovingWindowRateLimiter(storage_from_string(settings.redis_url or "memory://"))


class PasswordTries:
    """Wrong passwords per (client, persona) and per persona, in moving windows.

    The counts live in Redis when configured (every process and channel shares them),
    else in this process. A client or persona past its limit is locked out until the
    window moves on, even with the right password: a guesser must learn nothing.
    """

    def __init__(self, settings: Settings):
        """Limits from `settings.password_rate_limit` (per client and persona) and
        `password_persona_rate_limit` (per persona)."""
        import limits

        self._limiter = moving_window_limiter(settings)
        self._windows = [
            *((item, "client") for item in limits.parse_many(settings.password_rate_limit)),
            *(
                (item, "persona")
                for item in limits.parse_many(settings.password_persona_rate_limit)
            ),
        ]

    def _counters(self, client: str, persona: str):
        for item, scope in self._windows:
            keys = ("password", client, persona) if scope == "client" else ("password-all", persona)
            yield item, keys

    def seconds_locked(self, client: str, persona: str) -> int:
        """0 if `client` may try a password for `persona` now, else seconds until they may."""
        wait = 0
        for item, keys in self._counters(client, persona):
            if not self._limiter.test(item, *keys):
                reset_time = self._limiter.get_window_stats(item, *keys)[0]
                wait = max(wait, int(reset_time - time.time()) + 1, 1)
        return wait

    def attempt(self, client: str, persona: str, verify) -> tuple[bool, int]:
        """Count a try, then run `verify()`: (its result, 0), or (False, wait) if locked out.

        The try is counted before the (slow) check and given back when it succeeds, so a
        burst of concurrent guesses cannot all be checked before any is counted.
        """
        taken = []
        for item, keys in self._counters(client, persona):
            if not self._limiter.hit(item, *keys):
                self._refund(taken)
                return False, self.seconds_locked(client, persona)
            taken.append((item, keys))
        try:
            ok = bool(verify())
        except BaseException:
            self._refund(taken)
            raise
        if ok:
            self._refund(taken)
        return ok, 0

    def _refund(self, taken: list) -> None:
        """Take back the newest entry of each window (the `limits` storages keep a list)."""
        storage = self._limiter.storage
        for item, keys in taken:
            key = item.key_for(*keys)
            if hasattr(storage, "events"):  # MemoryStorage
                with storage.locks[key]:
                    events = storage.events.get(key)
                    if events:
                        events.pop(0)
            else:  # RedisStorage: LPUSH'ed timestamps
                storage.get_connection().lpop(storage.prefixed_key(key))
