"""The backend API (component `api`): create chatbots from exports, find their models.

Endpoints (schemas in `mimical.web.api_schemas`, served at `/openapi.json`, a
readable page at `/docs`):

    POST   /api/chatbots                 multipart export → 202 + one-time owner token
    GET    /api/chatbots                 public chatbots        (alias /getPublicChatbots)
    GET    /api/chatbots/NAME            build status           (private: password or token;
                                                            why a build failed: token only)
    PATCH  /api/chatbots/NAME            new password           (owner token)
    GET    /api/chatbots/NAME/model      model location         (alias /getPublicModel/NAME)
    POST   /api/chatbots/NAME/model      same, password in JSON (alias POST /getModel)
    POST   /api/chatbots/NAME/retrain    new export → new version (owner token)
    DELETE /api/chatbots/NAME            remove everything      (owner token)
    GET    /healthz /readyz   (/metrics: on the metrics port, `mimical.appkit.metrics`)

Passwords travel in the `X-Chatbot-Password` header or a JSON body, never in the
URL; owner tokens as `Authorization: Bearer TOKEN`. Wrong passwords are limited
per client and chatbot and per chatbot from everyone, counted together with the
chat channels' (`mimical.dialog.sessions.PasswordTries`); wrong owner tokens per
client; builds per client, counting every attempt (Redis when `REDIS_URL` is set).
Every answer is `Cache-Control: no-store`: some carry an owner token or a private
chatbot's status. Run it with `mimical serve` (embedded) or `services/backend`.
"""

from __future__ import annotations

from typing import TypeVar

import orjson
from flask import Blueprint, Flask, current_app, g, render_template, request
from flask_limiter import Limiter
from pydantic import BaseModel, ValidationError

from mimical.appkit.component import get_settings
from mimical.appkit.health import add_readiness_check, readiness_problem
from mimical.appkit.metrics import init_metrics
from mimical.appkit.resources import (
    app_resources,
    client_address,
    get_orchestrator,
    get_registry,
    get_storage,
)
from mimical.build import read_failure
from mimical.chatbot import Phase
from mimical.errors import (
    ConflictError,
    InputError,
    UnsupportedFormatError,
)
from mimical.storage import upload_prefix
from mimical.web import api_schemas as schemas
from mimical.web.access import (
    bearer_token,
    count_use,
    no_store,
    rate_limit,
    require_owner,
    visible_chatbot,
)
from mimical.web.openapi import (
    OWNER_TOKEN,
    PASSWORD_HEADER,
    UploadForm,
    documented,
    openapi_document,
)
from mimical.web.uploads import UploadRequest, UploadSlots, received_export, store_upload

blueprint = Blueprint("api", __name__, template_folder="templates")
T = TypeVar("T", bound=BaseModel)
JSON = "application/json"


def init_app(app: Flask) -> None:
    settings = get_settings(app)
    limiter = Limiter(
        client_address,
        storage_uri=settings.redis_url or "memory://",
        strategy="moving-window",
        key_prefix="mimical",
    )
    limiter.init_app(app)
    app_resources(app)["limiter"] = limiter
    app.request_class = UploadRequest
    slots = app_resources(app)["upload_slots"] = UploadSlots(
        settings.uploads_at_once, settings.uploads_at_once_per_client
    )
    slots.on_change = _uploads_receiving_gauge(init_metrics(app)).set
    add_readiness_check(app, _backing_services_problem)


def _uploads_receiving_gauge(registry):
    """A gauge of the upload slots taken: at a process's maximum, its new uploads get 429."""
    from prometheus_client import Gauge

    return Gauge(
        "mimical_uploads_receiving",
        "Uploads being received now, summed over the pod's workers (with every slot of a"
        " worker taken, its new ones get 429)",
        registry=registry,
        multiprocess_mode="livesum",
    )


# Routes that receive an export: their bodies may be as large as the upload limit
# (werkzeug spools the file to disk as it arrives); every other body stays small.
UPLOAD_ENDPOINTS = {"api.create_chatbot", "api.retrain_chatbot"}


@blueprint.before_request
def allow_upload_bodies() -> None:
    """Before an upload's body is read: count the attempt, take a slot, raise the cap."""
    if request.endpoint in UPLOAD_ENDPOINTS:
        rate_limit("upload")
        app_resources(current_app)["upload_slots"].acquire(client_address())
        g.mimical_upload_slot = client_address()
        request.max_content_length = get_settings().upload_max_bytes


