"""Property-based conformance: the API answers what /openapi.json promises, never a 5xx.

schemathesis generates requests from the OpenAPI document for every operation
(a bounded number of examples each) against one app holding a public and a
private chatbot, and checks status codes, content types and response schemas.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import positive_data_acceptance

from mimical.config import Settings
from mimical.registry import Phase
from mimical.web import create_app
from mimical.web.resources import close_resources, get_registry, get_storage
from tests.api.conftest import TEST_CONFIG

EXAMPLES_PER_OPERATION = 40


def _conformance_app():
    """The app under test, built at collection (schemathesis reads its document then)."""
    home = Path(tempfile.mkdtemp(prefix="mimical-schemathesis-"))
    app = create_app(
        Settings(home=home, upload_max_bytes=1024 * 1024),
        components=["api"],
        test_config=TEST_CONFIG,
    )
    with app.app_context():
        registry, storage = get_registry(), get_storage()
        for name, public, password in (("alice", True, None), ("bob", False, "pw")):
            registry.create(name, public=public, password=password)
            storage.put_bytes(f"models/{name}/1/saved_model.pb", b"graph")
            registry.update_status(name, phase=Phase.READY, model_version=1, add_version=1)
    return app, home


APP, HOME = _conformance_app()
schema = schemathesis.openapi.from_wsgi("/openapi.json", APP)


@pytest.fixture(scope="module", autouse=True)
def _cleanup():
    yield
    close_resources(APP)
    shutil.rmtree(HOME, ignore_errors=True)


@schema.parametrize()
@settings(
    max_examples=EXAMPLES_PER_OPERATION,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
def test_api_conforms_to_its_openapi_document(case):
    excluded = []
    if case.media_type == "multipart/form-data":
        # A schema can say "a file", not "a chat export": random bytes are rightly refused
        # (413/415/422), so "schema-valid data must be accepted" does not apply to uploads.
        excluded.append(positive_data_acceptance)
    case.call_and_validate(excluded_checks=excluded)
