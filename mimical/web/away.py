"""Away mode: the owner lets their persona answer their own Messenger Page for a while.

    PUT    /api/chatbots/NAME/away   owner token; {"until": "2026-12-05T18:00:00Z"}
    GET    /api/chatbots/NAME/away   → {"until": ... or null, "page": bool, "note": ...}
    DELETE /api/chatbots/NAME/away   the persona stops answering now

By default the Messenger Page of a deployment is a place where anyone picks a public
persona to talk to. A person who connects their *own* Page (their business or public
figure Page) sets `MIMICAL_MESSENGER_PAGE_OWNER=NAME`: the Page's conversations are
then theirs, and the persona NAME never answers them on its own. Only while the owner
is away, in a window they open with their owner token (at most `AWAY_MAX` ahead, and
the persona's password or deletion ends it, like every chat), does NAME answer every
Page conversation directly (no persona to pick, no password), each reply opening with
a note that it is automated and until when (`note`). Outside the window messages are
left unread for the owner, who answers them from the Page inbox, with drafts from the
browser extension if they like (`mimical.web.suggestions`). `%forget` works always.

The window is kept in the dialog's store (Redis, or this process's memory in an
embedded `mimical serve`), so API and Messenger workers see the same one, and it
expires by itself. A component of its own (`create_app(components=["api", "away"])`),
after `api`: it uses the API's owner-token check.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

from flask import Blueprint, current_app
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from mimical.chatbot import Chatbot
from mimical.config import Settings
from mimical.dialog.sessions import SessionStore, open_session_store
from mimical.errors import InputError, NotFoundError
from mimical.web.access import no_store, require_owner
from mimical.web.api import _json_body
from mimical.web.component import get_settings
from mimical.web.openapi import OWNER_TOKEN, documented
from mimical.web.resources import shared_resource

blueprint = Blueprint("away", __name__)
blueprint.after_request(no_store)

AWAY_MAX = timedelta(days=7)
KEY_PREFIX = "away:"
NOTE = "[Automated reply: {name} is away until {until} and their persona answers for them.]"


def init_app(app) -> None:
    """Nothing to configure: the window lives in the dialog's store."""


def note(display_name: str, until: datetime) -> str:
    """The line that opens every reply sent on the owner's behalf."""
    when = until.astimezone(UTC).strftime("%a %d %b %H:%M UTC")
    return NOTE.format(name=display_name, until=when)


class AwayWindows:
    """Each chatbot's away window, in a `SessionStore` (expiring with the window).

    A window belongs to the chatbot as it was when opened (its `access_stamp`): a new
    password, or the name deleted and taken again, ends it. `clock` is for tests.
    """

    def __init__(self, store: SessionStore, clock=time.time):
        self.store = store
        self.clock = clock

    def open(self, chatbot: Chatbot, until: datetime) -> None:
        seconds = until.timestamp() - self.clock()
        if seconds <= 0:
            raise InputError("until: the window must end in the future")
        if seconds > AWAY_MAX.total_seconds():
            raise InputError(f"until: at most {AWAY_MAX.days} days ahead")
        entry = {"until": until.timestamp(), "stamp": chatbot.access_stamp}
        self.store.save(KEY_PREFIX + chatbot.name, entry, int(seconds) + 1)

    def until(self, chatbot: Chatbot) -> datetime | None:
        """When the open window ends, or None when the owner is not away."""
        entry = self.store.load(KEY_PREFIX + chatbot.name)
        if not entry or entry["stamp"] != chatbot.access_stamp or entry["until"] <= self.clock():
            return None
        return datetime.fromtimestamp(entry["until"], UTC)

    def close(self, name: str) -> None:
        self.store.delete(KEY_PREFIX + name)


def get_away_windows() -> AwayWindows:
    """This app's windows, shared by its API and Messenger workers."""
    return shared_resource("away", lambda app: AwayWindows(open_session_store(get_settings(app))))


class OwnerPage:
    """The Messenger Page of `Settings.messenger_page_owner`: only its persona speaks there,
    and only in the owner's away window (what `MessengerWorker` asks before answering)."""

    def __init__(self, name: str, windows: AwayWindows, directory):
        self.name = name
        self.windows = windows
        self.directory = directory

    def away_until(self) -> datetime | None:
        try:
            chatbot = self.directory.get(self.name)
        except NotFoundError:  # deleted: nobody answers for the owner
            return None
        return self.windows.until(chatbot)

    def answer(self, engine, channel: str, user: str, text: str) -> list[str]:
        """The persona's replies to `text`, each with the note; none once the window
        closed (between the worker's check and now)."""
        until = self.away_until()
        if until is None:
            return []
        engine.begin_chat(channel, user, self.name)
        display_name = self.directory.get(self.name).display_name
        replies = engine.handle(channel, user, text)
        return [f"{note(display_name, until)}\n{reply}" for reply in replies]


def owner_page(settings: Settings, windows: AwayWindows, directory) -> OwnerPage | None:
    """The owner's Page when `MIMICAL_MESSENGER_PAGE_OWNER` names a chatbot, else None."""
    name = settings.messenger_page_owner
    return OwnerPage(name, windows, directory) if name else None


class AwayBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    until: AwareDatetime = Field(
        description=f"when the persona stops answering (ISO 8601 with a time zone; at most "
        f"{AWAY_MAX.days} days ahead)"
    )


class AwayOut(BaseModel):
    until: datetime | None = Field(description="end of the open window; null: not away")
    page: bool = Field(description="this backend's Messenger Page is this chatbot's owner's")
    note: str | None = Field(description="the line each automated reply opens with")


def _state(chatbot: Chatbot):
    until = get_away_windows().until(chatbot)
    settings = get_settings()
    out = AwayOut(
        until=until,
        page=settings.messenger_page_owner == chatbot.name,
        note=note(chatbot.display_name, until) if until else None,
    )
    return current_app.json.response(out.model_dump(mode="json"))


@documented(
    "Let the persona answer the owner's Messenger Page until a time",
    ok={200: ("the open window", AwayOut)},
    errors=[401, 415, 422],
    body=AwayBody,
    security=OWNER_TOKEN,
)
@blueprint.put("/api/chatbots/<name>/away")
def open_window(name: str):
    chatbot = require_owner(name)
    body = _json_body(AwayBody)
    get_away_windows().open(chatbot, body.until)
    return _state(chatbot)


@documented(
    "Whether the persona answers the owner's Messenger Page, and until when",
    ok={200: ("the window, if any", AwayOut)},
    errors=[401],
    security=OWNER_TOKEN,
)
@blueprint.get("/api/chatbots/<name>/away")
def show_window(name: str):
    return _state(require_owner(name))


@documented(
    "Stop the persona answering the owner's Messenger Page now",
    ok={200: ("no window", AwayOut)},
    errors=[401],
    security=OWNER_TOKEN,
)
@blueprint.delete("/api/chatbots/<name>/away")
def close_window(name: str):
    chatbot = require_owner(name)
    get_away_windows().close(chatbot.name)
    return _state(chatbot)
