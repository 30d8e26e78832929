"""Transcripts of every dialog branch, against the real registry and model server."""

from __future__ import annotations

import uuid

import pytest

from mimical.config import Settings
from mimical.dialog.engine import (
    GREETING,
    HELP,
    NOT_AVAILABLE,
    PASSWORD_PROMPT,
    SHOW_ALL_HINT,
    WRONG_PASSWORD,
    DialogEngine,
)
from mimical.dialog.sessions import MemorySessionStore, PasswordTries, RedisSessionStore
from mimical.errors import InputError
from mimical.serving.client import ModelClient
from mimical.testing.servers import free_port
from tests.fixtures.chat import BUILDING, PASSWORD, PRIVATE, PUBLIC

NOW_CHATTING_TINY = 'You are now chatting with Tiny. Type "%restart" to pick a new persona.'


@pytest.fixture(params=["memory", "redis"])
def engine(request, personas, served_models):
    if request.param == "redis":
        settings = Settings(redis_url=request.getfixturevalue("redis_url"))
        sessions = RedisSessionStore(settings.redis_url)
    else:
        settings, sessions = Settings(), MemorySessionStore()
    return DialogEngine(personas, served_models.client, sessions, PasswordTries(settings))


def transcript(engine, *lines: str, user: str | None = None) -> list[list[str]]:
    """Send each line as one user and return the replies to each."""
    user = user or uuid.uuid4().hex
    return [engine.handle("test", user, line) for line in lines]


def test_greets_a_new_user(engine):
    assert transcript(engine, "hi") == [[GREETING, SHOW_ALL_HINT]]
    assert transcript(engine, "") == [[GREETING, SHOW_ALL_HINT]]


def test_show_all_lists_public_personas_only(engine):
    [[listing]] = transcript(engine, "%show all")
    assert listing.splitlines() == [
        "Public personas:",
        f"- {BUILDING} - not ready yet",
        f"- {PUBLIC} (Tiny)",
    ]
    assert PRIVATE not in listing


def test_text_that_cannot_be_a_name_suggests_the_closest_public_names(engine):
    replies = transcript(engine, "hi", "Tinny!", "who are you?", "secrit!")
    assert replies[1] == ['I don\'t know anyone called "Tinny!". Did you mean "tiny"?']
    assert replies[2] == [f'I don\'t know anyone called "who are you?". {SHOW_ALL_HINT}']
    # Private names are never suggested.
    assert PRIVATE not in replies[3][0]


def test_a_name_no_public_persona_has_asks_for_a_password_and_suggests_public_ones(engine):
    replies = transcript(engine, "hi", "tinny", "tiny")
    assert replies[1] == [
        PASSWORD_PROMPT,
        'Did you mean "tiny"? Type "%restart" first to pick another persona.',
    ]
    assert replies[2] == [WRONG_PASSWORD]  # still asking for tinny's password
    assert transcript(engine, "hi", "zzzzzz")[1] == [PASSWORD_PROMPT]


def test_public_persona_chats_with_the_model(engine):
    replies = transcript(engine, "hi", "Tiny", "hey, how was your weekend?", "nice!")
    assert replies[1] == [NOW_CHATTING_TINY]
    for reply in replies[2:]:
        assert len(reply) == 1 and reply[0].strip()
        assert reply[0] not in (GREETING, PASSWORD_PROMPT)


def test_first_message_naming_a_persona_starts_the_chat(engine):
    assert transcript(engine, PUBLIC) == [[NOW_CHATTING_TINY]]


def test_chat_keeps_the_last_turns_as_context(engine):
    user = uuid.uuid4().hex
    transcript(engine, PUBLIC, *(f"message {i}" for i in range(6)), user=user)
    history = engine.sessions.load(f"test:{user}")["history"]
    assert len(history) == 2 * engine.context_turns
    assert "message 5" in history


class RecordingModels:
    """The real model client, keeping each context it is asked to answer."""

    def __init__(self, models):
        self.models, self.contexts = models, []

    def reply(self, name, context, **options):
        self.contexts.append(context)
        return self.models.reply(name, context, **options)

    def __getattr__(self, attribute):
        return getattr(self.models, attribute)


def test_the_model_reads_the_chat_with_each_turn_marked_as_the_friends_or_its_own(engine):
    engine.models = models = RecordingModels(engine.models)
    user = uuid.uuid4().hex
    transcript(engine, PUBLIC, "fir\x1dst", "second", "third", user=user)
    history = engine.sessions.load(f"test:{user}")["history"]
    # The friend's turns after OTHER_TURN, the persona's replies after OWN_TURN; markers
    # typed by the friend are not taken as turns.
    assert models.contexts[0] == "\x1efir st"
    assert models.contexts[1] == f"\x1efir st\x1d{history[1]}\x1esecond"
    assert models.contexts[2] == f"\x1esecond\x1d{history[3]}\x1ethird"


def test_the_friends_personal_data_is_scrubbed_before_the_model_or_the_session_sees_it(engine):
    """Web chat, Messenger and the terminal all pass through here: the model reads a
    placeholder, as it was trained on, and the stored session holds no address."""
    engine.models = models = RecordingModels(engine.models)
    user = uuid.uuid4().hex
    transcript(engine, PUBLIC, "mail me at sam.lee@example.com or +44 20 7946 0958", user=user)
    assert models.contexts == ["\x1email me at <EMAIL> or <PHONE>"]
    history = engine.sessions.load(f"test:{user}")["history"]
    assert "example.com" not in history[0] and "7946" not in history[0]


