"""The images install only locked, hashed packages: the locks cover pyproject.toml, and
every Dockerfile installs from its lock with `--require-hashes` and nothing else.

Refresh the locks with `scripts/lock-requirements` (README, "Dependencies").
"""

from __future__ import annotations

import re
import tomllib

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.deploy.conftest import ROOT
from tests.deploy.test_images import IMAGE_LOCKS, IMAGES, instructions

REQUIREMENTS = ROOT / "requirements"
# What each lock must satisfy besides pyproject.toml's dependencies and build requires.
LOCK_INPUTS = {"images.txt": ["build.in"], "training.txt": ["build.in", "training.in"]}
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(\[[^\]]*\])?==(\S+)")


def locked(lock: str) -> dict[str, tuple[str, list[str]]]:
    """{canonical name: (version, hashes)} of a lock file (uv's `pip compile` format)."""
    entries: dict[str, tuple[str, list[str]]] = {}
    current = None
    for line in (REQUIREMENTS / lock).read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        pin = PIN.match(line)
        if pin:
            current = canonicalize_name(pin.group(1))
            entries[current] = (pin.group(3), [])
        elif line.startswith("--hash=sha256:") and current is not None:
            entries[current][1].append(line.split(":", 1)[1].rstrip(" \\"))
        else:
            pytest.fail(f"{lock}: unexpected line {line!r}")
    return entries


def required(lock: str) -> list[Requirement]:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    lines = [*pyproject["project"]["dependencies"], *pyproject["build-system"]["requires"]]
    for source in LOCK_INPUTS[lock]:
        text = (REQUIREMENTS / source).read_text().splitlines()
        lines += [line for line in text if line.strip() and not line.startswith("#")]
    return [Requirement(line) for line in lines]


@pytest.mark.parametrize("lock", sorted(LOCK_INPUTS))
def test_the_lock_pins_every_requirement_to_an_allowed_version_with_hashes(lock):
    entries = locked(lock)
    assert entries, f"{lock} is empty"
    for name, (_, hashes) in entries.items():
        assert hashes and all(re.fullmatch(r"[0-9a-f]{64}", h) for h in hashes), name
    for requirement in required(lock):
        name = canonicalize_name(requirement.name)
        assert name in entries, f"{lock} lacks {requirement}: run scripts/lock-requirements"
        version = entries[name][0]
        assert requirement.specifier.contains(version, prereleases=True), (
            f"{lock} pins {name}=={version}, outside {requirement}: run scripts/lock-requirements"
        )


def test_the_training_lock_brings_cuda_with_tensorflow():
    entries = locked("training.txt")
    assert any(name.startswith("nvidia-cudnn") for name in entries)
    assert not any(name.startswith("nvidia-") for name in locked("images.txt"))


@pytest.mark.parametrize("folder", sorted(IMAGES))
def test_the_image_installs_only_from_its_lock_with_hashes(folder):
    pairs = instructions(ROOT / folder / "Dockerfile")
    copied = {rest.split()[-1]: rest.split()[-2] for keyword, rest in pairs if keyword == "COPY"}
    assert copied.get("./requirements.txt") == IMAGE_LOCKS[folder], folder
    installs = [
        command.strip()
        for keyword, rest in pairs
        if keyword == "RUN"
        for command in rest.split("&&")
        if re.search(r"\bpip install\b", command)
    ]
    assert installs == [
        "pip install --no-cache-dir --require-hashes -r requirements.txt",
        "pip install --no-cache-dir --no-deps --no-build-isolation .",
    ], folder
