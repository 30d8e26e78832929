"""The chart as installed on a control plane (`mimical.testing.controlplane`), and our
services' environment as its pods would get it: for the cluster tests and the operator
benchmark, which run our services as processes beside the API server."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import yaml

from mimical.testing.controlplane import ROOT, ControlPlane

FULLNAME = "mimical"  # RELEASE-mimical collapses to the release name when it holds the chart name


@dataclasses.dataclass
class Release:
    """The chart installed for the operator/backend tests, and where its storage is.

    `model_server`: host:port of its model pod's gRPC server (`model_pod.ModelPod`), which
    stands in for the chart's TF Serving Service; empty when none runs.
    """

    namespace: str
    bucket: str
    s3_endpoint: str
    model_server: str = ""

    @property
    def storage_url(self) -> str:
        return f"s3://{self.bucket}/mimical"


def container_env(control_plane: ControlPlane, namespace: str, container: dict) -> dict[str, str]:
    """A container's environment as the kubelet would resolve it (values, fieldRefs, Secrets)."""
    env = {}
    for variable in container.get("env", []):
        source = variable.get("valueFrom")
        if source is None:
            env[variable["name"]] = variable.get("value", "")
        elif "fieldRef" in source:
            assert source["fieldRef"]["fieldPath"] == "metadata.namespace", source
            env[variable["name"]] = namespace
        elif "secretKeyRef" in source:
            ref = source["secretKeyRef"]
            result = control_plane.kubectl(
                "get",
                "secret",
                ref["name"],
                f"--namespace={namespace}",
                f"--output=go-template={{{{index .data {json.dumps(ref['key'])}}}}}",
                check=False,
            )
            if result.returncode == 0:
                import base64

                env[variable["name"]] = base64.b64decode(result.stdout).decode()
            else:
                assert ref.get("optional"), f"Secret {ref['name']} missing: {result.stderr}"
        else:
            raise AssertionError(f"unexpected env source {source}")
    return env


def deployment_container(control_plane, namespace: str, component: str) -> dict:
    name = f"{FULLNAME}-{component}"
    deployment = yaml.safe_load(
        control_plane.kubectl(
            "get", "deployment", name, f"--namespace={namespace}", "-o=yaml"
        ).stdout
    )
    return deployment["spec"]["template"]["spec"]["containers"][0]


def process_env(control_plane, release: Release, component: str, workdir: Path) -> dict:
    """Our service's environment: the chart's env for it, its own token, the test's S3 keys."""
    container = deployment_container(control_plane, release.namespace, component)
    env = container_env(control_plane, release.namespace, container)
    kubeconfig = control_plane.service_account_kubeconfig(
        release.namespace, f"{FULLNAME}-{component}"
    )
    workdir.mkdir(parents=True, exist_ok=True)
    # The chart's TF Serving Service, here the release's model pod.
    for service in ("MIMICAL_SERVING_ENDPOINT", "MIMICAL_MODEL_SERVER"):
        if service in env and release.model_server:
            env[service] = release.model_server
    return {
        "PATH": os.environ["PATH"],
        # This checkout's `mimical`, not whichever one the venv has installed.
        "PYTHONPATH": str(ROOT),
        **env,
        "KUBECONFIG": str(kubeconfig),
        "HOME": str(workdir),
        "MIMICAL_HOME": str(workdir / "mimical"),
        # The chart leaves S3 keys to the node role when no Secret is named; moto takes any.
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
    }
