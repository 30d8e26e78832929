"""The kubelet's part, played by the tests: there are no nodes in the test control plane.

`run_training_pod` does what a node would do with a training Job's pod: bind it, run the
container's work with the pod's own environment (as the kubelet resolves it), then report
the container's exit in the pod's status. The real Job controller takes it from there.
"""

from __future__ import annotations

import datetime
import json
import os
import subprocess
import sys
from pathlib import Path

from mimical.testing.controlplane import ROOT, ControlPlane

NODE = "test-node"

# The training image's work (training_image/entrypoint.py → mimical.kube.training_job), with
# the tiny model configuration so it takes seconds: the pod's env says what and where.
TRAINING = """
import sys
from mimical.config import Settings
from mimical.kube.training_job import ProgressFile, TrainingRequest, fail, run
from mimical.model.train import tiny_config
from mimical.storage import open_storage

settings = Settings.from_env()
request = TrainingRequest.from_settings(settings)
progress = ProgressFile(open_storage(settings.storage_url, settings), request)
try:
    result = run(request, settings, progress, config=tiny_config(), epochs=1)
except Exception as error:
    fail(progress, str(error))
    sys.exit(2)
print("version", result.version)
"""


def admin_client(control_plane: ControlPlane):
    from kubernetes import config

    return config.new_client_from_config(config_file=str(control_plane.admin_kubeconfig))


def now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def bind(core, pod: dict) -> None:
    """What the scheduler does: put the pod on a node."""
    meta = pod["metadata"]
    body = {
        "apiVersion": "v1",
        "kind": "Binding",
        "metadata": {"name": meta["name"]},
        "target": {"apiVersion": "v1", "kind": "Node", "name": NODE},
    }
    core.create_namespaced_pod_binding(
        meta["name"], meta["namespace"], body, _preload_content=False
    )


def report_exit(core, pod: dict, exit_code: int, started: str, message: str = "") -> None:
    """What the kubelet writes when the pod's only container has exited."""
    container = pod["spec"]["containers"][0]
    terminated = {
        "exitCode": exit_code,
        "reason": "Completed" if exit_code == 0 else "Error",
        "startedAt": started,
        "finishedAt": now(),
        "message": message[-4000:],
    }
    status = {
        "phase": "Succeeded" if exit_code == 0 else "Failed",
        "startTime": started,
        "conditions": [
            {"type": "PodScheduled", "status": "True", "lastTransitionTime": started},
            {
                "type": "Ready",
                "status": "False",
                "reason": "PodCompleted",
                "lastTransitionTime": now(),
            },
        ],
        "containerStatuses": [
            {
                "name": container["name"],
                "image": container["image"],
                "imageID": "",
                "ready": False,
                "restartCount": 0,
                "started": False,
                "state": {"terminated": terminated},
            },
        ],
    }
    meta = pod["metadata"]
    core.patch_namespaced_pod_status(meta["name"], meta["namespace"], {"status": status})


def pod_env(control_plane: ControlPlane, namespace: str, pod: dict) -> dict[str, str]:
    from mimical.testing.release import container_env

    return container_env(control_plane, namespace, pod["spec"]["containers"][0])


def cloud_credentials(control_plane: ControlPlane, namespace: str, pod: dict) -> dict:
    """What EKS gives a pod whose ServiceAccount names an IAM role (IRSA): its pod identity
    webhook mounts a web-identity token, which the AWS SDK trades at STS for keys of that
    role. moto takes any keys, so what is checked is the role on the pod's account; a pod
    of any other account gets nothing (and its S3 calls fail)."""
    from tests.cluster.conftest import IRSA_ANNOTATION

    account = pod["spec"].get("serviceAccountName", "default")
    found = control_plane.kubectl(
        "get", "serviceaccount", account, f"--namespace={namespace}", "-o=json"
    )
    annotations = json.loads(found.stdout)["metadata"].get("annotations") or {}
    if not annotations.get(IRSA_ANNOTATION):
        return {}
    return {"AWS_ACCESS_KEY_ID": "irsa-session", "AWS_SECRET_ACCESS_KEY": "irsa-session"}


def run_training_pod(control_plane: ControlPlane, pod: dict, workdir: Path):
    """Bind, run, and report the exit of a training pod; returns the finished process.

    Its environment is the pod's own (storage keys only if the chart named a Secret)
    plus what its ServiceAccount's cloud identity gives (`cloud_credentials`).
    """
    core = _core(control_plane)
    namespace = pod["metadata"]["namespace"]
    bind(core, pod)
    started = now()
    workdir.mkdir(parents=True, exist_ok=True)
    env = {
        "PATH": os.environ["PATH"],
        # No instance metadata here: without an identity, S3 calls fail at once.
        "AWS_EC2_METADATA_DISABLED": "true",
        **cloud_credentials(control_plane, namespace, pod),
        **pod_env(control_plane, namespace, pod),
        # The pod's /tmp is its scratch emptyDir.
        "HOME": str(workdir),
        "TMPDIR": str(workdir),
        "MIMICAL_HOME": str(workdir / "mimical"),
    }
    finished = subprocess.run(
        [sys.executable, "-c", TRAINING],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    report_exit(core, pod, finished.returncode, started, finished.stderr)
    return finished


def _core(control_plane: ControlPlane):
    from kubernetes import client

    return client.CoreV1Api(admin_client(control_plane))
