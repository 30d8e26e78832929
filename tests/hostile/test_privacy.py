"""Private chats stay private: build failures, password changes, sessions, headers.

Each test sends what a stranger (or a former friend of the owner) would send and
checks the safe answer, on real apps over a real registry, model server and Redis.
"""

from __future__ import annotations

import io
import time
import zipfile

import pytest

from mimical.appkit.dialog_app import get_engine
from mimical.chatbot import Phase
from mimical.dialog.engine import (
    ENDED,
    GREETING,
    NOT_READY,
    NOW_CHATTING,
    PASSWORD_PROMPT,
    SHOW_ALL_HINT,
    WRONG_PASSWORD,
)
from mimical.web.chat import VISITOR_COOKIE
from tests.fixtures.chat import PASSWORD, PRIVATE

GENERIC = "build failed: the export could not be used (the owner token shows why)"
# Three WhatsApp chats with nobody in all of them: "who is me" is ambiguous, and the
# importer's reason lists the most frequent senders: the owner's friends.
FRIENDS = ("Bob Private-Friend", "Cat Secret-Pal")
AMBIGUOUS_CHATS = {
    "Chat with Bob.txt": [f"12/01/2023, 10:00 - {FRIENDS[0]}: hi", "12/01/2023, 10:01 - Ann: yo"],
    "Chat with Cat.txt": [f"12/01/2023, 10:00 - {FRIENDS[1]}: hi", "12/01/2023, 10:01 - Dan: yo"],
    "Chat with Eve.txt": [f"12/01/2023, 11:00 - {FRIENDS[1]}: hi", "12/01/2023, 11:01 - Eve: yo"],
}


def say(client, text, **kwargs):
    return client.post("/chat/messages", json={"text": text}, **kwargs)


def recreate(registry, name: str, password: str) -> str:
    """Delete `name` and create it again, servable, with `password`; its owner token."""
    registry.delete(name)
    _, token = registry.create(name, public=False, password=password)
    registry.update_status(name, phase=Phase.READY, model_version=1, add_version=1)
    return token


def unlocked_chat(app, password: str = PASSWORD):
    client = app.test_client()
    assert say(client, PRIVATE).get_json()["replies"] == [PASSWORD_PROMPT]
    assert say(client, password).get_json()["state"] == "chatting"
    assert say(client, "hello").get_json()["state"] == "chatting"
    return client


# ---------------------------------------------------------------- build failures


def test_a_failed_build_names_no_friend_but_to_its_owner(make_chat_app, personas, caplog):
    export = io.BytesIO()
    with zipfile.ZipFile(export, "w") as archive:
        for name, lines in AMBIGUOUS_CHATS.items():
            archive.writestr(name, "\n".join(lines) + "\n")
    export.seek(0)
    client = make_chat_app(components=("api",)).test_client()
    created = client.post(
        "/api/chatbots",
        data={"name": "pals", "public": "true", "export": (export, "export.zip")},
        content_type="multipart/form-data",
    )
    assert created.status_code == 202, created.get_json()
    deadline = time.monotonic() + 120
    while personas.get("pals").phase != Phase.FAILED and time.monotonic() < deadline:
        time.sleep(0.2)

    public = client.get("/api/chatbots/pals").get_json()
    assert public["phase"] == "Failed" and public["message"] == GENERIC
    assert personas.get("pals").message == GENERIC  # what status and logs are made of
    owner = {"Authorization": f"Bearer {created.get_json()['owner_token']}"}
    detail = client.get("/api/chatbots/pals", headers=owner).get_json()["message"]
    assert all(friend in detail for friend in FRIENDS)
    assert not any(friend in caplog.text for friend in FRIENDS)
    wrong = client.get("/api/chatbots/pals", headers={"Authorization": "Bearer guessed"})
    assert wrong.status_code == 401  # a token on a public chatbot is checked too


# ---------------------------------------------------------------- sessions end


def test_a_password_change_ends_chats_opened_with_the_old_one(make_chat_app, personas):
    token = recreate(personas, PRIVATE, PASSWORD)
    app = make_chat_app()
    friend = unlocked_chat(app)
    owner = {"Authorization": f"Bearer {token}"}

    changed = app.test_client().patch(
        f"/api/chatbots/{PRIVATE}", json={"password": "brand new"}, headers=owner
    )
    assert changed.status_code == 200 and changed.get_json()["name"] == PRIVATE

    ended = say(friend, "are you there?").get_json()
    assert ended == {"replies": [ENDED.format(name=PRIVATE)], "state": "choosing"}
    assert say(friend, PRIVATE).get_json()["replies"] == [PASSWORD_PROMPT]
    assert say(friend, PASSWORD).get_json()["state"] == "password"  # the old one is wrong now
    unlocked_chat(app, "brand new")