@blueprint.teardown_request
def free_upload_slot(_error=None) -> None:
    client = g.pop("mimical_upload_slot", None)
    if client is not None:
        app_resources(current_app)["upload_slots"].release(client)


blueprint.after_request(no_store)


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
    settings = get_settings()
    storage = get_storage()
    with received_export(request.files.get("export")) as path:
        key = store_upload(storage, name, path, settings.upload_max_bytes)
    try:
        get_orchestrator().build(name, key, me=me)
    except BaseException:
        storage.delete_prefix(key)  # a refused build keeps no upload
        raise


# ---------------------------------------------------------------- chatbots


@documented(
    "Create a chatbot from a chat export; starts the build",
    ok={202: ("accepted; poll GET /api/chatbots/{name}", schemas.CreatedChatbot)},
    errors=[400, 409, 413, 415, 422, 429],
    body=UploadForm(schemas.CreateForm),
)
@blueprint.post("/api/chatbots")
def create_chatbot():
    form = _parse(schemas.CreateForm, _multipart_form())
    if not form.public and not form.password:
        raise InputError("a private chatbot needs a password (or set public=true)")
    rate_limit("build", count=False)
    registry = get_registry()
    # The upload is checked before the name: a taken name (a private one included)
    # answers a bad upload exactly as a free name does, so only a request that would
    # really create a chatbot learns the name is taken.
    with received_export(request.files.get("export")) as path:
        if registry.find(form.name) is not None:
            raise ConflictError(f"a chatbot named {form.name!r} already exists")
        chatbot, token = registry.create(
            form.name,
            public=form.public,
            password=form.password,
            display_name=form.display_name,
            me=form.me,
        )
        try:
            settings = get_settings()
            key = store_upload(get_storage(), form.name, path, settings.upload_max_bytes)
            get_orchestrator().build(form.name, key, me=form.me)
        except BaseException:
            # Nothing half-made: no record without its upload, no upload without a record.
            get_storage().delete_prefix(upload_prefix(form.name))
            registry.delete(form.name)
            raise
    count_use("build")
    body = schemas.CreatedChatbot(
        chatbot=schemas.detail(registry.get(chatbot.name)), owner_token=token
    )
    return body.model_dump(mode="json"), 202


@documented("List public chatbots", ok={200: ("public chatbots", schemas.ChatbotList)})
@blueprint.get("/api/chatbots")
def list_chatbots():
    chatbots = [schemas.summary(chatbot) for chatbot in get_registry().list_public()]
    return current_app.response_class(orjson.dumps({"chatbots": chatbots}), mimetype=JSON)


@documented(
    "Alias of GET /api/chatbots (the product's original name)",
    ok={200: ("public chatbots", schemas.ChatbotList)},
)
@blueprint.get("/getPublicChatbots")
def list_chatbots_alias():
    return list_chatbots()


@documented(
    "Build status of a chatbot (protected ones need password or token)",
    ok={200: ("the chatbot", schemas.ChatbotOut)},
    errors=[401, 404, 429],
    headers=[PASSWORD_HEADER],
    security=[{}, *OWNER_TOKEN],
)
@blueprint.get("/api/chatbots/<name>")
def get_chatbot(name: str):
    owner = bearer_token() is not None
    if owner:
        chatbot = require_owner(name)  # the extension polls with it while the chatbot builds
    else:
        password = request.headers.get("X-Chatbot-Password")
        chatbot = visible_chatbot(name, password, listed=True)
    body = schemas.detail(chatbot)
    if owner and chatbot.phase == Phase.FAILED:
        # Everyone else reads a generic line (`mimical.build.public_failure`): the reason
        # may name files in the export or the owner's chat partners.
        body.message = read_failure(get_storage(), name) or body.message
    return body.model_dump(mode="json")


@documented(
    "Change a chatbot's password; chats opened with the old one end",
    ok={200: ("the chatbot", schemas.ChatbotOut)},
    errors=[400, 401, 404, 409, 415, 422, 429],
    body=schemas.PasswordBody,
    security=OWNER_TOKEN,
)
@blueprint.patch("/api/chatbots/<name>")
def change_password(name: str):
    require_owner(name)
    password = _json_body(schemas.PasswordBody).password
    return schemas.detail(get_registry().change_password(name, password)).model_dump(mode="json")


