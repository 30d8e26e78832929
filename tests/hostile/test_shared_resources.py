"""Nothing an anonymous client sends can exhaust what every user shares: Redis's memory
and keys, the rate-limit counters, the error path.

Each test sends what an attacker would (names of kilobytes, wrong tokens under a new
name each time, IPv6 addresses from one /64, emoji-stuffed sessions, a full or stopped
Redis, a lone surrogate) to a real app over a private redis-server, and checks the
bounded answer: a 4xx JSON, a 503 JSON, no new keys.
"""

from __future__ import annotations

import io

import orjson
import pytest
import redis

from mimical.app import create_app
from mimical.appkit.resources import close_resources, get_registry
from mimical.config import Settings
from mimical.dialog.sessions import SESSION_MAX_BYTES, MemorySessionStore, RedisSessionStore
from mimical.errors import TooLargeError
from mimical.testing.servers import start_redis, stop_server

# The shipped limit on wrong passwords and owner tokens per client.
WRONG_TOKEN_LIMIT = 5


@pytest.fixture
def private_redis(tmp_path):
    """A redis-server of this test's own: tests fill it up or stop it."""
    process, url = start_redis(tmp_path)
    yield process, url
    stop_server(process)


@pytest.fixture
def make_api(tmp_path, private_redis):
    apps = []

    def make(components=("api",), **overrides):
        settings = Settings(home=tmp_path / "home", redis_url=private_redis[1])
        app = create_app(
            settings.with_overrides(**overrides),
            components=components,
            test_config={"TESTING": True},
        )
        apps.append(app)
        return app

    yield make
    for app in apps:
        close_resources(app)


def keys(url: str) -> set[bytes]:
    return set(redis.Redis.from_url(url).keys("*"))


def wrong_token(client, name: str, address: str = "203.0.113.7"):
    return client.get(
        f"/api/chatbots/{name}",
        headers={"Authorization": "Bearer not-the-token"},
        environ_base={"REMOTE_ADDR": address},
    )


def test_an_impossible_name_is_refused_before_any_lookup_or_count(make_api, private_redis):
    """The probe that filled Redis: 3,900-character names with a wrong token."""
    client = make_api().test_client()
    before = keys(private_redis[1])
    for n in range(200):
        long_name = f"{n:04x}" * 975
        for response in (
            wrong_token(client, long_name),
            client.get(f"/api/chatbots/{long_name}", headers={"X-Chatbot-Password": "x"}),
            client.get(f"/getPublicModel/{long_name}"),
            client.delete(f"/api/chatbots/{long_name}"),
        ):
            assert response.status_code == 422, response.get_data(as_text=True)[:200]
            assert response.get_json()["error"] == "invalid_input"
    for name in ("UPPER", "-dash", "a_b", "a" * 41, "..", "%00"):
        assert wrong_token(client, name).status_code in (404, 422)
    assert keys(private_redis[1]) == before


def test_wrong_owner_tokens_count_per_address_whatever_the_names(make_api, private_redis):
    client = make_api(password_rate_limit=f"{WRONG_TOKEN_LIMIT} per 15 minutes").test_client()
    before = keys(private_redis[1])
    for n in range(WRONG_TOKEN_LIMIT):
        assert wrong_token(client, f"guess-{n}").status_code == 401
    # A new name gives no fresh count: one client, one budget.
    locked = wrong_token(client, "yet-another-name")
    assert locked.status_code == 429 and locked.get_json()["error"] == "too_many_requests"
    assert len(keys(private_redis[1]) - before) == 1  # the address's one counter
    assert wrong_token(client, "guess-0", address="198.51.100.9").status_code == 401


def test_an_ipv6_client_counts_by_its_64(make_api):
    client = make_api(password_rate_limit=f"{WRONG_TOKEN_LIMIT} per 15 minutes").test_client()
    for host in range(1, WRONG_TOKEN_LIMIT + 1):
        answer = wrong_token(client, "alice", address=f"2001:db8:aa:bb::{host:x}")
        assert answer.status_code == 401
    # Another address of the same /64 (any of its 2^64) is the same client...
    assert wrong_token(client, "alice", address="2001:db8:aa:bb:ffff::1").status_code == 429
    # ...another /64 is another client.
    assert wrong_token(client, "alice", address="2001:db8:aa:bc::1").status_code == 401


