"""The chart's built-in Redis holds the Messenger queue: it must survive its own restart.

The rendered StatefulSet is checked as Kubernetes would run it (a headless governing
Service, a PodDisruptionBudget, a volume claim), and a real redis-server started with the
rendered container's args is killed with messages in flight and started again on the same
data directory (the volume): nothing acknowledged is lost, nothing is answered twice.

Run: .venv/bin/pytest tests/deploy/test_chart_redis.py -q
"""

from __future__ import annotations

import base64
import shutil

import pytest

from mimical.messenger.event_queue import Event, RedisEventQueue
from mimical.testing.servers import free_port, start_server, stop_server
from tests.deploy.conftest import VARIANTS, render
from tests.deploy.test_redis_auth import expand, resolve_env

IN_FLIGHT = 40


def redis_objects(objects: list[dict]) -> dict[str, dict]:
    """kind/name → object of the built-in Redis."""
    return {
        f"{o['kind']}/{o['metadata']['name']}": o
        for o in objects
        if o["metadata"].get("labels", {}).get("app.kubernetes.io/component") == "redis"
    }


def test_the_statefulset_has_a_headless_service_a_budget_and_a_volume(helm):
    found = redis_objects(render(helm, VARIANTS["default"]))
    statefulset = found["StatefulSet/mimical-redis"]
    governing = found[f"Service/{statefulset['spec']['serviceName']}"]
    assert governing["spec"]["clusterIP"] == "None"
    assert found["Service/mimical-redis"]["spec"].get("clusterIP") != "None"  # for clients
    budget = found["PodDisruptionBudget/mimical-redis"]
    labels = statefulset["spec"]["template"]["metadata"]["labels"]
    assert budget["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert budget["spec"]["minAvailable"] == 1
    (claim,) = statefulset["spec"]["volumeClaimTemplates"]
    assert claim["metadata"]["name"] == "data"
    args = statefulset["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args[args.index("--appendonly") + 1] == "yes"
    assert args[args.index("--appendfsync") + 1] == "everysec"


def test_memory_only_redis_is_a_choice_spelled_out(helm):
    found = redis_objects(
        render(helm, VARIANTS["default"], "--set", "redis.persistence.enabled=false")
    )
    statefulset = found["StatefulSet/mimical-redis"]
    assert "volumeClaimTemplates" not in statefulset["spec"]
    args = statefulset["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args[args.index("--appendonly") + 1] == "no"


def redis_command(helm, data_dir, port: int) -> tuple[list[str], str]:
    """The rendered Redis container's command line on `port` over `data_dir`, and the URL
    a client with the rendered password uses."""
    objects = render(helm, VARIANTS["default"])
    secrets = {
        o["metadata"]["name"]: {k: base64.b64decode(v).decode() for k, v in o["data"].items()}
        for o in objects
        if o["kind"] == "Secret" and o.get("data")
    }
    statefulset = redis_objects(objects)["StatefulSet/mimical-redis"]
    container = statefulset["spec"]["template"]["spec"]["containers"][0]
    env = resolve_env(container, secrets)
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.fail("redis-server is not installed (scripts/bootstrap installs it)")
    args = [expand(arg, env) for arg in container["args"]]
    where = ["--port", str(port), "--bind", "127.0.0.1", "--dir", str(data_dir)]
    return [binary, *args, *where], f"redis://:{env['REDIS_PASSWORD']}@127.0.0.1:{port}/0"


def test_a_killed_redis_loses_no_acknowledged_event_and_answers_none_twice(helm, tmp_path):
    """kill -9 (an OOM kill, a lost node's pod) right after the webhook's acknowledgements;
    the new Redis on the same volume still has every event and every dedupe key."""
    volume = tmp_path / "data"
    volume.mkdir()
    port = free_port()
    command, url = redis_command(helm, volume, port)
    events = [
        Event(user=f"psid-{n % 7}", mid=f"m-{n}", text=f"hello {n}") for n in range(IN_FLIGHT)
    ]

    server = start_server(command, port, tmp_path / "redis-1.log")
    queue = RedisEventQueue(url)
    try:
        assert queue.put(events) == IN_FLIGHT  # what the webhook acknowledged
    finally:
        queue.close()
        server.kill()
        server.wait(10)

    server = start_server(command, port, tmp_path / "redis-2.log")
    queue = RedisEventQueue(url)
    try:
        assert queue.put(events) == 0  # Meta's redeliveries: known, not queued again
        answered: list[str] = []
        for _ in range(IN_FLIGHT * 3):
            queue.serve_once(0, lambda event, _keep_alive: answered.append(event.mid), 0.05)
            if len(answered) == IN_FLIGHT and queue.idle():
                break
        assert sorted(answered) == sorted(event.mid for event in events)
    finally:
        queue.close()
        stop_server(server)


def test_the_killed_redis_really_lost_its_memory(helm, tmp_path):
    """The control: the same kill without persistence loses every event, so the test
    above measures the append-only file and not a Redis that never went away."""
    port = free_port()
    command, url = redis_command(helm, tmp_path, port)
    plain = list(command)
    plain[plain.index("--appendonly") + 1] = "no"
    server = start_server(plain, port, tmp_path / "redis.log")
    queue = RedisEventQueue(url)
    try:
        assert queue.put([Event("psid", "m-1", "hello")]) == 1
    finally:
        queue.close()
        server.kill()
        server.wait(10)
    server = start_server(plain, port, tmp_path / "redis-again.log")
    queue = RedisEventQueue(url)
    try:
        assert queue.put([Event("psid", "m-1", "hello")]) == 1
    finally:
        queue.close()
        stop_server(server)