@documented(
    "Train a new model version from a new export",
    ok={202: ("accepted", schemas.ChatbotOut)},
    errors=[400, 401, 404, 409, 413, 415, 422, 429],
    body=UploadForm(schemas.CreateForm, fields=("me",)),
    security=OWNER_TOKEN,
)
@blueprint.post("/api/chatbots/<name>/retrain")
def retrain_chatbot(name: str):
    chatbot = require_owner(name)  # before the body is read: strangers' uploads are not
    form = _multipart_form()
    unknown = set(form) - {"me"}
    if unknown:
        raise InputError(f"unknown field {sorted(unknown)[0]!r}")
    if get_orchestrator().busy(name):
        raise ConflictError(f"{name!r} is already being built; wait for it to finish")
    rate_limit("build", count=False)
    _start_build(name, form.get("me") or chatbot.me)
    count_use("build")
    return schemas.detail(get_registry().get(name)).model_dump(mode="json"), 202


@documented(
    "Delete a chatbot and everything stored for it",
    ok={200: ("deleted", schemas.Deleted)},
    errors=[401, 404],
    security=OWNER_TOKEN,
)
@blueprint.delete("/api/chatbots/<name>")
def delete_chatbot(name: str):
    require_owner(name)
    get_orchestrator().delete(name)
    get_registry().delete(name)
    return schemas.Deleted(deleted=name).model_dump(mode="json")


# ---------------------------------------------------------------- model locations


def _model_location(name: str, password: str | None):
    chatbot = visible_chatbot(name, password)
    if not chatbot.servable:
        raise ConflictError(f"{name!r} has no model yet (phase {chatbot.phase.value})")
    # The version only: where it is stored (bucket, prefix, paths) is the operator's.
    location = schemas.ModelLocation(name=name, version=chatbot.model_version)
    return location.model_dump(mode="json")


MODEL_LOCATION = {200: ("where the model is", schemas.ModelLocation)}


@documented(
    "Model location of a chatbot (password header for protected ones)",
    ok=MODEL_LOCATION,
    errors=[401, 404, 409, 429],
    headers=[PASSWORD_HEADER],
)
@blueprint.get("/api/chatbots/<name>/model")
def get_model(name: str):
    return _model_location(name, request.headers.get("X-Chatbot-Password"))


@documented(
    "Model location, password in the JSON body",
    ok=MODEL_LOCATION,
    errors=[400, 401, 404, 409, 415, 422, 429],
    body=schemas.PasswordBody,
)
@blueprint.post("/api/chatbots/<name>/model")
def post_model(name: str):
    return _model_location(name, _json_body(schemas.PasswordBody).password)


@documented(
    "Alias: model location of a chatbot without a password",
    ok=MODEL_LOCATION,
    errors=[401, 404, 409, 429],
)
@blueprint.get("/getPublicModel/<name>")
def get_public_model(name: str):
    return _model_location(name, None)


@documented(
    "Alias: model location, name and password in the JSON body",
    ok=MODEL_LOCATION,
    errors=[400, 401, 404, 409, 415, 422, 429],
    body=schemas.GetModelBody,
)
@blueprint.post("/getModel")
def get_model_alias():
    body = _json_body(schemas.GetModelBody)
    return _model_location(body.name, body.password)


# ---------------------------------------------------------------- operations


def _backing_services_problem() -> None:
    """Ready when the registry and the storage answer (raising otherwise)."""
    get_registry().find("readyz-probe")
    get_storage().exists("readyz-probe")


@documented("Liveness", ok={200: ("alive", schemas.Health)})
@blueprint.get("/healthz")
def healthz():
    return {"status": "ok"}


@documented(
    "Readiness: registry and storage reachable (with the webhook: the page token works)",
    ok={200: ("ready", schemas.Health)},
    errors=[503],
)
@blueprint.get("/readyz")
def readyz():
    """Runs every component's check (`mimical.appkit.health`); why one fails goes to the log
    and to the metrics port's `/readyz` (operators), never to this public port."""
    problem = readiness_problem(current_app)
    if problem:
        current_app.logger.warning("not ready: %s", problem)
        return {"error": "unavailable", "message": "not ready"}, 503
    return {"status": "ok"}


@blueprint.get("/openapi.json")
def openapi():
    return openapi_document(current_app, request.script_root or "/")


@blueprint.get("/docs")
def docs():
    return render_template("api/docs.html", document=openapi_document(current_app))
