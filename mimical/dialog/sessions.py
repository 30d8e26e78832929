"""Short-lived dialog state: sessions, message dedupe and password-try limits.

With `REDIS_URL` set everything lives in Redis, so any number of webhook or web
processes share it and a restart loses nothing; without it, in this process's
memory (embedded mode, terminal chat). Sessions expire after `SESSION_TTL_SECONDS`
of silence, which is also how abandoned password prompts are forgotten.

Wrong passwords are counted per (user, persona) in a moving window by the
`limits` library (the engine behind flask-limiter), in the same Redis or memory.

Usage:

    store = open_session_store(settings)
    store.save("web:abc", {"state": "choosing"})
    store.claim("mid:m_123", ttl=86400)  # True the first time only
"""

from __future__ import annotations

import json
import threading
import time
from typing import Protocol

from mimical.config import Settings
from mimical.errors import UnavailableError

SESSION_TTL_SECONDS = 24 * 3600
KEY_PREFIX = "mimical:"


class SessionStore(Protocol):
    def load(self, key: str) -> dict | None: ...

    def save(self, key: str, session: dict, ttl: int = SESSION_TTL_SECONDS) -> None: ...

    def delete(self, key: str) -> None: ...

    def claim(self, key: str, ttl: int) -> bool:
        """True if nobody claimed `key` in the last `ttl` seconds (then it is ours)."""
        ...


class MemorySessionStore:
    """A dict with expiry times; for one process."""

    def __init__(self):
        self._items: dict[str, tuple[float, object]] = {}
        self._lock = threading.Lock()

    def _get(self, key: str):
        entry = self._items.get(key)
        if entry is None:
            return None
        expires_at, value = entry
        if expires_at < time.monotonic():
            del self._items[key]
            return None
        return value

    def _purge_expired(self) -> None:
        now = time.monotonic()
        for key in [k for k, (expires_at, _) in self._items.items() if expires_at < now]:
            del self._items[key]

    def load(self, key: str) -> dict | None:
        with self._lock:
            value = self._get(key)
        return json.loads(value) if value is not None else None

    def save(self, key: str, session: dict, ttl: int = SESSION_TTL_SECONDS) -> None:
        # Stored as JSON so callers never share mutable state with the store.
        with self._lock:
            if len(self._items) % 1024 == 0:
                self._purge_expired()
            self._items[key] = (time.monotonic() + ttl, json.dumps(session))

    def delete(self, key: str) -> None:
        with self._lock:
            self._items.pop(key, None)

    def claim(self, key: str, ttl: int) -> bool:
        with self._lock:
            if self._get(key) is not None:
                return False
            self._items[key] = (time.monotonic() + ttl, "1")
            return True


class RedisSessionStore:
    """JSON values with a TTL in Redis; `claim` is an atomic SET NX EX."""

    def __init__(self, redis_url: str):
        import redis

        self._errors = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)
        self.redis = redis.Redis.from_url(
            redis_url, socket_timeout=5, socket_connect_timeout=5, health_check_interval=30
        )

    def _do(self, function, *args, **kwargs):
        try:
            return function(*args, **kwargs)
        except self._errors as error:
            raise UnavailableError(f"session store (Redis) is unreachable: {error}") from None

    def load(self, key: str) -> dict | None:
        raw = self._do(self.redis.get, KEY_PREFIX + key)
        return json.loads(raw) if raw is not None else None

    def save(self, key: str, session: dict, ttl: int = SESSION_TTL_SECONDS) -> None:
        self._do(self.redis.set, KEY_PREFIX + key, json.dumps(session), ex=ttl)

    def delete(self, key: str) -> None:
        self._do(self.redis.delete, KEY_PREFIX + key)

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
    """At most `limit` wrong passwords per (user, persona) per `per` moving window."""

    def __init__(self, settings: Settings, limit: int = 5, per: str = "15 minutes"):
        import limits

        self._limiter = moving_window_limiter(settings)
        self._item = limits.parse(f"{limit} per {per}")

    def seconds_locked(self, user: str, persona: str) -> int:
        """0 if `user` may try a password for `persona` now, else seconds until they may."""
        if self._limiter.test(self._item, "password", user, persona):
            return 0
        reset_time = self._limiter.get_window_stats(self._item, "password", user, persona)[0]
        return max(1, int(reset_time - time.time()) + 1)

    def record_failure(self, user: str, persona: str) -> None:
        self._limiter.hit(self._item, "password", user, persona)
