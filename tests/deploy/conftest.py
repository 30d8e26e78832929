"""Fixtures for the deployment checks: the real `helm` binary and rendered chart variants.

`scripts/install-helm` (run by scripts/bootstrap) puts helm at .venv/bin/helm; the
chart is rendered once per variant and per test session, offline.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "mimical"
HELM_VERSION = "v3.17.1"

# name -> values files (relative to the chart) layered over values.yaml.
VARIANTS = {
    "default": [],
    "gpu": ["ci/gpu-values.yaml"],
    "external": ["ci/external-values.yaml"],
    "local": ["ci/local-values.yaml"],
}


@pytest.fixture(scope="session")
def helm() -> str:
    binary = Path(sys.executable).with_name("helm")
    if not binary.exists():
        found = shutil.which("helm")
        if found is None:
            pytest.fail("helm is not installed: run scripts/install-helm")
        binary = Path(found)
    version = subprocess.run(
        [str(binary), "version", "--template", "{{.Version}}"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert version == HELM_VERSION, f"expected helm {HELM_VERSION}, found {version}"
    return str(binary)


def render(helm: str, values: list[str], *extra: str) -> list[dict]:
    """`helm template` the chart (CRDs included) and return the non-empty documents."""
    args = [helm, "template", "mimical", str(CHART), "--namespace", "chat", "--include-crds"]
    for values_file in values:
        args += ["--values", str(CHART / values_file)]
    result = subprocess.run([*args, *extra], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


@pytest.fixture(scope="session", params=sorted(VARIANTS))
def rendered(request, helm) -> tuple[str, list[dict]]:
    return request.param, render(helm, VARIANTS[request.param])


def pod_specs(objects: list[dict]):
    """(object name, pod spec) for every workload in `objects`."""
    for obj in objects:
        spec = obj.get("spec", {})
        if obj["kind"] in ("Deployment", "StatefulSet", "DaemonSet", "Job"):
            yield f"{obj['kind']}/{obj['metadata']['name']}", spec["template"]["spec"]
        elif obj["kind"] == "Pod":
            yield f"Pod/{obj['metadata']['name']}", spec
