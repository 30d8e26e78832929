"""Fixtures every test directory can use.

Real services are started once per test session (per xdist worker) on free
loopback ports: `redis_url` (redis-server), `s3_endpoint` (moto's standalone
server). Corpus and model fixtures build small real artefacts from the
chitchat data set.
"""

pytest_plugins = [
    "tests.fixtures.services",
    "tests.fixtures.corpus",
    "tests.fixtures.model",
]
