from tests.serving.fixtures import *  # noqa: F403 (shared chat fixtures)
