"""A retrain whose version never loads (a broken export) does not take the persona offline:
the old version answers while the new one is tried, the operator gives up on it at the
chart's load deadline, and a model-server pod started afterwards loads the old version.

The release's real operator, model mirror and model server (`mimical serve-models`,
TF Serving's gRPC protocol) on the real control plane; the first version is trained for
real by the tests' kubelet, the second is a Job whose pod uploads a version that cannot
be loaded.
"""

from __future__ import annotations

import uuid

import boto3

from mimical.serving.client import ModelClient
from mimical.testing.release import Release
from tests.cluster.conftest import (
    IRSA_VALUE_KEY,
    TRAINING_ROLE,
    helm_install,
    model_pod,
    operator_process,
    restricted_namespace,
)
from tests.cluster.kubelet import _core, bind, now, report_exit
from tests.cluster.test_chatbot_flow import (
    answers,
    chatbot_phase,
    get_json,
    served_models,
    train,
    training_pod,
)
from tests.cluster.test_operator_restart import apply_chatbot, upload_corpus

# The chart's smallest `operator.loadDeadlineSeconds`.
LOAD_DEADLINE = 60


def upload_broken_version(release: Release, name: str, version: int) -> None:
    """What a Job that went wrong uploads: the files of a version, none of them loadable."""
    s3 = boto3.client("s3", endpoint_url=release.s3_endpoint, region_name="us-east-1")
    prefix = f"mimical/models/{name}/{version}/"
    s3.put_object(Bucket=release.bucket, Key=prefix + "variables/variables.index", Body=b"x")
    s3.put_object(Bucket=release.bucket, Key=prefix + "saved_model.pb", Body=b"not a model")


def served_condition(control_plane, namespace: str, name: str) -> dict:
    chatbot = get_json(control_plane, namespace, "chatbot", name, check=False) or {}
    conditions = chatbot.get("status", {}).get("conditions", [])
    return next((c for c in conditions if c["type"] == "Served"), {})


def test_a_broken_retrain_keeps_the_old_version_answering_through_a_model_server_restart(
    control_plane, helm_binary, s3_endpoint, small_corpus, tmp_path
):
    bucket = f"broken-{uuid.uuid4().hex[:10]}"
    boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1").create_bucket(
        Bucket=bucket
    )
    namespace = restricted_namespace(control_plane, "broken")
    values = {
        "storage.bucket": bucket,
        "storage.prefix": "mimical",
        "storage.endpoint": s3_endpoint,
        f"training.serviceAccount.annotations.{IRSA_VALUE_KEY}": TRAINING_ROLE,
        "operator.loadDeadlineSeconds": LOAD_DEADLINE,
    }
    helm_install(control_plane, helm_binary, namespace, **values)
    installed = Release(namespace, bucket, s3_endpoint)
    name = "nora"
    with model_pod(control_plane, installed, tmp_path / "model-pod") as model_server:
        release = Release(namespace, bucket, s3_endpoint, model_server)
        operator = operator_process(control_plane, release, tmp_path / "operator").start()
        client = ModelClient(model_server)
        try:
            apply_chatbot(
                control_plane, namespace, name, upload_corpus(release, name, small_corpus)
            )
            train(control_plane, release, name, f"{name}-train-1", tmp_path / "train-1")
            control_plane.wait_for(
                "version 1 Ready",
                lambda: chatbot_phase(control_plane, namespace, name) == "Ready",
                timeout=300,
            )

            # A retrain whose Job succeeds with a version nothing can load.
            patch = '{"spec": {"training": {"epochs": 2}}}'
            control_plane.kubectl(
                "patch", "chatbot", name, f"--namespace={namespace}", "--type=merge", f"-p={patch}"
            )
            job = f"{name}-train-2"
            pod = control_plane.wait_for(
                f"the pod of Job {job}", lambda: training_pod(control_plane, namespace, job)
            )
            core = _core(control_plane)
            bind(core, pod)
            started = now()
            upload_broken_version(release, name, 2)
            report_exit(core, pod, 0, started)

            # Listed beside the version that answers, which keeps answering meanwhile.
            control_plane.wait_for(
                "both versions listed",
                lambda: served_models(control_plane, namespace) == {name: [1, 2]},
            )
            assert client.status(name) == 1
            assert isinstance(client.reply(name, "still there?", timeout=120), str)

            # Past the deadline: back to version 1, the broken one off the list.
            control_plane.wait_for(
                "the load deadline",
                lambda: (
                    served_condition(control_plane, namespace, name).get("reason") == "LoadTimeout"
                ),
                timeout=LOAD_DEADLINE + 180,
            )
            status = get_json(control_plane, namespace, "chatbot", name)["status"]
            assert (status["phase"], status["servedVersion"]) == ("Ready", 1)
            assert served_models(control_plane, namespace) == {name: [1]}
            events = get_json(
                control_plane, namespace, "events", f"--field-selector=involvedObject.name={name}"
            )["items"]
            assert any(e["reason"] == "LoadTimeout" and e["type"] == "Warning" for e in events)
        finally:
            client.close()
            operator.stop()

    # A model-server pod started now (a drain, a rollout) loads what the list names.
    with model_pod(control_plane, installed, tmp_path / "restarted-pod") as restarted:
        client = ModelClient(restarted)
        try:
            control_plane.wait_for(f"{name} to answer", lambda: answers(client, name), timeout=300)
            assert client.status(name) == 1
            assert isinstance(client.reply(name, "hello again", timeout=120), str)
        finally:
            client.close()
