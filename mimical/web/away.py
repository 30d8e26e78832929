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

from datetime import datetime

from flask import Blueprint, current_app
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from mimical.appkit.component import get_settings
from mimical.appkit.dialog_app import get_away_windows
from mimical.chatbot import Chatbot
from mimical.dialog.away import AWAY_MAX, note
from mimical.web.access import no_store, require_owner
from mimical.web.api import _json_body
from mimical.web.openapi import OWNER_TOKEN, documented

blueprint = Blueprint("away", __name__)
blueprint.after_request(no_store)


def init_app(app) -> None:
    """Nothing to configure: the window lives in the dialog's store."""


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
