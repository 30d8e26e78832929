# TEMPORARY (issue B dev only): stands in for A's small_corpus until tests/fixtures/corpus.py has it.
import shutil

import pytest


@pytest.fixture(scope="session")
def small_corpus(tmp_path_factory):
    path = tmp_path_factory.mktemp("corpus") / "small.jsonl"
    shutil.copy("/tmp/b/small.jsonl", path)
    return path
