"""The chart as another chart's dependency: Helm hands every subchart the parent's
`global` values (an empty map when there are none), and a strict schema must accept it.

Run: .venv/bin/pytest tests/deploy/test_chart_subchart.py -q
"""

from __future__ import annotations

import subprocess

import yaml

from tests.deploy.conftest import CHART


def parent_chart(tmp_path, helm: str, values: dict) -> str:
    """An umbrella chart depending on mimical from this checkout, its dependency built."""
    parent = tmp_path / "umbrella"
    parent.mkdir()
    version = yaml.safe_load((CHART / "Chart.yaml").read_text())["version"]
    chart = {
        "apiVersion": "v2",
        "name": "umbrella",
        "version": "0.1.0",
        "dependencies": [{"name": "mimical", "version": version, "repository": f"file://{CHART}"}],
    }
    (parent / "Chart.yaml").write_text(yaml.safe_dump(chart))
    (parent / "values.yaml").write_text(yaml.safe_dump(values))
    built = subprocess.run(
        [helm, "dependency", "build", str(parent)], capture_output=True, text=True
    )
    assert built.returncode == 0, built.stderr
    return str(parent)


def test_the_chart_renders_as_a_dependency_with_global_values(helm, tmp_path):
    values = {"global": {"imageRegistry": "registry.example.com"}, "mimical": {}}
    parent = parent_chart(tmp_path, helm, values)
    result = subprocess.run(
        [helm, "template", "umbrella", parent, "--namespace", "chat"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    kinds = {doc["kind"] for doc in yaml.safe_load_all(result.stdout) if doc}
    assert {"Deployment", "StatefulSet"} <= kinds


def test_the_schema_still_refuses_unknown_keys_beside_global(helm, tmp_path):
    parent = parent_chart(tmp_path, helm, {"mimical": {"surprise": 1}})
    result = subprocess.run([helm, "template", "umbrella", parent], capture_output=True, text=True)
    assert result.returncode != 0
    assert "surprise" in result.stderr
