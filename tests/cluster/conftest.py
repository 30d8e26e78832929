"""Fixtures of the cluster tier: one real control plane per test session, real clients only.

`control_plane` starts etcd + kube-apiserver + kube-controller-manager once (see
`controlplane.py`); every test of this directory runs in one xdist group so they share
it. `release` helm-installs the chart into a namespace that enforces the restricted Pod
Security profile, with storage on the moto S3 server; `operator_process` and
`backend_process` run our services as processes with the chart's own environment and
their own ServiceAccount tokens (never admin).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import subprocess
import sys
import urllib.parse
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from mimical.testing.controlplane import ROOT, ControlPlane, binary_dir, missing_binaries
from mimical.testing.release import Release, process_env
from mimical.testing.servers import free_port, stop_server, wait_for_port

CHART = ROOT / "charts" / "mimical"
RELEASE = "mimical"
RESTRICTED = "pod-security.kubernetes.io/enforce=restricted"
# The IRSA role the release gives its training ServiceAccount.
IRSA_ANNOTATION = "eks.amazonaws.com/role-arn"
TRAINING_ROLE = "arn:aws:iam::000000000000:role/mimical-training"
IRSA_VALUE_KEY = IRSA_ANNOTATION.replace(".", r"\.")  # dots escaped for helm --set


OPT_IN = "MIMICAL_CLUSTER_TESTS=0: the real control-plane tier is skipped"
# What kubectl really printed, kept for the README (which quotes only output seen here).
ARTIFACTS = ROOT / "tests" / "artifacts"


def save_listing(name: str, command: list[str], output: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / name).write_text("$ " + " ".join(command) + "\n" + output)


def pytest_collection_modifyitems(items):
    """All cluster tests share one control plane: keep them on one xdist worker.

    `MIMICAL_CLUSTER_TESTS=0` skips the tier (a machine without Go for the control plane).
    """
    here = Path(__file__).parent
    opted_in = os.environ.get("MIMICAL_CLUSTER_TESTS") != "0"
    for item in items:
        if here in Path(item.fspath).parents:
            item.add_marker(pytest.mark.xdist_group("cluster"))
            if not opted_in:
                item.add_marker(pytest.mark.skip(reason=OPT_IN))


@pytest.fixture(scope="session")
def control_plane(tmp_path_factory) -> Iterator[ControlPlane]:
    binaries = binary_dir()
    if missing := missing_binaries(binaries):
        pytest.fail(
            f"{', '.join(missing)} not built in {binaries}: run scripts/install-control-plane"
        )
    plane = ControlPlane(binaries, tmp_path_factory.mktemp("control-plane"))
    try:
        yield plane.start()
    finally:
        plane.stop()


@pytest.fixture(scope="session")
def helm_binary() -> str:
    binary = Path(sys.executable).with_name("helm")
    if not binary.exists():
        pytest.fail("helm is not installed: run scripts/install-helm")
    return str(binary)


def restricted_namespace(control_plane: ControlPlane, prefix: str) -> str:
    """A fresh namespace whose pods must meet the restricted Pod Security profile."""
    name = f"{prefix}-{uuid.uuid4().hex[:6]}"
    control_plane.kubectl("create", "namespace", name)
    control_plane.kubectl("label", "namespace", name, RESTRICTED)
    return name


def helm_install(control_plane, helm, namespace, values_files=(), **values) -> str:
    """`helm install --wait`-less: the chart's objects are created; returns helm's output."""
    args = [
        helm,
        "install",
        RELEASE,
        str(CHART),
        f"--namespace={namespace}",
        f"--kubeconfig={control_plane.admin_kubeconfig}",
    ]
    for values_file in values_files:
        args.append(f"--values={CHART / values_file}")
    for key, value in values.items():
        args.append(f"--set={key}={value}")
    result = subprocess.run(args, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.fixture(scope="session")
def release(control_plane, helm_binary, s3_endpoint, tmp_path_factory) -> Iterator[Release]:
    import boto3

    bucket = f"cluster-{uuid.uuid4().hex[:10]}"
    boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1").create_bucket(
        Bucket=bucket
    )
    namespace = restricted_namespace(control_plane, "flow")
    # No storage Secret: training gets S3 access from its ServiceAccount's role (IRSA),
    # which the tests' kubelet honours the way EKS does (see kubelet.py).
    helm_install(
        control_plane,
        helm_binary,
        namespace,
        **{
            "storage.bucket": bucket,
            "storage.prefix": "mimical",
            "storage.endpoint": s3_endpoint,
            f"training.serviceAccount.annotations.{IRSA_VALUE_KEY}": TRAINING_ROLE,
        },
    )
    installed = Release(namespace, bucket, s3_endpoint)
    with model_pod(control_plane, installed, tmp_path_factory.mktemp("model-pod")) as target:
        yield dataclasses.replace(installed, model_server=target)


@contextlib.contextmanager
def model_pod(control_plane, release: Release, workdir: Path) -> Iterator[str]:
    """The release's model mirror and model server running; yields the server's host:port."""
    from tests.cluster.model_pod import ModelPod

    pod = ModelPod(control_plane, release, workdir)
    try:
        yield pod.start().target
    finally:
        pod.stop()


class ServiceProcess:
    """One of our services as a child process, its output in a log file."""

    def __init__(self, args: list[str], env: dict, log: Path, port: int | None = None):
        self.args, self.env, self.log, self.port = args, env, log, port
        self.process: subprocess.Popen | None = None
        self.liveness_url = ""  # the operator's kopf liveness endpoint

    def start(self, port_timeout: float = 60) -> ServiceProcess:
        self.process = subprocess.Popen(
            self.args,
            env=self.env,
            cwd=ROOT,
            stdout=self.log.open("ab"),
            stderr=subprocess.STDOUT,
        )
        if self.port:
            wait_for_port(self.port, self.process, timeout=port_timeout)
        return self

    def kill(self) -> None:
        """SIGKILL: no chance to clean up, as when a node dies."""
        self.process.kill()
        self.process.wait(10)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            stop_server(self.process)

    def output(self) -> str:
        return self.log.read_text(errors="replace")


def operator_process(control_plane, release: Release, workdir: Path) -> ServiceProcess:
    env = process_env(control_plane, release, "operator", workdir)
    # The chart's liveness endpoint, on a port of this machine's that is free.
    liveness = urllib.parse.urlsplit(env["MIMICAL_OPERATOR_LIVENESS"])
    port = free_port()
    env["MIMICAL_OPERATOR_LIVENESS"] = f"http://127.0.0.1:{port}{liveness.path}"
    args = [sys.executable, str(ROOT / "operator" / "main.py")]
    running = ServiceProcess(args, env, workdir / "operator.log")
    running.liveness_url = env["MIMICAL_OPERATOR_LIVENESS"]
    return running


@pytest.fixture
def operator(control_plane, release, tmp_path) -> Iterator[ServiceProcess]:
    running = operator_process(control_plane, release, tmp_path / "operator").start()
    yield running
    running.stop()


@pytest.fixture
def backend(control_plane, release, redis_url, tmp_path) -> Iterator[str]:
    """The backend API (gunicorn, `services/backend`) as a process; yields its base URL."""
    env = process_env(control_plane, release, "backend", tmp_path / "backend")
    env.update(REDIS_URL=redis_url, WEB_CONCURRENCY="1", TMPDIR=str(tmp_path / "backend"))
    port = free_port()
    gunicorn = str(Path(sys.executable).with_name("gunicorn"))
    args = [
        gunicorn,
        "--bind",
        f"127.0.0.1:{port}",
        "--chdir",
        str(ROOT / "services" / "backend"),
        "main:create_service_app()",
    ]
    running = ServiceProcess(args, env, tmp_path / "backend.log", port).start()
    url = f"http://127.0.0.1:{port}"
    # The port opens before the worker has imported the app (slow on a loaded machine).
    control_plane.wait_for("the backend's /healthz", lambda: _answers(f"{url}/healthz"), 180)
    yield url
    running.stop()


def _answers(url: str) -> bool:
    try:
        return requests.get(url, timeout=30).ok
    except requests.RequestException:
        return False