def test_private_persona_asks_for_the_password(engine):
    replies = transcript(engine, "hi", PRIVATE, "wrong", PASSWORD, "hello")
    assert replies[1] == [PASSWORD_PROMPT]
    assert replies[2] == [WRONG_PASSWORD]
    assert replies[3] == [
        'You are now chatting with Secret Agent. Type "%restart" to pick a new persona.'
    ]
    assert replies[4][0].strip()


def test_five_wrong_passwords_lock_that_user_and_persona(engine):
    user = uuid.uuid4().hex
    replies = transcript(engine, "hi", PRIVATE, *["nope"] * 5, PASSWORD, user=user)
    assert replies[2:6] == [[WRONG_PASSWORD]] * 4
    locked = f"Too many wrong passwords for {PRIVATE}. Please wait 15 minutes and try again."
    assert replies[6] == [locked]
    # Even the right password waits now; another user is not affected.
    assert replies[7] == [locked]
    assert transcript(engine, "hi", PRIVATE, PASSWORD)[2][0].startswith("You are now chatting")


def test_restart_goes_back_to_the_start_from_any_state(engine):
    replies = transcript(engine, PRIVATE, "%restart", PUBLIC, "hello", " %RESTART ", "%show all")
    assert replies[1] == [GREETING, SHOW_ALL_HINT]
    assert replies[4] == [GREETING, SHOW_ALL_HINT]
    assert replies[5][0].startswith("Public personas:")


def test_help_explains_the_commands_and_keeps_the_state(engine):
    user = uuid.uuid4().hex
    replies = transcript(engine, PUBLIC, "%help", user=user)
    assert replies[1] == [HELP]
    assert engine.state("test", user) == "chatting"


# The lines that bring a new user to each state.
TO_STATE = {"choosing": ["hi"], "password": ["hi", PRIVATE], "chatting": [PUBLIC]}


@pytest.mark.parametrize("state", TO_STATE)
def test_commands_work_in_every_state(engine, state):
    """Commands are never chat text for the persona, nor a password try."""
    user = uuid.uuid4().hex
    transcript(engine, *TO_STATE[state], user=user)
    assert engine.state("test", user) == state
    [listing] = engine.handle("test", user, " %Show  ALL ")
    assert listing.startswith("Public personas:") and PRIVATE not in listing
    assert engine.state("test", user) == state
    assert engine.handle("test", user, "%help") == [HELP]
    assert engine.state("test", user) == state
    assert engine.handle("test", user, "%restart") == [GREETING, SHOW_ALL_HINT]
    assert engine.state("test", user) == "choosing"


def test_show_all_while_chatting_keeps_the_chat(engine):
    replies = transcript(engine, PUBLIC, "%show all", "hello")
    assert replies[1][0].startswith("Public personas:")
    assert len(replies[2]) == 1 and replies[2][0] != NOT_AVAILABLE.format(name="Tiny")


def test_show_all_is_no_password_try(engine):
    tries = ["%show all"] * 6
    replies = transcript(engine, "hi", PRIVATE, *tries, PASSWORD)
    assert all(reply[0].startswith("Public personas:") for reply in replies[2:-1])
    assert replies[-1] == [
        'You are now chatting with Secret Agent. Type "%restart" to pick a new persona.'
    ]


def test_empty_text_says_where_the_user_is(engine):
    replies = transcript(engine, "hi", PRIVATE, "", "%restart", PUBLIC, "", "%restart", "")
    assert replies[2] == [PASSWORD_PROMPT]
    assert replies[5] == [NOW_CHATTING_TINY]
    assert replies[7] == [GREETING, SHOW_ALL_HINT]


def test_unknown_commands_get_the_help(engine):
    assert transcript(engine, "hi", "%shw all")[1] == ['There is no command "%shw all".', HELP]


def test_persona_still_building_is_not_ready(engine):
    assert transcript(engine, "hi", BUILDING) == [
        [GREETING, SHOW_ALL_HINT],
        [f"{BUILDING} is still being built (Training). Please try again later."],
    ]


def test_model_server_down_gets_a_friendly_message(personas):
    client = ModelClient(f"127.0.0.1:{free_port()}")
    engine = DialogEngine(
        personas, client, MemorySessionStore(), PasswordTries(Settings()), reply_timeout=2.0
    )
    replies = transcript(engine, PUBLIC, "hello?")
    assert replies[1] == [NOT_AVAILABLE.format(name="Tiny")]
    client.close()


def test_slow_model_gets_a_friendly_message(personas, served_models):
    engine = DialogEngine(
        personas,
        served_models.client,
        MemorySessionStore(),
        PasswordTries(Settings()),
        reply_timeout=0.0001,
    )
    assert transcript(engine, PUBLIC, "hello?")[1] == [NOT_AVAILABLE.format(name="Tiny")]


def test_overlong_message_is_refused(engine):
    with pytest.raises(InputError, match="longer than 2000"):
        engine.handle("test", "someone", "x" * 2001)


def test_redis_sessions_survive_a_restart_and_expire(personas, served_models, redis_url):
    def new_engine():
        return DialogEngine(
            personas,
            served_models.client,
            RedisSessionStore(redis_url),
            PasswordTries(Settings(redis_url=redis_url)),
        )

    user = uuid.uuid4().hex
    transcript(new_engine(), PUBLIC, user=user)
    engine = new_engine()
    assert engine.state("test", user) == "chatting"
    ttl = engine.sessions.redis.ttl(f"mimical:test:{user}")
    assert 0 < ttl <= 24 * 3600
