"""Away mode's state: the owner's away window and the Messenger Page that is theirs.

`AwayWindows` keeps `away:NAME` -> {until, stamp} in the dialog's `SessionStore` (the
window as its TTL); `OwnerPage` is what `MessengerWorker` asks before answering on the
owner's own Page. The HTTP side (`PUT|GET|DELETE /api/chatbots/NAME/away`) is the web
component `mimical.web.away`; the Messenger side, `mimical.messenger`: both import this.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

from mimical.chatbot import Chatbot
from mimical.config import Settings
from mimical.dialog.sessions import SessionStore
from mimical.errors import InputError, NotFoundError

AWAY_MAX = timedelta(days=7)
KEY_PREFIX = "away:"
NOTE = "[Automated reply: {name} is away until {until} and their persona answers for them.]"


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
