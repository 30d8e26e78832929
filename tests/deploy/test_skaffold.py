"""skaffold.yaml and the dev-only manifests it deploys, checked offline (no skaffold or
Docker here): every artifact's Dockerfile exists, every value it sets is a chart value,
and the local profile's MinIO is as locked down as the chart.

Run: .venv/bin/pytest tests/deploy/test_skaffold.py -q
"""

from __future__ import annotations

import re

import kubernetes_validate
import yaml

from tests.deploy.conftest import CHART, ROOT, pod_specs

SKAFFOLD = yaml.safe_load((ROOT / "skaffold.yaml").read_text())


def test_builds_the_four_images_from_existing_dockerfiles():
    artifacts = SKAFFOLD["build"]["artifacts"]
    assert {a["image"] for a in artifacts} == {
        "mimical/backend",
        "mimical/webhook",
        "mimical/operator",
        "mimical/training",
    }
    for artifact in artifacts:
        assert (ROOT / artifact["context"] / artifact["docker"]["dockerfile"]).is_file()


def test_release_sets_only_real_chart_values_to_built_images():
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    (release,) = SKAFFOLD["deploy"]["helm"]["releases"]
    assert (ROOT / release["chartPath"] / "Chart.yaml").is_file()
    images = {
        a["image"].replace("/", "_").replace("-", "_") for a in SKAFFOLD["build"]["artifacts"]
    }
    for dotted, template in release["setValueTemplates"].items():
        node = values
        for part in dotted.split("."):
            assert part in node, f"{dotted} is not a chart value"
            node = node[part]
        for image in re.findall(r"\.IMAGE_(?:REPO|TAG)_(\w+)", template):
            assert image in images, f"{dotted}: unknown artifact {image}"


def test_profiles_use_existing_files():
    profiles = {profile["name"]: profile for profile in SKAFFOLD["profiles"]}
    assert set(profiles) == {"local", "gpu"}
    for profile in profiles.values():
        for patch in profile["patches"]:
            value = patch["value"]
            paths = value.get("rawYaml", []) if isinstance(value, dict) else [value]
            for path in paths:
                if isinstance(path, str) and path.endswith(".yaml"):
                    assert (ROOT / path).is_file(), f"{profile['name']}: {path}"


def test_local_minio_manifests_are_valid_and_restricted():
    objects = [doc for doc in yaml.safe_load_all((ROOT / "deploy/local/minio.yaml").read_text())]
    version = kubernetes_validate.latest_version()
    for obj in objects:
        kubernetes_validate.validate(obj, version, strict=True)
    for name, spec in pod_specs(objects):
        assert spec["securityContext"]["runAsNonRoot"] is True, name
        for container in spec["containers"]:
            security = container["securityContext"]
            assert security["readOnlyRootFilesystem"] is True, name
            assert security["allowPrivilegeEscalation"] is False, name
            assert security["capabilities"]["drop"] == ["ALL"], name
            assert {"cpu", "memory"} <= set(container["resources"]["limits"]), name
