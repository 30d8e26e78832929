"""`helm install` the chart into a namespace enforcing the restricted Pod Security profile.

The controllers turn every workload into pods and the API server's admission accepts
them all (no node runs them: they stay Pending). A pod the profile refuses shows only as
a `FailedCreate` event on its ReplicaSet or StatefulSet, so the test looks for those.
"""

from __future__ import annotations

import json

import pytest

from mimical.testing.controlplane import ROOT
from tests.cluster.conftest import helm_install, restricted_namespace, save_listing
from tests.deploy.conftest import VARIANTS

INSTALLED_VARIANTS = ("default", "gpu", "external")


def objects(control_plane, namespace: str, kinds: str) -> list[dict]:
    listing = control_plane.kubectl("get", kinds, f"--namespace={namespace}", "-o=json")
    return json.loads(listing.stdout)["items"]


def expected_pods(workloads: list[dict]) -> dict[str, int]:
    return {f"{w['kind']}/{w['metadata']['name']}": w["spec"].get("replicas", 1) for w in workloads}


@pytest.mark.parametrize("variant", INSTALLED_VARIANTS)
def test_every_workload_gets_admitted_pods(control_plane, helm_binary, variant):
    namespace = restricted_namespace(control_plane, variant)
    values = VARIANTS[variant]
    # The external values name Secrets the cluster admin creates before installing.
    for secret in ("mimical-s3", "mimical-messenger") if variant == "external" else ():
        control_plane.kubectl(
            "create",
            "secret",
            "generic",
            secret,
            f"--namespace={namespace}",
            "--from-literal=AWS_ACCESS_KEY_ID=x",
            "--from-literal=FB_APP_SECRET=x",
        )
    helm_install(control_plane, helm_binary, namespace, values)

    workloads = objects(control_plane, namespace, "deployments,statefulsets")
    assert workloads, "the chart installed no workloads"
    want = expected_pods(workloads)

    def pods_by_owner():
        counts: dict[str, int] = {}
        for pod in objects(control_plane, namespace, "pods"):
            owner = pod["metadata"]["ownerReferences"][0]
            name = owner["name"]
            if owner["kind"] == "ReplicaSet":  # Deployment NAME → ReplicaSet NAME-HASH
                name, _ = name.rsplit("-", 1)
                key = f"Deployment/{name}"
            else:
                key = f"{owner['kind']}/{name}"
            counts[key] = counts.get(key, 0) + 1
        return counts

    def refused():
        return [
            f"{e['involvedObject']['kind']}/{e['involvedObject']['name']}: {e['message']}"
            for e in objects(control_plane, namespace, "events")
            if e["reason"] == "FailedCreate"
        ]

    def settled():
        if failures := refused():
            raise AssertionError("pods refused:\n" + "\n".join(failures))
        return pods_by_owner() == want

    control_plane.wait_for(f"pods of {sorted(want)}", settled, timeout=90)
    for pod in objects(control_plane, namespace, "pods"):
        assert pod["status"]["phase"] == "Pending"  # admitted; no node runs it
    if variant == "default":
        command = ["kubectl", "get", "pods", f"--namespace={namespace}"]
        save_listing("kubectl-get-pods.txt", command, control_plane.kubectl(*command[1:]).stdout)


def test_examples_apply(control_plane, release):
    """The chart installed the CRD; the examples are accepted as written (no operator here)."""
    namespace = restricted_namespace(control_plane, "examples")
    for example in sorted((ROOT / "examples").glob("*.yaml")):
        result = control_plane.kubectl("apply", f"--namespace={namespace}", f"--filename={example}")
        assert "chatbot.mimical.dev/" in result.stdout and " created" in result.stdout
    listed = control_plane.kubectl("get", "chatbots", f"--namespace={namespace}").stdout
    assert {line.split()[0] for line in listed.splitlines()[1:]} == {"alice", "bob"}
