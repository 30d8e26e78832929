"""Reply suggestions: drafts in the owner's own voice for a conversation they are in.

    POST /api/chatbots/NAME/suggestions   owner token; {"turns": [...], "count": 1-5}
                                           → {"suggestions": ["...", ...]}

The browser extension sends the last turns of the conversation open in the owner's
Messenger tab (`{"from": "me" | "them", "text": ...}`, oldest first) and shows the
drafts beside the composer; the person picks, edits and sends. Nothing is ever sent
on their behalf, and only the chatbot's owner may ask: the drafts speak as them.

The turns are the people's private messages, so they live only for the request:
scrubbed of personal data (`mimical.corpus.scrub`, as the importer does) before
they reach the model, never stored, never logged. The model answers all the
candidates in one gRPC call (`ModelClient.replies`: the context repeated, one seed
per row, and each repeat reading the next of the person's retrieved replies, so that
rows differ); the in-graph guard may refuse a draft (an empty reply), which is dropped,
like repeats. One more call (of twice the rows) tops up when fewer distinct drafts
came back than were asked for; after that the answer may hold fewer (or none).

A component of its own (`create_app(components=["api", "suggestions"])`), after
`api`: it uses the API's owner-token check and its rate limiter.
"""

from __future__ import annotations

from typing import Literal

from flask import Blueprint, Flask, current_app
from pydantic import BaseModel, ConfigDict, Field

from mimical.appkit.dialog_app import get_models
from mimical.corpus.schema import DEFAULT_CONTEXT_TURNS, layout_context
from mimical.corpus.scrub import Scrubber
from mimical.dialog.engine import MESSAGE_MAX_CHARS, REPLY_TIMEOUT_SECONDS
from mimical.errors import ConflictError
from mimical.web.access import no_store, rate_limit, require_owner
from mimical.web.api import _json_body
from mimical.web.openapi import OWNER_TOKEN, documented

blueprint = Blueprint("suggestions", __name__)
blueprint.after_request(no_store)

SUGGESTIONS_MAX = 5
# More turns than the model reads (`DEFAULT_CONTEXT_TURNS` after merging a speaker's
# consecutive messages) are accepted, so a client need not know how many it reads.
TURNS_MAX = 50
DRAFT_MAX_CHARS = 500


class Turn(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    speaker: Literal["me", "them"] = Field(
        alias="from", description="me: the chatbot's owner; them: anyone else"
    )
    text: str = Field(min_length=1, max_length=MESSAGE_MAX_CHARS)


class SuggestionsBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    turns: list[Turn] = Field(
        min_length=1, max_length=TURNS_MAX, description="the conversation, oldest first"
    )
    count: int = Field(3, ge=1, le=SUGGESTIONS_MAX, description="how many drafts")
    max_chars: int = Field(200, ge=10, le=DRAFT_MAX_CHARS, description="longest draft")


class SuggestionsOut(BaseModel):
    suggestions: list[str] = Field(
        description="distinct drafts, best effort: fewer than asked when the model repeats "
        "itself or its guard declines"
    )


def init_app(app: Flask) -> None:
    """Nothing to set up: the drafts' limit is `Settings.suggestions_rate_limit`."""


def model_context(turns: list[Turn], scrub=None) -> str:
    """The text the persona model reads, in the layout it was trained on.

    A turn is a speaker's consecutive messages joined by newlines, and the context is
    the last `DEFAULT_CONTEXT_TURNS` turns, each marked as the owner's or another's
    (`mimical.corpus.schema.layout_context`); `scrub` cleans each message first.
    """
    scrub = scrub or Scrubber()
    merged: list[tuple[str, list[str]]] = []
    for turn in turns:
        text = scrub(turn.text.strip())
        if not text:
            continue
        if merged and merged[-1][0] == turn.speaker:
            merged[-1][1].append(text)
        else:
            merged.append((turn.speaker, [text]))
    return layout_context(
        (speaker == "me", "\n".join(texts)) for speaker, texts in merged[-DEFAULT_CONTEXT_TURNS:]
    )


def distinct_drafts(ask, count: int) -> list[str]:
    """Up to `count` distinct non-empty drafts from `ask(n) -> list[str]`, asking twice at most.

    The top-up asks for twice as many rows: short replies ("haha yes") repeat often, and
    a row more in the batch costs little.
    """
    drafts: list[str] = []
    for rows in (count, 2 * count):
        for draft in ask(rows):
            draft = draft.strip()
            if draft and draft not in drafts:
                drafts.append(draft)
        if len(drafts) >= count:
            break
    return drafts[:count]


@documented(
    "Reply drafts in the owner's voice for a conversation (nothing stored)",
    ok={200: ("distinct drafts", SuggestionsOut)},
    errors=[400, 401, 409, 415, 422, 429, 503],
    body=SuggestionsBody,
    security=OWNER_TOKEN,
)
@blueprint.post("/api/chatbots/<name>/suggestions")
def suggest(name: str):
    chatbot = require_owner(name)
    rate_limit("suggestions", name)
    body = _json_body(SuggestionsBody)
    if not chatbot.servable:
        raise ConflictError(f"{name!r} has no model yet (phase {chatbot.phase.value})")
    context = model_context(body.turns)
    client = get_models().client

    def ask(count: int) -> list[str]:
        return client.replies(
            name, context, count, max_chars=body.max_chars, timeout=REPLY_TIMEOUT_SECONDS
        )

    drafts = distinct_drafts(ask, body.count)
    return current_app.json.response(SuggestionsOut(suggestions=drafts).model_dump())
