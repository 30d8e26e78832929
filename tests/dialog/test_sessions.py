"""Session stores stay bounded: an LRU cap in memory, a TTL on every key in Redis."""

from __future__ import annotations

import uuid

import redis

from mimical.dialog.sessions import SESSION_TTL_SECONDS, MemorySessionStore, RedisSessionStore


def test_memory_sessions_evict_the_least_recently_used_past_the_cap():
    store = MemorySessionStore(max_items=3)
    for name in ("a", "b", "c"):
        store.save(name, {"state": name})
    assert store.load("a") == {"state": "a"}  # used: now the most recent
    store.save("d", {"state": "d"})
    store.save("e", {"state": "e"})
    assert len(store) == 3
    assert store.load("b") is None and store.load("c") is None
    assert [store.load(name)["state"] for name in ("a", "d", "e")] == ["a", "d", "e"]


def test_a_flood_of_new_sessions_stays_within_the_cap():
    store = MemorySessionStore(max_items=100)
    for _ in range(5000):
        store.save(uuid.uuid4().hex, {"state": "choosing", "history": ["x" * 100]})
    assert len(store) == 100


def test_redis_sessions_expire(redis_url):
    store = RedisSessionStore(redis_url)
    key = f"ttl-{uuid.uuid4().hex}"
    store.save(key, {"state": "choosing"})
    ttl = redis.Redis.from_url(redis_url).ttl(f"mimical:{key}")
    assert 0 < ttl <= SESSION_TTL_SECONDS