def test_sessions_are_stored_as_utf8_and_capped(private_redis):
    """A web chat session of emoji took 82 KB after 4 messages (ASCII escapes)."""
    store = RedisSessionStore(private_redis[1])
    history = ["😀" * 2000, "ok", "🎉" * 2000, "sure", "🙂" * 2000, "bye"]
    session = {"state": "chatting", "persona": "alice", "history": history}
    store.save("web:emoji", session)
    stored = redis.Redis.from_url(private_redis[1]).strlen("mimical:web:emoji")
    assert stored == len(orjson.dumps(session)) < 26 * 1024  # 4 bytes an emoji, not 12
    assert store.load("web:emoji") == session

    bloated = {**session, "history": ["😀" * (SESSION_MAX_BYTES // 4)]}
    with pytest.raises(TooLargeError):
        store.save("web:bloated", bloated, max_bytes=SESSION_MAX_BYTES)
    assert store.load("web:bloated") is None


def test_only_what_a_person_grows_is_capped():
    """The cap is the dialog's (`DialogEngine` saves with it); what only we write, like a
    Messenger reply listing a thousand public personas, is stored whole."""
    store = MemorySessionStore()
    pieces = {"pieces": ["- persona-with-a-long-name (Display Name)\n" * 45] * 40, "next": 0}
    store.save("messenger:reply:psid:mid", pieces)
    assert store.load("messenger:reply:psid:mid") == pieces
    with pytest.raises(TooLargeError):
        store.save("web:visitor", pieces, max_bytes=SESSION_MAX_BYTES)


def test_a_full_or_stopped_redis_is_a_503_never_a_500(make_api, private_redis):
    process, url = private_redis
    client = make_api(password_rate_limit="1000 per minute").test_client()
    assert wrong_token(client, "alice").status_code == 401
    # Full: maxmemory with noeviction (as the chart runs it) refuses every write.
    redis.Redis.from_url(url).config_set("maxmemory", 1)
    for response in (wrong_token(client, "alice"), wrong_token(client, "bob")):
        assert response.status_code == 503, response.get_data(as_text=True)
        assert response.get_json()["error"] == "unavailable"
    stop_server(process)
    for response in (
        wrong_token(client, "alice"),
        client.get("/api/chatbots/alice", headers={"X-Chatbot-Password": "guess"}),
    ):
        assert response.status_code == 503, response.get_data(as_text=True)
        assert "Traceback" not in response.get_data(as_text=True)


def test_creating_a_chatbot_answers_a_private_name_as_a_free_one(make_api):
    app = make_api(build_rate_limit="1000/minute", upload_rate_limit="1000/minute")
    with app.app_context():
        get_registry().create("hidden", public=False, password="pw-hidden")
    client = app.test_client()

    def create(name: str, export: tuple | None):
        data = {"name": name, "public": "false", "password": "a-password"}
        if export is not None:
            data["export"] = export
        return client.post("/api/chatbots", data=data, content_type="multipart/form-data")

    def not_an_export():
        return (io.BytesIO(b"\x00\x01 not a chat export"), "export.zip")

    for export in (None, not_an_export):
        taken = create("hidden", export() if export else None)
        free = create("nobody-has-this", export() if export else None)
        assert (taken.status_code, taken.get_json()["error"]) == (
            free.status_code,
            free.get_json()["error"],
        )
        assert taken.status_code == 422


def test_a_lone_surrogate_is_a_4xx_on_every_json_route(make_api):
    client = make_api(components=("api", "chat")).test_client()
    body = b'{"text": "\\ud800 hi"}'
    for path in ("/chat/messages", "/getModel"):
        response = client.post(path, data=body, content_type="application/json")
        assert 400 <= response.status_code < 500, (path, response.status_code)
        assert response.get_json()["error"]
