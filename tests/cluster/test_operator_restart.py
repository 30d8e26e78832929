"""The operator process dies and comes back; two replicas run at once.

State lives in each Chatbot's status and in deterministic Job names, so a restarted
operator resumes without a second Job; with two replicas, kopf's peering keeps one paused.
The two-replica test runs first: replicas that stop cleanly leave the peering object, a
killed one stays in it until its record expires.
"""

from __future__ import annotations

import json
import time

import boto3
import yaml

from tests.cluster.conftest import operator_process
from tests.cluster.kubelet import run_training_pod
from tests.cluster.test_chatbot_flow import chatbot_phase, get_json, training_pod


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


def test_two_replicas_one_active(control_plane, release, small_corpus, tmp_path):
    namespace, name = release.namespace, "dave"
    replicas = [
        operator_process(control_plane, release, tmp_path / f"replica-{i}").start()
        for i in range(2)
    ]
    try:
        peering = control_plane.wait_for(
            "both replicas in the peering object",
            lambda: (
                (body := get_json(control_plane, namespace, "kopfpeering", "mimical", check=False))
                and len(body.get("status") or {}) == 2
                and body
            ),
        )
        priorities = {peer["priority"] for peer in peering["status"].values()}
        assert len(priorities) == 2, peering["status"]
        control_plane.wait_for(
            "one replica to pause",
            lambda: sum("Pausing operations" in r.output() for r in replicas) == 1,
        )
        apply_chatbot(control_plane, namespace, name, upload_corpus(release, name, small_corpus))
        control_plane.wait_for("the training Job", lambda: jobs_of(control_plane, namespace, name))
        time.sleep(2)  # room for a second, wrong Job
        assert jobs_of(control_plane, namespace, name) == [f"{name}-train-1"]
        handled = [r for r in replicas if "Handler 'train' succeeded" in r.output()]
        assert len(handled) == 1, [json.dumps(r.output()[-2000:]) for r in replicas]
        delete_chatbot(control_plane, namespace, name)
    finally:
        for replica in replicas:
            replica.stop()


def test_killed_operator_resumes_without_a_second_job(
    control_plane, release, small_corpus, tmp_path
):
    namespace, name = release.namespace, "carol"
    first = operator_process(control_plane, release, tmp_path / "first").start()
    try:
        apply_chatbot(control_plane, namespace, name, upload_corpus(release, name, small_corpus))
        control_plane.wait_for("the training Job", lambda: jobs_of(control_plane, namespace, name))
        pod = control_plane.wait_for(
            "its pod", lambda: training_pod(control_plane, namespace, f"{name}-train-1")
        )
    finally:
        first.kill()

    second = operator_process(control_plane, release, tmp_path / "second").start()
    try:
        # The killed operator's peering record outlives it by its 60 s lifetime; if its
        # priority was higher, the new one waits that long before it resumes.
        control_plane.wait_for(
            "the restarted operator to resume the chatbot",
            lambda: "Handler 'resume' succeeded" in second.output(),
            timeout=150,
        )
        assert jobs_of(control_plane, namespace, name) == [f"{name}-train-1"]
        finished = run_training_pod(control_plane, pod, tmp_path / "pod")
        assert finished.returncode == 0, finished.stderr[-3000:]
        control_plane.wait_for(
            "phase Ready", lambda: chatbot_phase(control_plane, namespace, name) == "Ready"
        )
        assert jobs_of(control_plane, namespace, name) == [f"{name}-train-1"]
        delete_chatbot(control_plane, namespace, name)
    finally:
        second.stop()
