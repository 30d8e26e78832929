"""The backend API (component `api`): create chatbots from exports, find their models.

Endpoints (schemas in `mimical.web.api_schemas`, served at `/openapi.json`, a
readable page at `/docs`):

    POST   /api/chatbots                 multipart export → 202 + one-time owner token
    GET    /api/chatbots                 public chatbots        (alias /getPublicChatbots)
    GET    /api/chatbots/NAME            build status           (private: password or token)
    GET    /api/chatbots/NAME/model      model location         (alias /getPublicModel/NAME)
    POST   /api/chatbots/NAME/model      same, password in JSON (alias POST /getModel)
    POST   /api/chatbots/NAME/retrain    new export → new version (owner token)
    DELETE /api/chatbots/NAME            remove everything      (owner token)
    GET    /healthz /readyz /metrics

Passwords travel in the `X-Chatbot-Password` header or a JSON body, never in the
URL; owner tokens as `Authorization: Bearer TOKEN`. Password checks are rate
limited per client and chatbot (flask-limiter's storage: Redis when `REDIS_URL`
is set). Run it with `mimical serve` (embedded) or `services/backend`.
"""

from __future__ import annotations

from typing import TypeVar

import orjson
from flask import Blueprint, Flask, current_app, render_template, request
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from pydantic import BaseModel, ValidationError
from werkzeug.exceptions import RequestEntityTooLarge

from mimical.errors import (
    AuthError,
    ConflictError,
    InputError,
    RateLimitedError,
    TooLargeError,
    UnsupportedFormatError,
)
from mimical.registry import Chatbot
from mimical.storage import model_prefix, upload_prefix
from mimical.web import api_schemas as schemas
from mimical.web import error_response
from mimical.web.metrics import init_metrics
from mimical.web.resources import app_resources, get_orchestrator, get_registry, get_storage
from mimical.web.uploads import received_export, store_upload

blueprint = Blueprint("api", __name__, template_folder="templates")
T = TypeVar("T", bound=BaseModel)
JSON = "application/json"

# Defaults for the rate limits (flask-limiter notation); override in app config.
RATE_LIMIT_DEFAULTS = {
    # Guessing a password: per client and chatbot.
    "MIMICAL_PASSWORD_RATE_LIMIT": "20/minute;200/hour",
    # Creating or retraining (each starts a training run): per client.
    "MIMICAL_BUILD_RATE_LIMIT": "10/hour",
}


def init_app(app: Flask) -> None:
    for key, value in RATE_LIMIT_DEFAULTS.items():
        app.config.setdefault(key, value)
    settings = app.config["MIMICAL_SETTINGS"]
    limiter = Limiter(
        get_remote_address,
        storage_uri=settings.redis_url or "memory://",
        strategy="moving-window",
        key_prefix="mimical",
    )
    limiter.init_app(app)
    app_resources(app)["limiter"] = limiter
    init_metrics(app)

    @app.errorhandler(RequestEntityTooLarge)
    def too_large(error):
        limit = app.config["MAX_CONTENT_LENGTH"]
        return error_response(413, TooLargeError.code, f"the upload is larger than {limit} bytes")


def _rate_limit(kind: str, *scope: str) -> None:
    """Count one hit of `kind` for this client (and scope); 429 past the configured limit."""
    from limits import parse_many

    limiter: Limiter = app_resources(current_app)["limiter"]
    limit_string = current_app.config[f"MIMICAL_{kind.upper()}_RATE_LIMIT"]
    for limit in parse_many(limit_string):
        if not limiter.limiter.hit(limit, kind, get_remote_address(), *scope):
            raise RateLimitedError(f"too many {kind} attempts; limit is {limit}, try again later")


def _bearer_token() -> str | None:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def _check_owner(name: str) -> None:
    """401 unless the request carries `name`'s owner token."""
    token = _bearer_token()
    if token is None:
        raise AuthError(f"changing {name!r} needs its owner token (Authorization: Bearer TOKEN)")
    if not get_registry().verify_owner_token(name, token):
        # Only wrong tokens count: a right one is 256 random bits, and the extension
        # polls build status with it every few seconds while a chatbot trains.
        _rate_limit("password", name)
        raise AuthError(f"wrong owner token for {name!r}")


def _require_owner(name: str) -> Chatbot:
    """The chatbot (404 if unknown), once the request proved it owns it."""
    chatbot = get_registry().get(name)
    _check_owner(name)
    return chatbot


def _check_password(chatbot: Chatbot, password: str | None) -> None:
    if not chatbot.has_password:
        return
    if not password:
        raise AuthError(f"{chatbot.name!r} is password protected: send its password")
    _rate_limit("password", chatbot.name)
    if not get_registry().verify_password(chatbot.name, password):
        raise AuthError(f"wrong password for {chatbot.name!r}")


def _parse(model: type[T], data: dict) -> T:
    """Validate `data`; a bad field is a 422 naming it."""
    try:
        return model.model_validate(data)
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "body"
        raise InputError(f"{where}: {first['msg']}") from None


def _json_body(model: type[T]) -> T:
    if not request.is_json:
        raise UnsupportedFormatError("send a JSON body (Content-Type: application/json)")
    data = request.get_json(silent=True)
    if not isinstance(data, dict):
        raise InputError("the body is not a JSON object")
    return _parse(model, data)


