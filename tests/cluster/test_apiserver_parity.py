"""The API server emulator (`mimical.testing.apiserver`) answers as a real API server does.

The operator tests (tests/kube) and the operator benchmark run against kmock's emulator
plus what `ApiServer` adds to it: metadata stamping, generation counting, CRD schema
validation and defaulting, `status` as a subresource, optimistic locking and label
selectors. Each behaviour here sends the same plain HTTP requests to the emulator and to
the real kube-apiserver of the `control_plane` fixture and compares what comes back, so
the emulator cannot drift from the contract it stands in for.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import pytest
import requests

from mimical.kube import API_VERSION, KIND
from mimical.testing.apiserver import ApiServerThread, load_crd
from tests.cluster.conftest import CHART
from tests.cluster.test_lifecycle import CRD_UPGRADE

NAMESPACE = "parity"
SOURCE = "s3://mimical-models/uploads/parity/1/export.zip"
MERGE_PATCH = {"Content-Type": "application/merge-patch+json"}


@dataclasses.dataclass
class Api:
    """Chatbots of one namespace of one API server, over plain HTTP."""

    url: str
    http: requests.Session

    def chatbots(self, name: str = "", subresource: str = "") -> str:
        tail = "/".join(part for part in (name, subresource) if part)
        return f"{self.url}/apis/{API_VERSION}/namespaces/{NAMESPACE}/chatbots/{tail}".rstrip("/")

    def create(self, name: str, spec: dict | None = None, **metadata) -> requests.Response:
        body = {"apiVersion": API_VERSION, "kind": KIND, "metadata": {"name": name, **metadata}}
        if spec is not None:
            body["spec"] = spec
        return self.http.post(self.chatbots(), json=body, timeout=30)

    def create_body(self, body: dict) -> requests.Response:
        return self.http.post(self.chatbots(), json=body, timeout=30)

    def get(self, name: str) -> dict | None:
        response = self.http.get(self.chatbots(name), timeout=30)
        return response.json() if response.status_code == 200 else None

    def patch(self, name: str, body: dict, subresource: str = "") -> requests.Response:
        return self.http.patch(
            self.chatbots(name, subresource), json=body, headers=MERGE_PATCH, timeout=30
        )

    def names(self, selector: str) -> list[str]:
        response = self.http.get(self.chatbots(), params={"labelSelector": selector}, timeout=30)
        response.raise_for_status()
        return sorted(item["metadata"]["name"] for item in response.json()["items"])


@pytest.fixture(scope="module")
def real_api(control_plane) -> Api:
    """The control plane's API server as admin, with the chart's CRD and a namespace."""
    control_plane.kubectl(*CRD_UPGRADE, f"--filename={CHART / 'crds'}")
    control_plane.kubectl(
        "wait", "--for=condition=Established", "crd/chatbots.mimical.dev", "--timeout=60s"
    )
    control_plane.kubectl("create", "namespace", NAMESPACE)
    http = requests.Session()
    http.trust_env = False  # else REQUESTS_CA_BUNDLE overrides the session's own CA
    http.verify = str(control_plane.pki["ca.crt"])
    http.cert = (str(control_plane.pki["admin.crt"]), str(control_plane.pki["admin.key"]))
    return Api(control_plane.url, http)


@pytest.fixture(scope="module")
def emulated_api() -> Iterator[Api]:
    with ApiServerThread([load_crd()]) as server:
        yield Api(server.url, requests.Session())


# Behaviours: each sends its requests to one API server and returns what it observed.
# Each uses names of its own, so all of them share one namespace per server.


def create_stamps_metadata(api: Api) -> dict:
    created = api.create("stamped", {"source": SOURCE})
    again = api.create("stamped", {"source": SOURCE})
    meta = created.json()["metadata"]
    return {
        "created": created.status_code,
        "again": again.status_code,
        "uid": bool(meta.get("uid")),
        "namespace": meta.get("namespace"),
        "generation": meta.get("generation"),
        "resourceVersion": bool(meta.get("resourceVersion")),
        "creationTimestamp": bool(meta.get("creationTimestamp")),
        "stored": api.get("stamped")["metadata"]["uid"] == meta.get("uid"),
    }


def generate_name(api: Api) -> dict:
    created = api.create("", {"source": SOURCE}, generateName="generated-")
    name = created.json()["metadata"]["name"]
    return {
        "created": created.status_code,
        "prefixed": name.startswith("generated-") and len(name) > len("generated-"),
        "stored": api.get(name) is not None,
    }


def schema_defaults(api: Api) -> dict:
    api.create("defaulted", {"source": SOURCE})
    return api.get("defaulted")["spec"]


def generation_counts_spec_changes(api: Api) -> list:
    """Generation and whether resourceVersion moved, after each kind of write."""
    api.create("counted", {"source": SOURCE, "public": True})
    writes = [
        ({"metadata": {"labels": {"tier": "web"}}}, ""),
        ({"spec": {"public": False}}, ""),
        ({"spec": {"public": False}}, ""),  # the same value again: nothing changes
        ({"status": {"phase": "Training"}}, "status"),
    ]
    outcomes = []
    before = api.get("counted")["metadata"]["resourceVersion"]
    for body, subresource in writes:
        response = api.patch("counted", body, subresource)
        meta = response.json()["metadata"]
        outcomes.append(
            (response.status_code, meta["generation"], meta["resourceVersion"] != before)
        )
        before = meta["resourceVersion"]
    return outcomes


INVALID_SPECS = {
    "public-not-boolean": {"source": SOURCE, "public": "yes"},
    "minutes-zero": {"source": SOURCE, "training": {"maxMinutes": 0}},
    "source-not-s3": {"source": "http://example.com/export.zip"},
    "no-spec": None,
}


def invalid_chatbot_is_refused(api: Api) -> dict:
    outcomes = {}
    for index, (case, spec) in enumerate(INVALID_SPECS.items()):
        name = f"invalid-{index}"
        outcomes[case] = (api.create(name, spec).status_code, api.get(name) is None)
    return outcomes


def invalid_patch_is_refused(api: Api) -> dict:
    api.create("patched", {"source": SOURCE, "public": True})
    refused = api.patch("patched", {"spec": {"training": {"maxMinutes": 0}}})
    stored = api.get("patched")
    return {
        "code": refused.status_code,
        "spec": stored["spec"],
        "generation": stored["metadata"]["generation"],
    }


def status_is_a_subresource(api: Api) -> dict:
    """Status written with the object is dropped; spec written via /status is dropped."""
    body = {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": {"name": "statused"},
        "spec": {"source": SOURCE, "public": True},
        "status": {"phase": "Ready"},
    }
    created = api.create_body(body)
    on_create = (created.status_code, api.get("statused").get("status"))
    via_main = api.patch("statused", {"status": {"phase": "Ready"}})
    on_main = (via_main.status_code, api.get("statused").get("status"))
    via_status = api.patch(
        "statused", {"spec": {"public": False}, "status": {"phase": "Training"}}, "status"
    )
    stored = api.get("statused")
    return {
        "create": on_create,
        "main": on_main,
        "status": (via_status.status_code, stored["status"], stored["spec"]["public"]),
    }


def stale_write_conflicts(api: Api) -> dict:
    created = api.create("locked", {"source": SOURCE}).json()
    stale = created["metadata"]["resourceVersion"]
    first = api.patch("locked", {"metadata": {"resourceVersion": stale, "labels": {"a": "1"}}})
    second = api.patch("locked", {"metadata": {"resourceVersion": stale, "labels": {"a": "2"}}})
    return {
        "first": first.status_code,
        "second": second.status_code,
        "labels": api.get("locked")["metadata"]["labels"],
    }


SELECTORS = (
    "tier=web",
    "tier==web",
    "tier=web,team=x",
    "tier!=web",
    "tier",
    "!tier",
    "tier in (web,db)",
    "tier notin (web)",
    "tier,team notin (y)",
)


def label_selector_filters_lists(api: Api) -> dict:
    labelled = {
        "select-a": {"tier": "web", "team": "x", "selecting": "yes"},
        "select-b": {"tier": "web", "selecting": "yes"},
        "select-c": {"tier": "db", "team": "y", "selecting": "yes"},
        "select-d": {"selecting": "yes"},
    }
    for name, labels in labelled.items():
        api.create(name, {"source": SOURCE}, labels=labels)
    return {selector: api.names(f"selecting=yes,{selector}") for selector in SELECTORS}


def unparseable_selector_is_refused(api: Api) -> dict:
    """A selector the server cannot read is a 400, never an unfiltered list."""
    answers = {}
    for selector in ("tier in web", "tier notin (web", "=web"):
        response = api.http.get(api.chatbots(), params={"labelSelector": selector}, timeout=30)
        answers[selector] = response.status_code
    return answers


BEHAVIOURS = (
    create_stamps_metadata,
    generate_name,
    schema_defaults,
    generation_counts_spec_changes,
    invalid_chatbot_is_refused,
    invalid_patch_is_refused,
    status_is_a_subresource,
    stale_write_conflicts,
    label_selector_filters_lists,
    unparseable_selector_is_refused,
)


@pytest.mark.parametrize("behaviour", BEHAVIOURS, ids=lambda behaviour: behaviour.__name__)
def test_emulator_answers_like_the_real_api_server(behaviour, real_api, emulated_api):
    assert behaviour(emulated_api) == behaviour(real_api)
