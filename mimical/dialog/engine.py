"""The dialog every channel shares: pick a persona, unlock it, then chat with it.

One state machine per (channel, user), kept in a `SessionStore`:

    choosing  --name of a public persona-->          chatting
    choosing  --any other name-->                    password --right password--> chatting
    any state --"%restart"-->                        choosing (greeting again)
    any state --"%show all" or "%help"-->            the same state (the list, the help)

A chat remembers the persona's `access_stamp` and checks it on every turn: once the
persona is deleted (even if the name is taken again) or its password changes, the
chat is over and the user starts afresh (`ENDED`).

A name that is not a public persona gets the password prompt whether a private
persona has it or nobody does, and every password for it counts and costs one
argon2 check (`password_opens`): the chat never tells a stranger which private
personas exist, nor whether one is still building. Only text that cannot be a name
at all (`validate_name`) gets "I don't know anyone called ...".

The three commands work in every state, so they never reach a persona as chat
text or count as a password try; any other text starting with "%" is a command
only while choosing (a password or a chat message may start with "%").

`handle()` takes one incoming text and returns the texts to send back, so the
Messenger webhook, the web chat and the terminal only move strings around. The
words below are the product's; tests check them verbatim.

Usage:

    engine = DialogEngine(open_registry(settings), ModelClient(target),
                          open_session_store(settings), PasswordTries(settings))
    engine.handle("web", "visitor-1", "%show all")
"""

from __future__ import annotations

import difflib
import logging
import math
from typing import Protocol

from mimical.chatbot import validate_name
from mimical.corpus.schema import DEFAULT_CONTEXT_TURNS, layout_context
from mimical.corpus.scrub import Scrubber
from mimical.dialog.sessions import SESSION_MAX_BYTES, PasswordTries, SessionStore
from mimical.errors import InputError, NotFoundError, UnavailableError
from mimical.registry import password_opens

log = logging.getLogger(__name__)

GREETING = "Hi! Who would you like to talk to?"
SHOW_ALL_HINT = 'Type "%show all" to list all available public personas.'
PASSWORD_PROMPT = "This persona is password protected. Please enter a password."
WRONG_PASSWORD = 'Wrong password. Please try again, or type "%restart" to pick another persona.'
TOO_MANY_TRIES = "Too many wrong passwords for {name}. Please wait {minutes} and try again."
NOW_CHATTING = 'You are now chatting with {name}. Type "%restart" to pick a new persona.'
NOT_AVAILABLE = "{name} is not available right now, try again in a minute"
NOT_READY = "{name} is still being built ({phase}). Please try again later."
NO_PUBLIC_PERSONAS = "There are no public personas yet."
DID_YOU_MEAN = 'Did you mean {names}? Type "%restart" first to pick another persona.'
ENDED = "This chat with {name} has ended. Who would you like to talk to?"
HELP = "\n".join(
    [
        "Commands (they work at any time, also while chatting):",
        '"%show all" lists all available public personas.',
        '"%restart" ends the current chat so you can pick a new persona.',
        '"%help" shows this help.',
        "To start chatting, type the name of a persona.",
    ]
)

# Replies stay short, like chat messages; the model stops earlier at end of turn.
REPLY_MAX_CHARS = 200
REPLY_TIMEOUT_SECONDS = 10.0
MESSAGE_MAX_CHARS = 2000


class Persona(Protocol):
    name: str
    display_name: str
    public: bool
    has_password: bool
    phase: str
    access_stamp: str

    @property
    def servable(self) -> bool: ...


class PersonaDirectory(Protocol):
    """What the dialog needs from the registry (`mimical.registry.Registry` fits)."""

    def get(self, name: str) -> Persona: ...

    def list_public(self) -> list[Persona]: ...

    def verify_password(self, name: str, password: str | None) -> bool: ...


class ReplyModel(Protocol):
    """What the dialog needs from the model server (`ModelClient` fits)."""

    def reply(self, model: str, context: str, **options) -> str: ...


def _wait_words(seconds: int) -> str:
    minutes = math.ceil(seconds / 60)
    return f"{minutes} minute{'s' if minutes != 1 else ''}"


