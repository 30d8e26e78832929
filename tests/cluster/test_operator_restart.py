"""The operator process dies and comes back; two replicas run at once.

State lives in each Chatbot's status and in deterministic Job names, so a restarted
operator resumes without a second Job; with two replicas, kopf's peering keeps one paused.
The two-replica test runs first: replicas that stop cleanly leave the peering object, a
killed one stays in it until its record expires.

Each test waits on what the API shows: the peering object, the operator's Events, the
Jobs, and kopf's record of what it last handled. A label put on the Chatbot while no
replica works on it turns up in that record only once a successor has resumed the
Chatbot: that is when a second Job would have appeared.
"""

from __future__ import annotations

import json

import boto3
import yaml

from tests.cluster.conftest import operator_process
from tests.cluster.kubelet import run_training_pod
from tests.cluster.test_chatbot_flow import chatbot_phase, get_json, training_pod

# Where kopf keeps a Chatbot's last handled state (mimical.kube.operator configures it).
LAST_HANDLED = "mimical.dev/last-handled-configuration"
# Put on a Chatbot while no replica works on it; recorded once one has taken it over.
HANDOVER_LABEL = "handover=successor"


def upload_corpus(release, name: str, corpus) -> str:
    """An already imported corpus in the bucket, as a Chatbot's source."""
    key = f"mimical/uploads/{name}/manual/corpus.jsonl"
    s3 = boto3.client("s3", endpoint_url=release.s3_endpoint, region_name="us-east-1")
    s3.upload_file(str(corpus), release.bucket, key)
    return f"s3://{release.bucket}/{key}"


def apply_chatbot(control_plane, namespace: str, name: str, source: str) -> None:
    body = {
        "apiVersion": "mimical.dev/v1alpha1",
        "kind": "Chatbot",
        "metadata": {"name": name},
        "spec": {"source": source, "public": True},
    }
    control_plane.kubectl(
        "apply", f"--namespace={namespace}", "--filename=-", stdin=yaml.safe_dump(body)
    )


def jobs_of(control_plane, namespace: str, name: str) -> list[str]:
    listing = get_json(control_plane, namespace, "jobs", f"--selector=mimical.dev/chatbot={name}")
    return [job["metadata"]["name"] for job in listing["items"]]


def delete_chatbot(control_plane, namespace: str, name: str) -> None:
    control_plane.kubectl("delete", "chatbot", name, f"--namespace={namespace}", "--wait=true")


def peers(control_plane, namespace: str) -> dict[str, dict]:
    """The replicas kopf records in the chart's peering object: identity -> record."""
    peering = get_json(control_plane, namespace, "kopfpeering", "mimical", check=False) or {}
    return peering.get("status") or {}


def training_events(control_plane, namespace: str, name: str) -> list[str]:
    """Messages of the Events the operator posted on creating a Chatbot's Job."""
    listing = get_json(
        control_plane,
        namespace,
        "events",
        f"--field-selector=involvedObject.name={name},reason=Training",
    )
    return [event["message"] for event in listing["items"]]


def last_handled(control_plane, namespace: str, name: str) -> dict | None:
    """What kopf recorded as the Chatbot's last fully handled labels, annotations and spec."""
    chatbot = get_json(control_plane, namespace, "chatbot", name, check=False) or {}
    recorded = (chatbot.get("metadata", {}).get("annotations") or {}).get(LAST_HANDLED)
    return json.loads(recorded) if recorded else None


def label_chatbot(control_plane, namespace: str, name: str, label: str) -> None:
    control_plane.kubectl("label", "chatbot", name, f"--namespace={namespace}", label)


def handled_with_label(control_plane, namespace: str, name: str, label: str) -> bool:
    """Whether an operator has handled the Chatbot since it got `label`.

    kopf records each object's last handled labels, annotations and spec in an annotation
    once every due handler has succeeded; on an operator's first sight of a Chatbot that
    includes its `resume` handler. A label added while no operator works is thus recorded
    only by the one that takes over, after it has resumed the Chatbot.
    """
    handled = last_handled(control_plane, namespace, name) or {}
    key, value = label.split("=")
    return (handled.get("metadata") or {}).get("labels", {}).get(key) == value


