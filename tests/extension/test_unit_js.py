"""The Chrome extension's own unit tests (extension/test/*.test.mjs), run by node's
built-in test runner so `pytest` covers the JavaScript too.

    .venv/bin/pytest tests/extension/test_unit_js.py -q     # or, in extension/: npm test
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

EXTENSION = Path(__file__).resolve().parents[2] / "extension"


def test_extension_unit_tests_pass():
    node = shutil.which("node") or shutil.which("nodejs")
    if node is None:
        pytest.fail("node is not installed (scripts/bootstrap installs the nodejs package)")
    test_files = sorted(
        str(path.relative_to(EXTENSION)) for path in (EXTENSION / "test").glob("*.test.mjs")
    )
    assert test_files, "no extension unit tests found"
    result = subprocess.run(
        [node, "--test", *test_files],
        cwd=EXTENSION,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, f"node --test failed:\n{result.stdout}\n{result.stderr}"
    assert "# fail 0" in result.stdout
