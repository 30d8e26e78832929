"""The backend API's OpenAPI 3.1 document, derived from its routes.

Each documented view says what its route is for with `@documented(...)`: a
summary, the pydantic models of its request and responses (from
`mimical.web.api_schemas`), the errors it may answer, the headers it reads and
who may call it. Paths, methods and path parameters come from the app's URL
map, so the document served at `/openapi.json` lists exactly the routes that
exist, with the schemas the views validate and return.

    @documented("Delete a chatbot", ok={200: ("deleted", Deleted)}, errors=[401, 404])
    @blueprint.delete("/api/chatbots/<name>")
    def delete_chatbot(name): ...
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from mimical.chatbot import NAME_MAX_LENGTH, NAME_PATTERN, PASSWORD_MAX
from mimical.web.api_schemas import ErrorOut

if TYPE_CHECKING:
    from flask import Flask

ERRORS = {
    400: "malformed request",
    401: "missing or wrong password / owner token",
    403: "not allowed",
    404: "no such chatbot",
    409: "name taken, build running, or no model yet",
    413: "upload too large (or a zip bomb)",
    415: "not a chat export / wrong content type",
    422: "invalid field or broken export",
    429: "rate limited",
    503: "not ready",
}
# The schema of each path parameter, by its name in the route (`<name>`).
PATH_PARAMETERS = {
    "name": {
        "name": "name",
        "in": "path",
        "required": True,
        "schema": {"type": "string", "pattern": NAME_PATTERN.pattern, "maxLength": NAME_MAX_LENGTH},
    }
}
PASSWORD_HEADER = {
    "name": "X-Chatbot-Password",
    "in": "header",
    "required": False,
    "description": "password of a password-protected chatbot (never put it in the URL)",
    "schema": {"type": "string", "maxLength": PASSWORD_MAX},
}
OWNER_TOKEN = [{"ownerToken": []}]
SECURITY_SCHEMES = {
    "ownerToken": {
        "type": "http",
        "scheme": "bearer",
        "description": "the owner token returned once by POST /api/chatbots",
    }
}
_ROUTE_ARGUMENT = re.compile(r"<(?:[^:<>]+:)?([^<>]+)>")


@dataclass(frozen=True)
class UploadForm:
    """A multipart body: the `export` file plus the fields of `model` (or only `fields`)."""

    model: type[BaseModel]
    fields: tuple[str, ...] | None = None

    def content(self) -> dict:
        properties, required = _form_fields(self.model)
        if self.fields is not None:
            properties = {name: properties[name] for name in self.fields}
            required = [name for name in required if name in self.fields]
        export = {
            "type": "string",
            "contentMediaType": "application/octet-stream",
            "description": "the export: .zip, .json or .txt",
        }
        schema = {
            "type": "object",
            "required": ["export", *required],
            "properties": {"export": export, **properties},
            "additionalProperties": False,
        }
        encoding = {"export": {"contentType": "application/octet-stream"}}
        return {"multipart/form-data": {"schema": schema, "encoding": encoding}}


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


@dataclass(frozen=True)
class Operation:
    """What the document says about one view, beside what its route already says."""

    summary: str
    ok: dict[int, tuple[str, type[BaseModel]]]
    errors: tuple[int, ...] = ()
    body: type[BaseModel] | UploadForm | None = None  # a model: a JSON body
    headers: tuple[dict, ...] = ()
    security: list[dict] | None = None

    def models(self) -> set[type[BaseModel]]:
        """The pydantic models this operation refers to, for `components/schemas`."""
        models = {model for _, model in self.ok.values()}
        if isinstance(self.body, UploadForm):
            models.add(self.body.model)
        elif self.body is not None:
            models.add(self.body)
        return models | ({ErrorOut} if self.errors else set())

    def document(self, path_arguments: list[str]) -> dict:
        operation: dict = {"summary": self.summary}
        parameters = [PATH_PARAMETERS[name] for name in path_arguments] + list(self.headers)
        if parameters:
            operation["parameters"] = parameters
        if self.security is not None:
            operation["security"] = self.security
        if isinstance(self.body, UploadForm):
            operation["requestBody"] = {"required": True, "content": self.body.content()}
        elif self.body is not None:
            operation["requestBody"] = {"required": True, "content": _json(self.body)}
        responses = {str(status): {"description": text} for status, (text, _) in self.ok.items()}
        for status, (_, model) in self.ok.items():
            responses[str(status)]["content"] = _json(model)
        # A name outside its pattern is refused before the view (`create_app`): 422.
        errors = {*self.errors, *((422,) if "name" in path_arguments else ())}
        for status in sorted(errors):
            responses[str(status)] = {"description": ERRORS[status], "content": _json(ErrorOut)}
        operation["responses"] = responses
        return operation


def documented(
    summary: str,
    *,
    ok: dict[int, tuple[str, type[BaseModel]]],
    errors: Iterable[int] = (),
    body: type[BaseModel] | UploadForm | None = None,
    headers: Iterable[dict] = (),
    security: list[dict] | None = None,
) -> Callable:
    """Put this view's routes in the OpenAPI document, as `summary`.

    `ok` maps success statuses to (description, response model); `errors` lists the
    error statuses it may answer (each with an `ErrorOut` body); `body` is the JSON
    model or `UploadForm` it reads; `headers` are OpenAPI header parameters;
    `security` its OpenAPI security requirements (None: anyone).
    """
    operation = Operation(summary, ok, tuple(errors), body, tuple(headers), security)

    def decorator(view: Callable) -> Callable:
        view.openapi = operation
        return view

    return decorator


def _json(model: type[BaseModel]) -> dict:
    return {"application/json": {"schema": {"$ref": f"#/components/schemas/{model.__name__}"}}}


def documented_routes(app: Flask) -> Iterable[tuple[str, str, list[str], Operation]]:
    """(OpenAPI path, method, path arguments, operation) of every documented route."""
    for rule in app.url_map.iter_rules():
        operation = getattr(app.view_functions[rule.endpoint], "openapi", None)
        if operation is None:
            continue
        arguments = _ROUTE_ARGUMENT.findall(rule.rule)
        path = _ROUTE_ARGUMENT.sub(r"{\1}", rule.rule)
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            yield path, method.lower(), arguments, operation


def openapi_document(app: Flask, server_url: str = "/") -> dict:
    paths: dict[str, dict] = {}
    models: set[type[BaseModel]] = set()
    for path, method, arguments, operation in documented_routes(app):
        paths.setdefault(path, {})[method] = operation.document(arguments)
        models |= operation.models()
    _, definitions = models_json_schema(
        [(model, "serialization") for model in sorted(models, key=lambda model: model.__name__)],
        ref_template="#/components/schemas/{model}",
    )
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "mimical backend API",
            "version": "1",
            "description": "Create chatbots from chat exports and find their models.",
        },
        "servers": [{"url": server_url}],
        "paths": paths,
        "components": {"schemas": definitions["$defs"], "securitySchemes": SECURITY_SCHEMES},
    }
