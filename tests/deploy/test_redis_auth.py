"""The built-in Redis asks for the password the chart generated, and every client's
REDIS_URL carries it: a real redis-server started with the rendered container's args.

Run: .venv/bin/pytest tests/deploy/test_redis_auth.py -q
"""

from __future__ import annotations

import base64
import re
import shutil

import pytest
import redis

from mimical.testing.servers import free_port, start_server, stop_server
from tests.deploy.conftest import pod_specs, render


def expand(text: str, env: dict[str, str]) -> str:
    """The kubelet's $(VAR) expansion of args and env values."""
    return re.sub(r"\$\((\w+)\)", lambda m: env[m.group(1)], text)


def resolve_env(container: dict, secrets: dict[str, dict[str, str]]) -> dict[str, str]:
    env: dict[str, str] = {}
    for variable in container.get("env", []):
        if ref := variable.get("valueFrom", {}).get("secretKeyRef"):
            env[variable["name"]] = secrets[ref["name"]][ref["key"]]
        elif "value" in variable:
            env[variable["name"]] = expand(variable["value"], env)
    return env


def test_redis_refuses_clients_without_the_generated_password(helm, tmp_path):
    objects = render(helm, [])
    secrets = {
        o["metadata"]["name"]: {k: base64.b64decode(v).decode() for k, v in o["data"].items()}
        for o in objects
        if o["kind"] == "Secret" and o.get("data")
    }
    specs = dict(pod_specs(objects))
    (redis_spec,) = [s for name, s in specs.items() if name.startswith("StatefulSet/")]
    container = redis_spec["containers"][0]
    env = resolve_env(container, secrets)
    assert len(env["REDIS_PASSWORD"]) == 32

    binary = shutil.which("redis-server")
    if binary is None:
        pytest.fail("redis-server is not installed (scripts/bootstrap installs it)")
    port = free_port()
    args = [expand(arg, env) for arg in container["args"]]
    where = ["--port", str(port), "--bind", "127.0.0.1", "--dir", str(tmp_path)]
    server = start_server([binary, *args, *where], port, tmp_path / "redis.log")
    try:
        with pytest.raises(redis.AuthenticationError):
            redis.Redis(port=port).ping()
        backend = next(s for name, s in specs.items() if name.endswith("-backend"))
        url = resolve_env(backend["containers"][0], secrets)["REDIS_URL"]
        host = re.match(r"redis://:[^@]+@([^:]+):6379/0$", url).group(1)
        assert host.endswith("-redis")
        client = redis.Redis.from_url(url.replace(host, "127.0.0.1").replace("6379", str(port)))
        assert client.ping()
    finally:
        stop_server(server)