def test_a_name_deleted_and_created_again_lets_no_old_chat_in(make_chat_app, personas):
    app = make_chat_app()
    friend = unlocked_chat(app)
    with app.app_context():  # Messenger talks to the same engine
        engine = get_engine()
        for text in ("hi", PRIVATE, PASSWORD):
            engine.handle("messenger", "psid-1", text)
        assert engine.state("messenger", "psid-1") == "chatting"

    recreate(personas, PRIVATE, PASSWORD)  # even the same password: a new persona

    ended = [ENDED.format(name="Secret Agent")]
    assert say(friend, "still me").get_json()["replies"] == ended
    with app.app_context():
        assert get_engine().handle("messenger", "psid-1", "hi") == ended


@pytest.mark.parametrize(
    ("headers", "body", "status"),
    [
        ({}, {"password": "x"}, 401),
        ({"Authorization": "Bearer not-the-token"}, {"password": "x"}, 401),
        ("owner", {"password": ""}, 422),
        ("owner", {"password": "x" * 1025}, 422),
        ("owner", {"password": "x", "public": True}, 422),
        ("owner", "password=x", 415),
    ],
)
def test_a_password_change_needs_the_owner_token_and_a_valid_password(
    make_chat_app, personas, headers, body, status
):
    token = recreate(personas, PRIVATE, PASSWORD)
    if headers == "owner":
        headers = {"Authorization": f"Bearer {token}"}
    client = make_chat_app(components=("api",)).test_client()
    if isinstance(body, dict):
        response = client.patch(f"/api/chatbots/{PRIVATE}", json=body, headers=headers)
    else:
        response = client.patch(f"/api/chatbots/{PRIVATE}", data=body, headers=headers)
    assert response.status_code == status
    assert set(response.get_json()) == {"error", "message"}
    assert personas.verify_password(PRIVATE, PASSWORD)  # unchanged


def test_a_chatbot_without_a_password_gets_none_by_patch(make_chat_app, personas):
    _, token = personas.create("open", public=True)
    client = make_chat_app(components=("api",)).test_client()
    response = client.patch(
        "/api/chatbots/open", json={"password": "x"}, headers={"Authorization": f"Bearer {token}"}
    )
    assert response.status_code == 409 and "without a password" in response.get_json()["message"]


# ---------------------------------------------------------------- enumeration


def test_the_chat_answers_a_private_name_as_it_answers_a_name_nobody_has(make_chat_app, personas):
    personas.create("hidden", public=False, password="pw")  # private and still building
    personas.update_status("hidden", phase=Phase.TRAINING, progress=0.1)
    app = make_chat_app(components=("chat",))

    def web_answers(name: str) -> list:
        client = app.test_client()
        return [say(client, text).get_json() for text in (name, "a guess", "")]

    asked = [{"replies": [PASSWORD_PROMPT], "state": "password"}]
    wrong = [{"replies": [WRONG_PASSWORD], "state": "password"}]
    for name in (PRIVATE, "hidden", "nobody-at-all"):
        assert web_answers(name) == asked + wrong + asked
    with app.app_context():  # Messenger: the same engine, without the page's greeting
        engine = get_engine()
        for name in (PRIVATE, "hidden", "nobody-at-all"):
            psid = f"psid-{name}"
            answers = [engine.handle("messenger", psid, text) for text in (name, name, "guess")]
            assert answers == [[GREETING, SHOW_ALL_HINT], [PASSWORD_PROMPT], [WRONG_PASSWORD]]
    # Only its password tells that "hidden" exists and is still building.
    client = app.test_client()
    say(client, "hidden")
    assert say(client, "pw").get_json() == {
        "replies": [NOT_READY.format(name="hidden", phase="Training")],
        "state": "choosing",
    }


def test_guesses_for_a_name_nobody_has_are_counted_and_locked_out_alike(make_chat_app):
    app = make_chat_app(components=("chat",))
    locked = "Too many wrong passwords for {name}. Please wait 15 minutes and try again."
    for name in (PRIVATE, "nobody-at-all"):
        client = app.test_client()
        say(client, name)
        answers = [say(client, f"guess {i}").get_json()["replies"] for i in range(6)]
        assert answers == [[WRONG_PASSWORD]] * 4 + [[locked.format(name=name)]] * 2


# ---------------------------------------------------------------- web cookies


def test_cookie_less_chat_requests_create_no_redis_keys(make_chat_app, chat_settings, redis_url):
    import redis

    settings = chat_settings.with_overrides(redis_url=redis_url)
    client = make_chat_app(components=("chat",), settings=settings).test_client()
    store = redis.Redis.from_url(redis_url)
    before = set(store.keys("*"))
    # Text that cannot be a name: a name (anyone's or nobody's) asks for a password,
    # which is state, bounded by Settings.chat_session_rate_limit.
    for text in ["", "%show all", "%help", "nobody here?", "%restart"] * 20:
        response = say(client, text)
        assert response.status_code == 200 and "Set-Cookie" not in response.headers
        client.delete_cookie(VISITOR_COOKIE)
    new = set(store.keys("*")) - before
    # At most the address's message counter; not one session for 100 requests.
    assert len(new) <= 1 and not any(key.startswith(b"mimical:web:") for key in new)


