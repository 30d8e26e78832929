"""Malformed Chatbots are refused by the API server itself, with the CRD schema's messages.

These are the messages a `kubectl apply` user sees (kubectl asks for strict field
validation, so unknown fields are errors, not warnings).
"""

from __future__ import annotations

import pytest
import yaml

from mimical.config import DEFAULT_TRAINING_MINUTES
from tests.cluster.conftest import restricted_namespace

SOURCE = "s3://mimical-models/uploads/alice/1/export.zip"


@pytest.fixture(scope="module")
def namespace(control_plane, release) -> str:  # release: the chart installed the CRD
    return restricted_namespace(control_plane, "schema")


def apply(control_plane, namespace: str, name: str, spec: dict):
    body = {
        "apiVersion": "mimical.dev/v1alpha1",
        "kind": "Chatbot",
        "metadata": {"name": name},
        "spec": spec,
    }
    return control_plane.kubectl(
        "apply",
        f"--namespace={namespace}",
        "--filename=-",
        stdin=yaml.safe_dump(body),
        check=False,
    )


@pytest.mark.parametrize(
    ("name", "spec", "message"),
    [
        (
            "alice",
            {"source": SOURCE, "public": "yes"},
            'spec.public: Invalid value: "string": spec.public in body must be of type boolean',
        ),
        (
            "alice",
            {"source": SOURCE, "training": {"maxMinutes": "ten"}},
            'spec.training.maxMinutes: Invalid value: "string": '
            "spec.training.maxMinutes in body must be of type number",
        ),
        (
            "alice",
            {"source": SOURCE, "training": {"maxMinutes": 0}},
            "spec.training.maxMinutes should be at least 0.1",
        ),
        (
            "alice",
            {"source": "http://example.com/export.zip"},
            "spec.source in body should match '^s3://",
        ),
        ("alice", {"source": SOURCE, "trainng": {"epochs": 3}}, 'unknown field "spec.trainng"'),
        ("a" * 41, {"source": SOURCE}, "a Chatbot name has at most 40 characters"),
    ],
    ids=[
        "public-not-boolean",
        "minutes-not-integer",
        "minutes-zero",
        "source-not-s3",
        "unknown-field",
        "name-too-long",
    ],
)
def test_malformed_chatbot_is_refused(control_plane, namespace, name, spec, message):
    result = apply(control_plane, namespace, name, spec)
    assert result.returncode != 0, result.stdout
    assert message in result.stderr, result.stderr
    stored = control_plane.kubectl("get", "chatbot", name, f"--namespace={namespace}", check=False)
    assert "NotFound" in stored.stderr


def test_a_well_formed_chatbot_gets_the_schema_defaults(control_plane, namespace):
    result = apply(control_plane, namespace, "a" * 40, {"source": SOURCE})
    assert result.returncode == 0, result.stderr
    stored = yaml.safe_load(
        control_plane.kubectl(
            "get", "chatbot", "a" * 40, f"--namespace={namespace}", "-o=yaml"
        ).stdout
    )
    assert stored["spec"]["public"] is False
    assert stored["spec"]["training"] == {"maxMinutes": DEFAULT_TRAINING_MINUTES, "gpu": 0}
