"""Request and response schemas of the backend API.

The pydantic models are the single source: views validate with them, and each
view's `@documented(...)` names them, from which `mimical.web.openapi` builds
`components/schemas`, so the document served at `/openapi.json` cannot drift
from what the code accepts and returns.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from mimical.chatbot import (
    DISPLAY_NAME_MAX,
    NAME_MAX_LENGTH,
    NAME_PATTERN,
    PASSWORD_MAX,
    Chatbot,
    Phase,
)

NAME_FIELD = Field(
    pattern=NAME_PATTERN.pattern,
    min_length=1,
    max_length=NAME_MAX_LENGTH,
    description="DNS-1123 label: the chatbot's unique name (also its model name)",
)


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CreateForm(Strict):
    """Form fields of `POST /api/chatbots` (the `export` file comes alongside)."""

    name: str = NAME_FIELD
    public: bool = Field(False, description="listed by GET /api/chatbots and `%show all`")
    password: str | None = Field(
        None, min_length=1, max_length=PASSWORD_MAX, description="required when not public"
    )
    display_name: str | None = Field(None, max_length=DISPLAY_NAME_MAX)
    me: str | None = Field(
        None, max_length=200, description="your name as the export spells it, if ambiguous"
    )


class PasswordBody(Strict):
    password: str = Field(min_length=1, max_length=PASSWORD_MAX)


class GetModelBody(Strict):
    """Body of the product's `POST /getModel`."""

    name: str = NAME_FIELD
    password: str | None = Field(None, max_length=PASSWORD_MAX)


class ChatbotSummary(BaseModel):
    name: str
    display_name: str
    password_protected: bool
    phase: Phase
    ready: bool = Field(description="a model version is serving")


class ChatbotOut(ChatbotSummary):
    public: bool
    progress: float = Field(ge=0, le=1)
    message: str
    model_version: int | None
    versions: list[int]
    metrics: dict[str, Any]
    created_at: datetime
    updated_at: datetime


class ChatbotList(BaseModel):
    chatbots: list[ChatbotSummary]


class CreatedChatbot(BaseModel):
    chatbot: ChatbotOut
    owner_token: str = Field(
        description="shown once: send as `Authorization: Bearer TOKEN` to retrain or delete"
    )


class ModelLocation(BaseModel):
    """Which version of the chatbot answers (where it is stored is not for clients)."""

    name: str
    version: int


class Deleted(BaseModel):
    deleted: str


class Health(BaseModel):
    status: Literal["ok"]


class ErrorOut(BaseModel):
    error: str = Field(description="machine-readable code, e.g. not_found")
    message: str = Field(description="one human-readable line")


def summary(chatbot: Chatbot) -> dict:
    """A `ChatbotSummary` as a plain dict: lists of a thousand skip per-item validation."""
    return {
        "name": chatbot.name,
        "display_name": chatbot.display_name,
        "password_protected": chatbot.has_password,
        "phase": chatbot.phase.value,
        "ready": chatbot.servable,
    }


def detail(chatbot: Chatbot) -> ChatbotOut:
    return ChatbotOut(
        **summary(chatbot),
        public=chatbot.public,
        progress=chatbot.progress,
        message=chatbot.message,
        model_version=chatbot.model_version,
        versions=chatbot.versions,
        metrics=chatbot.metrics,
        created_at=datetime.fromtimestamp(chatbot.created_at, UTC),
        updated_at=datetime.fromtimestamp(chatbot.updated_at, UTC),
    )