def test_a_planted_cookie_is_never_adopted_and_unlocking_rotates_the_id(make_chat_app):
    app = make_chat_app(components=("chat",))
    client = app.test_client()
    planted = "attacker-chosen-id-0123456789"
    client.set_cookie(VISITOR_COOKIE, planted)
    response = say(client, PRIVATE)
    issued = client.get_cookie(VISITOR_COOKIE).value
    assert response.get_json()["state"] == "password" and issued != planted
    with app.app_context():
        assert not get_engine().has_session("web", planted)

    assert say(client, PASSWORD).get_json()["replies"] == [NOW_CHATTING.format(name="Secret Agent")]
    unlocked = client.get_cookie(VISITOR_COOKIE).value
    assert unlocked != issued  # whoever saw the id before unlocking holds nothing
    with app.app_context():
        assert not get_engine().has_session("web", issued)
        assert get_engine().state("web", unlocked) == "chatting"


def test_over_https_the_cookie_is_host_only_and_secure_and_hsts_is_sent(
    make_chat_app, chat_settings
):
    app = make_chat_app(settings=chat_settings.with_overrides(trusted_proxy_hops=1))
    client = app.test_client()
    https = {"X-Forwarded-Proto": "https", "X-Forwarded-For": "198.51.100.1"}
    response = say(client, PRIVATE, headers=https)
    cookie = response.headers["Set-Cookie"]
    assert cookie.startswith("__Host-mimical_chat=") and "Secure" in cookie and "Path=/" in cookie
    assert "Domain" not in cookie
    assert response.headers["Strict-Transport-Security"] == "max-age=31536000"
    assert "Strict-Transport-Security" not in say(client, "").headers  # plain HTTP


def test_answers_carrying_owner_tokens_are_never_cached(make_chat_app, personas):
    token = recreate(personas, PRIVATE, PASSWORD)
    client = make_chat_app(components=("api",)).test_client()
    owner = {"Authorization": f"Bearer {token}"}
    for response in (
        client.get(f"/api/chatbots/{PRIVATE}", headers=owner),
        client.post("/api/chatbots", data={}, content_type="multipart/form-data"),
        client.get("/api/chatbots"),
    ):
        assert response.headers["Cache-Control"] == "no-store"


# ---------------------------------------------------------------- password guessing


def test_fifty_concurrent_guesses_are_all_counted_before_any_is_checked(
    make_chat_app, chat_settings, personas, redis_url
):
    from concurrent.futures import ThreadPoolExecutor

    from mimical.appkit.resources import get_password_tries

    settings = chat_settings.with_overrides(redis_url=redis_url, trusted_proxy_hops=1)
    app = make_chat_app(
        components=("api",),
        settings=settings,
        password_rate_limit="5 per 15 minutes",
        password_persona_rate_limit="1000 per hour",
    )
    name = f"burst-{time.time_ns()}"  # its own counters in the shared Redis
    personas.create(name, public=False, password="right one")

    def guess(index: int, address: str | None = None) -> int:
        headers = {
            "X-Chatbot-Password": f"wrong {index}",
            "X-Forwarded-For": address or f"203.0.113.{index}",
        }
        return app.test_client().get(f"/api/chatbots/{name}", headers=headers).status_code

    with ThreadPoolExecutor(50) as pool:
        from_many = list(pool.map(guess, range(50)))
        from_one = list(pool.map(lambda i: guess(i, "198.51.100.9"), range(50)))
    assert from_many == [401] * 50
    # One address: exactly its five tries reach the argon2 check, whatever the timing.
    assert sorted(from_one) == [401] * 5 + [429] * 45
    with app.app_context():
        tries = get_password_tries()
        persona_window = next(item for item, scope in tries._windows if scope == "persona")
        _, left = tries._limiter.get_window_stats(persona_window, "password-all", name)
    assert 1000 - left == 55  # every guess that was checked was counted

    # The right password is refunded: it uses up nothing.
    right = {"X-Chatbot-Password": "right one", "X-Forwarded-For": "192.0.2.1"}
    client = app.test_client()
    assert [client.get(f"/api/chatbots/{name}", headers=right).status_code for _ in range(8)] == [
        200
    ] * 8


def test_one_address_cannot_start_sessions_without_end(make_chat_app):
    app = make_chat_app(components=("chat",), chat_session_rate_limit="3 per hour")
    started = [say(app.test_client(), PRIVATE).status_code for _ in range(4)]
    assert started == [200, 200, 200, 429]
    with app.app_context():
        assert len(get_engine().sessions) == 3  # the refused one was dropped again
