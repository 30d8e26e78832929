"""One phase vocabulary: the API, the CRD, the operator and the extension say what `Phase`
and `Step` (`mimical.chatbot`) say.

Each of them spells the words in its own language (an OpenAPI enum, a CRD schema, a
status patch, a JavaScript list), so these tests read each one and compare it with the
enums: a phase added or renamed in one place and not the others fails here.
"""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from mimical.chatbot import BUILD_PHASES, OPERATOR_PHASES, STEP_PHASES, Phase, Step, step_of
from mimical.kube import status

ROOT = Path(__file__).parents[2]
CRD_FILE = ROOT / "charts/mimical/crds/chatbots.mimical.dev.yaml"
STATUS_JS = ROOT / "extension/lib/status.js"


def test_the_api_publishes_every_phase_in_order():
    from flask import Flask

    from mimical.web import api
    from mimical.web.openapi import openapi_document

    routes = Flask(__name__)
    routes.register_blueprint(api.blueprint)
    published = openapi_document(routes)["components"]["schemas"]["Phase"]["enum"]
    assert published == [phase.value for phase in Phase]


def test_the_crd_allows_exactly_the_operators_phases():
    crd = yaml.safe_load(CRD_FILE.read_text())
    schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    enum = schema["properties"]["status"]["properties"]["phase"]["enum"]
    assert enum == [phase.value for phase in OPERATOR_PHASES]


def test_the_operators_status_patches_use_its_phases_and_steps():
    trained = status.training_succeeded({}, 1, 3, "s3://b/models/alice", "tfserving:8500", {})
    patches = [
        status.waiting_for_source({}, 1),
        status.training_started({}, 1, "alice-train-1"),
        trained,
        status.model_served(trained, "tfserving:8500"),
        status.training_failed({}, 1, "BadExport", "corrupt JSON"),
        status.spec_invalid({}, 1, "bad source"),
    ]
    for patch in patches:
        assert patch["phase"] in OPERATOR_PHASES
        assert Step(patch["progress"]["step"]) in Step


def test_every_step_of_a_running_build_maps_to_a_build_phase():
    assert {step_of(phase) for phase in BUILD_PHASES} <= set(STEP_PHASES)
    assert set(STEP_PHASES.values()) == set(BUILD_PHASES)


def test_the_extension_knows_every_phase_and_no_other():
    source = STATUS_JS.read_text()
    listed = re.search(r"export const PHASES = \[([^\]]*)\]", source)
    assert listed, "extension/lib/status.js no longer exports PHASES"
    assert re.findall(r'"(\w+)"', listed.group(1)) == [phase.value for phase in Phase]
    labels = re.search(r"const PHASE_LABELS = \{([^}]*)\}", source)
    assert labels, "extension/lib/status.js no longer has PHASE_LABELS"
    assert re.findall(r"^\s*(\w+):", labels.group(1), re.M) == [phase.value for phase in Phase]
    compared = set(re.findall(r'phase === "(\w+)"', source))
    assert compared and compared <= {phase.value for phase in Phase}
