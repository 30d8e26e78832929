"""Property-based conformance: the API answers what /openapi.json promises, never a 5xx.

schemathesis generates requests from the OpenAPI document for every operation
(a bounded number of examples each) against one app holding a public and a
private chatbot, and checks status codes, content types and response schemas.
The owner-only drafts and away window are called as their owner (a chatbot still
training, so drafts stop at 409 after the body is read): generated tokens would
only ever meet the 401.
"""

from __future__ import annotations

import re

import pytest
import schemathesis
from flask import Flask
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import ignored_auth, positive_data_acceptance

from mimical.app import create_app
from mimical.appkit.resources import close_resources, get_registry, get_storage
from mimical.chatbot import Phase
from mimical.config import Settings
from mimical.web.openapi import openapi_document
from tests.api.conftest import TEST_CONFIG, TEST_LIMITS

EXAMPLES_PER_OPERATION = 40
COMPONENTS = ["api", "suggestions", "away"]
OWNER_PATHS = ("/api/chatbots/{name}/suggestions", "/api/chatbots/{name}/away")


def api_routes() -> Flask:
    """An app with the API component's routes; creating it opens no resource."""
    return create_app(Settings(), components=COMPONENTS, test_config=TEST_CONFIG)


# The document comes from the routes alone, so collection needs no running app; each
# case calls the fixture's.
DOCUMENT = openapi_document(api_routes())
schema = schemathesis.openapi.from_dict(DOCUMENT)


@pytest.fixture(scope="module")
def conformance_app(tmp_path_factory):
    """One app holding a public and a private chatbot, that every generated case calls."""
    settings = Settings(
        home=tmp_path_factory.mktemp("schemathesis"), upload_max_bytes=1024**2, **TEST_LIMITS
    )
    app = create_app(settings, components=COMPONENTS, test_config=TEST_CONFIG)
    with app.app_context():
        registry, storage = get_registry(), get_storage()
        for name, public, password in (("alice", True, None), ("bob", False, "pw")):
            registry.create(name, public=public, password=password)
            storage.put_bytes(f"models/{name}/1/saved_model.pb", b"graph")
            registry.update_status(name, phase=Phase.READY, model_version=1, add_version=1)
        app.config["CAROL_TOKEN"] = registry.create("carol", public=False, password="pw")[1]
        registry.update_status("carol", phase=Phase.TRAINING, progress=0.5)
    yield app
    close_resources(app)


def test_served_document_is_the_tested_one(conformance_app):
    assert conformance_app.test_client().get("/openapi.json").get_json() == DOCUMENT


def test_every_route_but_the_document_is_documented():
    served = {
        (re.sub(r"<(\w+)>", r"{\1}", rule.rule), method.lower())
        for rule in api_routes().url_map.iter_rules()
        if rule.endpoint != "static"
        for method in rule.methods - {"HEAD", "OPTIONS"}
    }
    documented = {(path, method) for path, ops in DOCUMENT["paths"].items() for method in ops}
    assert documented <= served
    assert served - documented == {("/openapi.json", "get"), ("/docs", "get")}


# One test per operation, named after it ("GET /api/chatbots"): unique test ids, so
# pytest-xdist schedules (and reports) every operation.
OPERATIONS = [result.ok() for result in schema.get_all_operations()]


@pytest.mark.parametrize("operation", OPERATIONS, ids=lambda operation: operation.label)
def test_api_conforms_to_its_openapi_document(operation, conformance_app):
    @given(case=operation.as_strategy())
    @settings(
        max_examples=EXAMPLES_PER_OPERATION,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def check(case):
        excluded = []
        if case.media_type == "multipart/form-data":
            # A schema can say "a file", not "a chat export": random bytes are rightly
            # refused (413/415/422), so "schema-valid data must be accepted" does not
            # apply to uploads.
            excluded.append(positive_data_acceptance)
        if operation.path in OWNER_PATHS:
            case.path_parameters = {"name": "carol"}
            token = conformance_app.config["CAROL_TOKEN"]
            case.headers = {**(case.headers or {}), "Authorization": f"Bearer {token}"}
            # It would send the owner's request again without the token, outside the
            # app; tests/api/test_away.py and test_suggestions.py check the 401s.
            excluded.append(ignored_auth)
            # Any time with a zone fits the schema; only the next 7 days open a window.
            if operation.method.upper() == "PUT":
                excluded.append(positive_data_acceptance)
        case.call_and_validate(app=conformance_app, excluded_checks=excluded)

    check()