def test_two_replicas_one_active(control_plane, release, small_corpus, tmp_path):
    namespace, name = release.namespace, "dave"
    replicas = {}
    for identity in ("replica-0", "replica-1"):
        replica = operator_process(control_plane, release, tmp_path / identity)
        replica.env["POD_ID"] = identity  # kopf's name for it in the peering object
        replicas[identity] = replica.start()
    try:
        recorded = control_plane.wait_for(
            "both replicas in the peering object",
            lambda: (found := peers(control_plane, namespace)).keys() >= replicas.keys() and found,
        )
        priority = {identity: recorded[identity]["priority"] for identity in replicas}
        assert len(set(priority.values())) == 2, recorded
        active, standby = sorted(replicas, key=priority.get, reverse=True)
        # That the lower priority replica has paused shows in no API object, only in its log.
        control_plane.wait_for(
            "the standby replica to pause",
            lambda: "Pausing operations" in replicas[standby].output(),
        )
        apply_chatbot(control_plane, namespace, name, upload_corpus(release, name, small_corpus))
        control_plane.wait_for(
            "the active replica to create the Job",
            lambda: (
                training_events(control_plane, namespace, name)
                and last_handled(control_plane, namespace, name)
            ),
        )

        replicas[active].stop()
        control_plane.wait_for(
            "the stopped replica to leave the peering object",
            lambda: active not in peers(control_plane, namespace),
        )
        label_chatbot(control_plane, namespace, name, HANDOVER_LABEL)
        control_plane.wait_for(
            "the standby replica to take the chatbot over",
            lambda: handled_with_label(control_plane, namespace, name, HANDOVER_LABEL),
            timeout=120,
        )
        assert jobs_of(control_plane, namespace, name) == [f"{name}-train-1"]
        assert training_events(control_plane, namespace, name) == [f"created Job {name}-train-1"]
        delete_chatbot(control_plane, namespace, name)
    finally:
        for replica in replicas.values():
            replica.stop()


def test_killed_operator_resumes_without_a_second_job(
    control_plane, release, small_corpus, tmp_path
):
    namespace, name = release.namespace, "carol"
    first = operator_process(control_plane, release, tmp_path / "first").start()
    try:
        apply_chatbot(control_plane, namespace, name, upload_corpus(release, name, small_corpus))
        control_plane.wait_for(
            "the operator to create the Job",
            lambda: (
                jobs_of(control_plane, namespace, name)
                and last_handled(control_plane, namespace, name)
            ),
        )
        pod = control_plane.wait_for(
            "its pod", lambda: training_pod(control_plane, namespace, f"{name}-train-1")
        )
    finally:
        first.kill()
    label_chatbot(control_plane, namespace, name, HANDOVER_LABEL)  # while no operator runs

    second = operator_process(control_plane, release, tmp_path / "second").start()
    try:
        # The killed operator's peering record outlives it by its 60 s lifetime; if its
        # priority was higher, the new one waits that long before it resumes.
        control_plane.wait_for(
            "the restarted operator to resume the chatbot",
            lambda: handled_with_label(control_plane, namespace, name, HANDOVER_LABEL),
            timeout=150,
        )
        assert jobs_of(control_plane, namespace, name) == [f"{name}-train-1"]
        finished = run_training_pod(control_plane, pod, tmp_path / "pod")
        assert finished.returncode == 0, finished.stderr[-3000:]
        control_plane.wait_for(
            "phase Ready", lambda: chatbot_phase(control_plane, namespace, name) == "Ready"
        )
        assert jobs_of(control_plane, namespace, name) == [f"{name}-train-1"]
        assert training_events(control_plane, namespace, name) == [f"created Job {name}-train-1"]
        delete_chatbot(control_plane, namespace, name)
    finally:
        second.stop()
