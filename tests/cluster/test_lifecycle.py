"""A release's whole life as an admin lives it: install, a trained chatbot, `helm upgrade`
with a changed CRD (the documented step), `helm rollback`, a deleted model ConfigMap, and
`helm uninstall` with the namespace deleted after it (no finalizer left stuck).

The served-model list must keep saying what the Chatbots say through all of it: the
operator rebuilds it from them (it is no chart object any more).
"""

from __future__ import annotations

import json
import subprocess
import uuid

import boto3
import yaml

from mimical.testing.release import FULLNAME, Release
from tests.cluster.conftest import (
    CHART,
    IRSA_VALUE_KEY,
    RELEASE,
    TRAINING_ROLE,
    helm_install,
    model_pod,
    operator_process,
    restricted_namespace,
)
from tests.cluster.test_chatbot_flow import chatbot_phase, get_json, served_models, train
from tests.cluster.test_operator_restart import apply_chatbot, upload_corpus

# The documented step before `helm upgrade` when the chart's CRD changed (README).
CRD_UPGRADE = ("apply", "--server-side", "--force-conflicts", "--field-manager=mimical-crds")


def helm(control_plane, helm_binary, namespace: str, *args: str) -> str:
    command = [
        helm_binary,
        *args,
        f"--namespace={namespace}",
        f"--kubeconfig={control_plane.admin_kubeconfig}",
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    return result.stdout


def changed_crd(tmp_path) -> str:
    """The chart's Chatbot CRD as a next chart version might ship it: one more column."""
    crd = yaml.safe_load((CHART / "crds" / "chatbots.mimical.dev.yaml").read_text())
    columns = crd["spec"]["versions"][0]["additionalPrinterColumns"]
    columns.insert(3, {"name": "Job", "type": "string", "jsonPath": ".status.trainingJob"})
    path = tmp_path / "crds"
    path.mkdir()
    (path / "chatbots.mimical.dev.yaml").write_text(yaml.safe_dump(crd))
    return str(path)


def test_upgrade_rollback_and_uninstall_keep_serving_then_leave_nothing_stuck(
    control_plane, helm_binary, s3_endpoint, small_corpus, tmp_path
):
    bucket = f"life-{uuid.uuid4().hex[:10]}"
    boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1").create_bucket(
        Bucket=bucket
    )
    namespace = restricted_namespace(control_plane, "life")
    values = {
        "storage.bucket": bucket,
        "storage.prefix": "mimical",
        "storage.endpoint": s3_endpoint,
        f"training.serviceAccount.annotations.{IRSA_VALUE_KEY}": TRAINING_ROLE,
    }
    helm_install(control_plane, helm_binary, namespace, **values)
    installed = Release(namespace, bucket, s3_endpoint)
    with model_pod(control_plane, installed, tmp_path / "model-pod") as model_server:
        release = Release(namespace, bucket, s3_endpoint, model_server)
        operator = operator_process(control_plane, release, tmp_path / "operator").start()
        try:
            name = "lena"
            source = upload_corpus(release, name, small_corpus)
            apply_chatbot(control_plane, namespace, name, source)
            job = control_plane.wait_for(
                "the training Job",
                lambda: (
                    get_json(control_plane, namespace, "chatbot", name).get("status") or {}
                ).get("trainingJob"),
            )
            train(control_plane, release, name, job, tmp_path)
            control_plane.wait_for(
                "phase Ready", lambda: chatbot_phase(control_plane, namespace, name) == "Ready"
            )
            assert served_models(control_plane, namespace) == {name: [1]}

            # A new chart version with a changed CRD: the documented step, then the upgrade.
            control_plane.kubectl(*CRD_UPGRADE, f"--filename={changed_crd(tmp_path)}")
            helm(
                control_plane,
                helm_binary,
                namespace,
                "upgrade",
                RELEASE,
                str(CHART),
                "--reset-then-reuse-values",
                "--set=backend.replicaCount=3",
            )
            header = control_plane.kubectl("get", "chatbots", f"--namespace={namespace}").stdout
            columns = ["NAME", "PUBLIC", "PHASE", "VERSION", "JOB", "SERVED", "AGE"]
            assert header.split()[:7] == columns
            assert served_models(control_plane, namespace) == {name: [1]}

            helm(control_plane, helm_binary, namespace, "rollback", RELEASE, "1")
            history = json.loads(
                helm(control_plane, helm_binary, namespace, "history", RELEASE, "--output=json")
            )
            assert [entry["status"] for entry in history][-1] == "deployed"
            assert served_models(control_plane, namespace) == {name: [1]}

            # Whatever replaces or removes the list, the operator writes it again.
            configmap = f"{FULLNAME}-tfserving-models"
            control_plane.kubectl("delete", "configmap", configmap, f"--namespace={namespace}")
            control_plane.wait_for(
                "the model list to be rebuilt",
                lambda: (
                    get_json(control_plane, namespace, "configmap", configmap, check=False)
                    and served_models(control_plane, namespace) == {name: [1]}
                ),
                timeout=120,
            )

            # Uninstall as documented: Chatbots first, while the operator still cleans up.
            control_plane.kubectl(
                "delete", "chatbots", "--all", f"--namespace={namespace}", "--wait=true"
            )
        finally:
            operator.stop()
            # The CRD is cluster-wide: give the other tests the chart's own again.
            control_plane.kubectl(*CRD_UPGRADE, f"--filename={CHART / 'crds'}")
    helm(control_plane, helm_binary, namespace, "uninstall", RELEASE, "--wait")
    control_plane.kubectl("delete", "namespace", namespace, "--wait=true", "--timeout=120s")
    gone = control_plane.kubectl("get", "namespace", namespace, check=False)
    assert "NotFound" in gone.stderr