def _multipart_form() -> dict:
    if request.mimetype != "multipart/form-data":
        raise UnsupportedFormatError("send the export as multipart/form-data")
    return {key: request.form[key] for key in request.form}


def _start_build(name: str, me: str | None) -> None:
    """Store the checked upload and start building `name`; 409 if a build is running."""
    settings = current_app.config["MIMICAL_SETTINGS"]
    storage = get_storage()
    with received_export(request.files.get("export")) as path:
        key = store_upload(storage, name, path, settings.upload_max_bytes)
    try:
        get_orchestrator().build(name, key, me=me)
    except BaseException:
        storage.delete_prefix(key)  # a refused build keeps no upload
        raise


# ---------------------------------------------------------------- chatbots


@blueprint.post("/api/chatbots")
def create_chatbot():
    form = _parse(schemas.CreateForm, _multipart_form())
    if not form.public and not form.password:
        raise InputError("a private chatbot needs a password (or set public=true)")
    registry = get_registry()
    if registry.find(form.name) is not None:
        raise ConflictError(f"a chatbot named {form.name!r} already exists")
    _rate_limit("build")
    with received_export(request.files.get("export")) as path:
        chatbot, token = registry.create(
            form.name,
            public=form.public,
            password=form.password,
            display_name=form.display_name,
            me=form.me,
        )
        try:
            settings = current_app.config["MIMICAL_SETTINGS"]
            key = store_upload(get_storage(), form.name, path, settings.upload_max_bytes)
            get_orchestrator().build(form.name, key, me=form.me)
        except BaseException:
            # Nothing half-made: no record without its upload, no upload without a record.
            get_storage().delete_prefix(upload_prefix(form.name))
            registry.delete(form.name)
            raise
    body = schemas.CreatedChatbot(
        chatbot=schemas.detail(registry.get(chatbot.name)), owner_token=token
    )
    return body.model_dump(mode="json"), 202


@blueprint.get("/api/chatbots")
@blueprint.get("/getPublicChatbots")
def list_chatbots():
    chatbots = [schemas.summary(chatbot) for chatbot in get_registry().list_public()]
    return current_app.response_class(orjson.dumps({"chatbots": chatbots}), mimetype=JSON)


@blueprint.get("/api/chatbots/<name>")
def get_chatbot(name: str):
    chatbot = get_registry().get(name)
    if not chatbot.public:
        if _bearer_token() is not None:
            _check_owner(name)  # the extension polls with it while the chatbot builds
        else:
            _check_password(chatbot, request.headers.get("X-Chatbot-Password"))
    return schemas.detail(chatbot).model_dump(mode="json")


@blueprint.post("/api/chatbots/<name>/retrain")
def retrain_chatbot(name: str):
    form = _multipart_form()
    unknown = set(form) - {"me"}
    if unknown:
        raise InputError(f"unknown field {sorted(unknown)[0]!r}")
    chatbot = _require_owner(name)
    if get_orchestrator().busy(name):
        raise ConflictError(f"{name!r} is already being built; wait for it to finish")
    _rate_limit("build")
    _start_build(name, form.get("me") or chatbot.me)
    return schemas.detail(get_registry().get(name)).model_dump(mode="json"), 202


@blueprint.delete("/api/chatbots/<name>")
def delete_chatbot(name: str):
    _require_owner(name)
    get_orchestrator().delete(name)
    get_registry().delete(name)
    return schemas.Deleted(deleted=name).model_dump(mode="json")


# ---------------------------------------------------------------- model locations


def _model_location(name: str, password: str | None):
    chatbot = get_registry().get(name)
    _check_password(chatbot, password)
    if not chatbot.servable:
        raise ConflictError(f"{name!r} has no model yet (phase {chatbot.phase.value})")
    storage = get_storage()
    location = schemas.ModelLocation(
        name=name,
        version=chatbot.model_version,
        uri=storage.url(model_prefix(name, chatbot.model_version)),
        base_path=storage.url(model_prefix(name)),
    )
    return location.model_dump(mode="json")


@blueprint.get("/api/chatbots/<name>/model")
def get_model(name: str):
    return _model_location(name, request.headers.get("X-Chatbot-Password"))


@blueprint.post("/api/chatbots/<name>/model")
def post_model(name: str):
    return _model_location(name, _json_body(schemas.PasswordBody).password)


@blueprint.get("/getPublicModel/<name>")
def get_public_model(name: str):
    return _model_location(name, None)


@blueprint.post("/getModel")
def get_model_alias():
    body = _json_body(schemas.GetModelBody)
    return _model_location(body.name, body.password)


# ---------------------------------------------------------------- operations


@blueprint.get("/healthz")
def healthz():
    return {"status": "ok"}


@blueprint.get("/readyz")
def readyz():
    try:
        get_registry().find("readyz-probe")
        get_storage().exists("readyz-probe")
    except Exception as error:  # any backing-service failure means "not ready"
        current_app.logger.warning("not ready: %s", error)
        return {"error": "unavailable", "message": f"not ready: {type(error).__name__}"}, 503
    return {"status": "ok"}


@blueprint.get("/openapi.json")
def openapi():
    return schemas.openapi_document(request.script_root or "/")


@blueprint.get("/docs")
def docs():
    return render_template("api/docs.html", document=schemas.openapi_document())
