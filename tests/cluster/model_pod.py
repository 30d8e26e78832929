"""The model server's pod, played by the tests: the model mirror and `mimical serve-models`.

In a cluster, the chart's TF Serving pod runs the model-mirror sidecar, fed by the
operator's model ConfigMap mounted as a volume, next to TF Serving, which serves what the
mirror copied. Here both are real processes on this machine: the mirror with the chart's
own environment for its container, reading a file that a thread keeps equal to the
ConfigMap as the kubelet keeps a ConfigMap volume (absent while the ConfigMap is); our TF
Serving compatible `mimical serve-models` serves the mirrored models over gRPC on a free
port, which the operator (`Release.model_server`) and the tests ask.
"""

from __future__ import annotations

import json
import os
import sys
import threading
from pathlib import Path

from mimical.testing.controlplane import ROOT, ControlPlane
from mimical.testing.servers import free_port

# How often the mirror copies and the model server rescans (the chart's are 15 s / 30 s).
PASS_SECONDS = "1"
# TensorFlow's import alone takes minutes on a loaded 2-core machine.
START_TIMEOUT = 600


class ConfigMapVolume(threading.Thread):
    """Keep `path` equal to one key of a ConfigMap, as the kubelet keeps a mounted one."""

    def __init__(self, control_plane: ControlPlane, namespace: str, name: str, path: Path):
        super().__init__(name=f"volume-{name}", daemon=True)
        from kubernetes import client

        from tests.cluster.kubelet import admin_client

        self.core = client.CoreV1Api(admin_client(control_plane))
        self.namespace, self.configmap, self.path = namespace, name, path
        self.stopping = threading.Event()

    def sync(self) -> None:
        from kubernetes.client.exceptions import ApiException

        try:
            data = self.core.read_namespaced_config_map(self.configmap, self.namespace).data
        except ApiException as error:
            if error.status != 404:
                raise
            self.path.unlink(missing_ok=True)  # an optional volume without its ConfigMap
            return
        text = (data or {}).get(self.path.name)
        if text is None:
            self.path.unlink(missing_ok=True)
        elif not self.path.exists() or self.path.read_text() != text:
            partial = self.path.with_name(self.path.name + ".partial")
            partial.write_text(text)
            partial.replace(self.path)

    def run(self) -> None:
        while not self.stopping.wait(0.5):
            self.sync()


def pod_containers(control_plane: ControlPlane, namespace: str, deployment: str) -> dict:
    """name → container of a Deployment's pod template."""
    found = control_plane.kubectl(
        "get", "deployment", deployment, f"--namespace={namespace}", "-o=json"
    )
    spec = json.loads(found.stdout)["spec"]["template"]["spec"]
    return {c["name"]: c for c in spec["containers"]}


class ModelPod:
    """The mirror and the model server of one release, as processes."""

    def __init__(self, control_plane: ControlPlane, release, workdir: Path):
        self.control_plane, self.release, self.workdir = control_plane, release, workdir
        self.port = free_port()
        self.models = workdir / "models"
        self.volume: ConfigMapVolume | None = None
        self.processes = []

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _env(self, container_env: dict) -> dict:
        return {
            "PATH": os.environ["PATH"],
            "PYTHONPATH": str(ROOT),
            **container_env,
            "HOME": str(self.workdir),
            "MIMICAL_HOME": str(self.workdir / "mimical"),
            # The chart names no storage Secret: the node's role; moto takes any keys.
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
        }

    def start(self) -> ModelPod:
        from mimical.testing.release import FULLNAME, container_env
        from tests.cluster.conftest import ServiceProcess

        namespace = self.release.namespace
        (self.models / "models").mkdir(parents=True, exist_ok=True)
        entries = self.workdir / "entries" / "models.json"
        entries.parent.mkdir(parents=True, exist_ok=True)
        self.volume = ConfigMapVolume(
            self.control_plane, namespace, f"{FULLNAME}-tfserving-models", entries
        )
        self.volume.start()

        mirror = pod_containers(self.control_plane, namespace, f"{FULLNAME}-tfserving")[
            "model-mirror"
        ]
        assert mirror["command"][:2] == ["python", "-m"], mirror["command"]
        env = self._env(container_env(self.control_plane, namespace, mirror))
        env.update(
            MIMICAL_MIRROR_ENTRIES=str(entries),
            MIMICAL_MIRROR_DIR=str(self.models),
            MIMICAL_MIRROR_INTERVAL=PASS_SECONDS,
        )
        args = [sys.executable, *mirror["command"][1:]]
        self.processes.append(ServiceProcess(args, env, self.workdir / "mirror.log").start())

        # What TF Serving does with the mirror's models.config: serve exactly those versions.
        serve = [
            str(Path(sys.executable).with_name("mimical")),
            "serve-models",
            f"--model-base={self.models / 'models'}",
            f"--port={self.port}",
            f"--poll-seconds={PASS_SECONDS}",
        ]
        log = self.workdir / "model-server.log"
        server = ServiceProcess(serve, self._env({}), log, self.port)
        self.processes.append(server.start(port_timeout=START_TIMEOUT))
        return self

    def stop(self) -> None:
        if self.volume is not None:
            self.volume.stopping.set()
            self.volume.join(10)
        for process in reversed(self.processes):
            process.stop()

    def logs(self) -> str:
        return "\n".join(process.output()[-3000:] for process in self.processes)
