"""Request and response schemas of the backend API, and its OpenAPI 3.1 document.

The pydantic models are the single source: views validate with them and
`openapi_document()` turns them into `components/schemas`, so the document
served at `/openapi.json` cannot drift from what the code accepts and returns.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.json_schema import models_json_schema

from mimical.registry import (
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
    name: str
    version: int
    uri: str = Field(description="the SavedModel directory (s3:// or file://)")
    base_path: str = Field(description="TF Serving model base path holding every version")


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


# ---------------------------------------------------------------- OpenAPI document

_MODELS = [
    CreateForm,
    PasswordBody,
    GetModelBody,
    ChatbotSummary,
    ChatbotOut,
    ChatbotList,
    CreatedChatbot,
    ModelLocation,
    Deleted,
    Health,
    ErrorOut,
]
_ERRORS = {
    400: "malformed request",
    401: "missing or wrong password / owner token",
    403: "not allowed",
    404: "no such chatbot",
    409: "name taken, build running, or no model yet",
    413: "upload too large (or a zip bomb)",
    415: "not a chat export / wrong content type",
    422: "invalid field or broken export",
    429: "rate limited",
}


def _ref(model: type[BaseModel]) -> dict:
    return {"$ref": f"#/components/schemas/{model.__name__}"}


def _json(model: type[BaseModel]) -> dict:
    return {"application/json": {"schema": _ref(model)}}


def _responses(ok: dict[int, tuple[str, type[BaseModel] | None]], errors: list[int]) -> dict:
    responses = {}
    for status, (description, model) in ok.items():
        responses[str(status)] = {"description": description}
        if model is not None:
            responses[str(status)]["content"] = _json(model)
    for status in errors:
        responses[str(status)] = {"description": _ERRORS[status], "content": _json(ErrorOut)}
    return responses


NAME_PARAM = {
    "name": "name",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "pattern": NAME_PATTERN.pattern, "maxLength": NAME_MAX_LENGTH},
}
PASSWORD_HEADER = {
    "name": "X-Chatbot-Password",
    "in": "header",
    "required": False,
    "description": "password of a password-protected chatbot (never put it in the URL)",
    "schema": {"type": "string", "maxLength": PASSWORD_MAX},
}


def _upload_form(fields: dict, required: list[str]) -> dict:
    """A multipart body: the `export` file plus `fields`, nothing else."""
    export = {
        "type": "string",
        "contentMediaType": "application/octet-stream",
        "description": "the export: .zip, .json or .txt",
    }
    return {
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "required": ["export", *required],
                "properties": {"export": export, **fields},
                "additionalProperties": False,
            },
            "encoding": {"export": {"contentType": "application/octet-stream"}},
        }
    }


def _form_fields(model: type[BaseModel]) -> tuple[dict, list[str]]:
    """Form fields of `model`: a multipart field is a value or absent, never null."""
    schema = model.model_json_schema()
    fields = {}
    for name, field in schema["properties"].items():
        options = [option for option in field.get("anyOf", []) if option.get("type") != "null"]
        if options:
            field = {
                **{k: v for k, v in field.items() if k not in ("anyOf", "default")},
                **options[0],
            }
        fields[name] = field
    return fields, schema["required"]


_CREATE_FIELDS, _CREATE_REQUIRED = _form_fields(CreateForm)
EXPORT_FORM = _upload_form(_CREATE_FIELDS, _CREATE_REQUIRED)
RETRAIN_FORM = _upload_form({"me": _CREATE_FIELDS["me"]}, [])
OWNER = [{"ownerToken": []}]


def openapi_document(server_url: str = "/") -> dict:
    _, definitions = models_json_schema(
        [(model, "serialization") for model in _MODELS],
        ref_template="#/components/schemas/{model}",
    )
    get_model = {
        "summary": "Model location of a chatbot (password header for protected ones)",
        "parameters": [NAME_PARAM, PASSWORD_HEADER],
        "responses": _responses({200: ("where the model is", ModelLocation)}, [401, 404, 409, 429]),
    }
    paths = {
        "/api/chatbots": {
            "get": {
                "summary": "List public chatbots",
                "responses": _responses({200: ("public chatbots", ChatbotList)}, []),
            },
            "post": {
                "summary": "Create a chatbot from a chat export; starts the build",
                "requestBody": {"required": True, "content": EXPORT_FORM},
                "responses": _responses(
                    {202: ("accepted; poll GET /api/chatbots/{name}", CreatedChatbot)},
                    [400, 409, 413, 415, 422, 429],
                ),
            },
        },
        "/api/chatbots/{name}": {
            "get": {
                "summary": "Build status of a chatbot (protected ones need password or token)",
                "parameters": [NAME_PARAM, PASSWORD_HEADER],
                "security": [{}, *OWNER],
                "responses": _responses({200: ("the chatbot", ChatbotOut)}, [401, 404, 429]),
            },
            "delete": {
                "summary": "Delete a chatbot and everything stored for it",
                "parameters": [NAME_PARAM],
                "security": OWNER,
                "responses": _responses({200: ("deleted", Deleted)}, [401, 404]),
            },
        },
        "/api/chatbots/{name}/model": {
            "get": get_model,
            "post": {
                **get_model,
                "summary": "Model location, password in the JSON body",
                "parameters": [NAME_PARAM],
                "requestBody": {"required": True, "content": _json(PasswordBody)},
                "responses": _responses(
                    {200: ("where the model is", ModelLocation)},
                    [400, 401, 404, 409, 415, 422, 429],
                ),
            },
        },
        "/api/chatbots/{name}/retrain": {
            "post": {
                "summary": "Train a new model version from a new export",
                "parameters": [NAME_PARAM],
                "security": OWNER,
                "requestBody": {"required": True, "content": RETRAIN_FORM},
                "responses": _responses(
                    {202: ("accepted", ChatbotOut)}, [400, 401, 404, 409, 413, 415, 422, 429]
                ),
            }
        },
        "/getPublicChatbots": {
            "get": {
                "summary": "Alias of GET /api/chatbots (the product's original name)",
                "responses": _responses({200: ("public chatbots", ChatbotList)}, []),
            }
        },
        "/getPublicModel/{name}": {
            "get": {
                "summary": "Alias: model location of a chatbot without a password",
                "parameters": [NAME_PARAM],
                "responses": _responses(
                    {200: ("where the model is", ModelLocation)}, [401, 404, 409, 429]
                ),
            }
        },
        "/getModel": {
            "post": {
                "summary": "Alias: model location, name and password in the JSON body",
                "requestBody": {"required": True, "content": _json(GetModelBody)},
                "responses": _responses(
                    {200: ("where the model is", ModelLocation)},
                    [400, 401, 404, 409, 415, 422, 429],
                ),
            }
        },
        "/healthz": {
            "get": {
                "summary": "Liveness",
                "responses": _responses({200: ("alive", Health)}, []),
            }
        },
        "/readyz": {
            "get": {
                "summary": "Readiness: registry and storage reachable",
                "responses": {
                    **_responses({200: ("ready", Health)}, []),
                    "503": {"description": "not ready", "content": _json(ErrorOut)},
                },
            }
        },
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "mimical backend API",
            "version": "1",
            "description": "Create chatbots from chat exports and find their models.",
        },
        "servers": [{"url": server_url}],
        "paths": paths,
        "components": {
            "schemas": definitions["$defs"],
            "securitySchemes": {
                "ownerToken": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "the owner token returned once by POST /api/chatbots",
                }
            },
        },
    }
