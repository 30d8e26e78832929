"""Egress NetworkPolicies: each component may open only the connections its code makes.

The rendered policies are evaluated as a CNI would for one pod and one destination (the
union of the Egress policies that select the pod); the destinations come from each
component's own rendered env (its Redis URL, model server, storage endpoint), so a chart
change that moves a port without opening it fails here.

Run: .venv/bin/pytest tests/deploy/test_chart_egress.py -q
"""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest

from mimical.config import Settings
from mimical.kube.manifests import training_job
from tests.deploy.conftest import VARIANTS, render
from tests.deploy.test_chart import component_env

OUTSIDE = None  # a destination outside the cluster's pods: an address, not labels


def pod_labels(objects: list[dict]) -> dict[str, dict[str, str]]:
    """component → its pods' labels, the operator's training pods included."""
    labels = {
        o["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/component"]: o["spec"][
            "template"
        ]["metadata"]["labels"]
        for o in objects
        if o["kind"] in ("Deployment", "StatefulSet")
    }
    job = training_job("alice", 1, {"source": "s3://b/uploads/alice/1/x.zip"}, Settings())
    labels["training"] = job["spec"]["template"]["metadata"]["labels"]
    return labels


def may_connect(objects, source: dict, target: dict | None, port: int, protocol="TCP") -> bool:
    """Whether the Egress policies selecting `source` let it reach `target` (pod labels in
    the release's namespace, or OUTSIDE) on `port`."""
    policies = [
        o["spec"]
        for o in objects
        if o["kind"] == "NetworkPolicy"
        and "Egress" in o["spec"]["policyTypes"]
        and o["spec"]["podSelector"]["matchLabels"].items() <= source.items()
    ]
    if not policies:
        return True  # no Egress policy selects it: open

    def peer_matches(peer: dict) -> bool:
        if target is OUTSIDE:
            return "ipBlock" in peer or "namespaceSelector" in peer
        selector = peer.get("podSelector", {}).get("matchLabels")
        return (
            "ipBlock" not in peer
            and "namespaceSelector" not in peer
            and (selector is None or selector.items() <= target.items())
        )

    for policy in policies:
        for rule in policy.get("egress") or []:
            ports = rule.get("ports")
            port_ok = ports is None or any(
                p["port"] == port and p.get("protocol", "TCP") == protocol for p in ports
            )
            peers = rule.get("to")
            if port_ok and (peers is None or any(peer_matches(peer) for peer in peers)):
                return True
    return False


def endpoint_port(url: str, default_https: int = 443) -> int:
    parts = urlsplit(url)
    return parts.port or (80 if parts.scheme == "http" else default_https)


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_every_component_reaches_what_its_env_names(helm, variant):
    objects = render(helm, VARIANTS[variant])
    labels = pod_labels(objects)
    built_in_redis = any(o["kind"] == "StatefulSet" for o in objects)
    for component in ("backend", "webhook"):
        env = component_env(objects, component)
        source = labels[component]
        assert may_connect(objects, source, labels["tfserving"], 8500), component
        storage = env.get("AWS_ENDPOINT_URL_S3") or "https://s3.amazonaws.com"
        assert may_connect(objects, source, OUTSIDE, endpoint_port(storage)), component
        assert may_connect(objects, source, OUTSIDE, 53, "UDP"), component
        assert may_connect(objects, source, OUTSIDE, 443), component  # API server / Graph
        if built_in_redis:
            assert may_connect(objects, source, labels["redis"], 6379), component
        elif url := env.get("REDIS_URL"):
            assert may_connect(objects, source, OUTSIDE, endpoint_port(url, 6379)), component
    operator = component_env(objects, "operator")
    storage = operator.get("AWS_ENDPOINT_URL_S3") or "https://s3.amazonaws.com"
    for component in ("operator", "tfserving", "training"):
        assert may_connect(objects, labels[component], OUTSIDE, endpoint_port(storage)), component
    assert may_connect(objects, labels["operator"], labels["tfserving"], 8500)


def test_nothing_reaches_past_what_it_uses(helm):
    objects = render(helm, VARIANTS["default"])
    labels = pod_labels(objects)
    # Redis opens no connection at all.
    for target, port in ((OUTSIDE, 443), (OUTSIDE, 53), (labels["backend"], 8080)):
        assert not may_connect(objects, labels["redis"], target, port)
    # Training pods (any persona's export, run in TensorFlow): DNS and the bucket only.
    training = labels["training"]
    assert may_connect(objects, training, OUTSIDE, 443)
    for target, port in (
        (labels["redis"], 6379),
        (labels["tfserving"], 8500),
        (labels["backend"], 8080),
        (OUTSIDE, 6443),  # the API server
        (OUTSIDE, 80),
    ):
        assert not may_connect(objects, training, target, port), (target, port)
    # TF Serving's pod (the mirror reads the bucket): neither Redis nor the API server.
    assert not may_connect(objects, labels["tfserving"], labels["redis"], 6379)
    assert not may_connect(objects, labels["tfserving"], OUTSIDE, 6443)
    # The operator has no business with Redis; the web pods none with each other.
    assert not may_connect(objects, labels["operator"], labels["redis"], 6379)
    assert not may_connect(objects, labels["backend"], labels["webhook"], 8080)


def test_egress_limits_can_be_turned_off(helm):
    objects = render(helm, VARIANTS["default"], "--set", "networkPolicy.egress.enabled=false")
    labels = pod_labels(objects)
    assert may_connect(objects, labels["training"], labels["redis"], 6379)
    assert not any(
        "Egress" in o["spec"]["policyTypes"] for o in objects if o["kind"] == "NetworkPolicy"
    )