class DialogEngine:
    def __init__(
        self,
        directory: PersonaDirectory,
        models: ReplyModel,
        sessions: SessionStore,
        password_tries: PasswordTries,
        *,
        context_turns: int = DEFAULT_CONTEXT_TURNS,
        reply_timeout: float = REPLY_TIMEOUT_SECONDS,
        reply_max_chars: int = REPLY_MAX_CHARS,
    ):
        self.directory = directory
        self.models = models
        self.sessions = sessions
        self.password_tries = password_tries
        self.context_turns = context_turns
        self.reply_timeout = reply_timeout
        self.reply_max_chars = reply_max_chars
        # The friend's live messages are scrubbed as an import is (and as reply
        # suggestions are) before the model reads them or the session keeps them.
        self.scrub = Scrubber()

    @staticmethod
    def _key(channel: str, user_id: str) -> str:
        return f"{channel}:{user_id}"

    def state(self, channel: str, user_id: str) -> str:
        """`choosing`, `password` or `chatting` (what a UI may adapt to, e.g. hide input)."""
        session = self.sessions.load(self._key(channel, user_id))
        return session["state"] if session else "choosing"

    def has_session(self, channel: str, user_id: str) -> bool:
        """Whether the user has state kept for them (a message within `SESSION_TTL_SECONDS`):
        Messenger tells a newcomer first that replies are automated; the web chat accepts
        only such ids."""
        return self.sessions.load(self._key(channel, user_id)) is not None

    def forget(self, channel: str, user_id: str) -> None:
        """Drop the user's session: their next message starts afresh."""
        self.sessions.delete(self._key(channel, user_id))

    def move(self, channel: str, old_user: str, new_user: str) -> None:
        """Hand `old_user`'s session to `new_user` (a new web id after unlocking a persona)."""
        session = self.sessions.load(self._key(channel, old_user))
        if session is not None:
            self.sessions.save(self._key(channel, new_user), session)
            self.sessions.delete(self._key(channel, old_user))

    def begin_chat(self, channel: str, user_id: str, name: str) -> None:
        """Put the user in a chat with `name`, without picking it or its password: for a
        channel that speaks as one persona only (an owner's Page in away mode,
        `mimical.dialog.away`). A chat with it already going on keeps its history."""
        persona = self.directory.get(name)
        key = self._key(channel, user_id)
        session = self.sessions.load(key) or {}
        ongoing = session.get("state") == "chatting" and session.get("persona") == name
        if not (ongoing and session.get("stamp") == persona.access_stamp):
            self.sessions.save(key, self._start_chat(persona)[0])

    def handle(
        self,
        channel: str,
        user_id: str,
        text: str,
        client: str | None = None,
        *,
        greeted: bool = False,
    ) -> list[str]:
        """Answer one incoming message; an empty text from a new user just gets the greeting.

        `client` is who wrong passwords are counted against (the web chat: the visitor's
        address, which a fresh cookie does not change); by default the user. `greeted`
        says the channel showed the greeting itself (the web page asks for it first), so
        a user without a session is simply choosing: nothing is stored for them until
        they pick a persona, and anonymous requests cannot fill the store.
        """
        if len(text) > MESSAGE_MAX_CHARS:
            raise InputError(f"message longer than {MESSAGE_MAX_CHARS} characters")
        key = self._key(channel, user_id)
        text = text.strip()
        command = " ".join(text.lower().split())
        session = self.sessions.load(key)
        if command == "%restart" or (session is None and not text):
            session = {"state": "choosing"}
            replies = [GREETING, SHOW_ALL_HINT]
        elif not text:  # e.g. the web page reloaded: say where the user is
            replies = self._where(session)
        elif command == "%help":
            session = session or {"state": "choosing"}
            replies = [HELP]
        elif command == "%show all":
            session = session or {"state": "choosing"}
            replies = [self._list_public()]
        elif session is None or session["state"] == "choosing":
            session, replies = self._choose(text, command, greet=session is None and not greeted)
        elif session["state"] == "password":
            session, replies = self._unlock(client or key, session, text)
        else:
            session, replies = self._chat(session, text)
        if greeted and session == {"state": "choosing"}:
            self.sessions.delete(key)  # nothing worth keeping (and no key per request)
        else:
            # What a person sends grows this session: it is the one save with a cap.
            self.sessions.save(key, session, max_bytes=SESSION_MAX_BYTES)
        return replies

    @staticmethod
    def _where(session: dict) -> list[str]:
        if session["state"] == "password":
            return [PASSWORD_PROMPT]
        if session["state"] == "chatting":
            return [NOW_CHATTING.format(name=session["display_name"])]
        return [GREETING, SHOW_ALL_HINT]

    def _choose(self, text: str, command: str, greet: bool) -> tuple[dict, list[str]]:
        choosing = {"state": "choosing"}
        if command.startswith("%"):
            return choosing, [f'There is no command "{text}".', HELP]
        persona = self._find(text.lower())
        if persona is not None and persona.public and not persona.has_password:
            if not persona.servable:
                return choosing, [NOT_READY.format(name=persona.display_name, phase=persona.phase)]
            return self._start_chat(persona)
        if greet:  # a first "hi" is a greeting, even though it could be a name
            return choosing, [GREETING, SHOW_ALL_HINT]
        try:
            name = validate_name(text.lower())
        except InputError:  # no persona can have it: saying so reveals nothing
            return choosing, [self._unknown(text)]
        # A private persona's name, a protected public one's or nobody's: one answer.
        replies = [PASSWORD_PROMPT]
        if persona is None or not persona.public:
            replies += self._did_you_mean(text)
        return {"state": "password", "persona": name}, replies

    def _find(self, name: str) -> Persona | None:
        try:
            return self.directory.get(name)
        except (NotFoundError, InputError):
            return None

    def _list_public(self) -> str:
        personas = self.directory.list_public()
        if not personas:
            return NO_PUBLIC_PERSONAS
        lines = ["Public personas:"]
        for persona in personas:
            label = persona.name
            if persona.display_name != persona.name:
                label += f" ({persona.display_name})"
            if not persona.servable:
                label += " - not ready yet"
            lines.append(f"- {label}")
        return "\n".join(lines)

    def _close_public_names(self, text: str) -> str | None:
        """The public names close to `text`, quoted, or None. Only public names: a
        private persona's name is a secret too, and so must not change the answer."""
        names = [persona.name for persona in self.directory.list_public()]
        close = difflib.get_close_matches(text.lower(), names, n=3, cutoff=0.5)
        return ", ".join(f'"{name}"' for name in close) or None

    def _unknown(self, text: str) -> str:
        suggestions = self._close_public_names(text)
        if suggestions:
            return f'I don\'t know anyone called "{text}". Did you mean {suggestions}?'
        return f'I don\'t know anyone called "{text}". {SHOW_ALL_HINT}'

    def _did_you_mean(self, text: str) -> list[str]:
        suggestions = self._close_public_names(text)
        return [DID_YOU_MEAN.format(names=suggestions)] if suggestions else []

    def _start_chat(self, persona: Persona) -> tuple[dict, list[str]]:
        session = {
            "state": "chatting",
            "persona": persona.name,
            "display_name": persona.display_name,
            "stamp": persona.access_stamp,
            "history": [],
        }
        return session, [NOW_CHATTING.format(name=persona.display_name)]

    def _unlock(self, client: str, session: dict, password: str) -> tuple[dict, list[str]]:
        """Check `password` for the name asked for; an unknown name (never created, or
        deleted while we asked) answers, counts and takes as long as a wrong password."""
        name = session["persona"]
        ok, wait = self.password_tries.attempt(
            client, name, lambda: password_opens(self.directory, name, password)
        )
        if wait:
            return session, [TOO_MANY_TRIES.format(name=name, minutes=_wait_words(wait))]
        persona = self._find(name) if ok else None
        if persona is None:
            return session, [self._locked_out(client, name) or WRONG_PASSWORD]
        if not persona.servable:
            return {"state": "choosing"}, [
                NOT_READY.format(name=persona.display_name, phase=persona.phase)
            ]
        return self._start_chat(persona)

    def _locked_out(self, client: str, name: str) -> str | None:
        """The wait message while this client (or everyone) used up the tries, else None."""
        wait = self.password_tries.seconds_locked(client, name)
        if not wait:
            return None
        return TOO_MANY_TRIES.format(name=name, minutes=_wait_words(wait))

    def _chat(self, session: dict, text: str) -> tuple[dict, list[str]]:
        name, display_name = session["persona"], session["display_name"]
        persona = self._find(name)
        if persona is None or persona.access_stamp != session.get("stamp"):
            # Deleted, created again, or its password changed: this chat was not let in.
            return {"state": "choosing"}, [ENDED.format(name=display_name)]
        history = [*session["history"], self.scrub(text)]
        # The history alternates: the friend's message, the persona's reply, ..., ending
        # with this message, so a turn's speaker follows from its distance to the end.
        recent = history[-self.context_turns :]
        context = layout_context(
            ((len(recent) - i) % 2 == 0, turn) for i, turn in enumerate(recent)
        )
        try:
            reply = self.models.reply(
                name,
                context,
                max_chars=self.reply_max_chars,
                timeout=self.reply_timeout,
            )
        except (UnavailableError, NotFoundError, InputError) as error:
            log.warning("no reply from %s: %s", name, error)
            return session, [NOT_AVAILABLE.format(name=display_name)]
        reply = reply.strip() or "..."
        session = {**session, "history": [*history, reply][-2 * self.context_turns :]}
        return session, [reply]
