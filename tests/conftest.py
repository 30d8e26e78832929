"""Fixtures every test directory can use.

Real services are started once per test session (per xdist worker) on free
loopback ports: `redis_url` (redis-server), `s3_endpoint` (moto's standalone
server). Corpus and model fixtures build small real artefacts from the
chitchat data set.
"""

import os
import sys

import pytest

from mimical.quiet import QUIET_ENV, QuietImportFinder

pytest_plugins = [
    "tests.fixtures.services",
    "tests.fixtures.outage",
    "tests.fixtures.corpus",
    "tests.fixtures.model",
    "tests.fixtures.chat",
    "tests.fixtures.web",
]


@pytest.fixture(autouse=True)
def cli_quiet_mode_ends_with_the_test(monkeypatch):
    """Tests call `mimical.cli.main` in-process, which quiets TensorFlow for the whole
    process (environment and import hook): undo that after each test."""
    for name in (QUIET_ENV, "TF_CPP_MIN_LOG_LEVEL"):
        if name in os.environ:
            monkeypatch.setenv(name, os.environ[name])  # restored as it is now
        else:
            monkeypatch.delenv(name, raising=False)
    yield
    # Remove only our finder: other libraries (six) add theirs for good while a test runs.
    sys.meta_path[:] = [f for f in sys.meta_path if not isinstance(f, QuietImportFinder)]
