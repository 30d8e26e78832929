"""Each ServiceAccount of the chart may do exactly what its code uses: nothing missing (the
flow tests pass with these tokens), nothing broader.

What a ServiceAccount may do is asked the way an admin would, `kubectl auth can-i --list`
with the account's own token; what every account may do anyway (self reviews, discovery)
is measured on the namespace's `default` account and set aside.
"""

from __future__ import annotations

import json
import re

import pytest

from mimical.config import Settings
from mimical.kube.manifests import training_job
from mimical.kube.rbac import RULES
from mimical.testing.release import FULLNAME

COMPONENTS = ["operator", "backend", "webhook", "tfserving", "training"]

# Resources, Non-Resource URLs, Resource Names, Verbs (Resources is empty on URL rows).
ROW = re.compile(r"^(\S*)\s*\[(.*?)\]\s+\[(.*?)\]\s+\[(.*?)\]\s*$")


def permissions(rules: list[dict]) -> set[tuple[str, str, str]]:
    """(resource as kubectl prints it, resource names, verb) for every rule."""
    granted = set()
    for rule in rules:
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                # kubectl's CombineResourceGroup: chatbots/status in mimical.dev is
                # "chatbots.mimical.dev/status".
                base, _, subresource = resource.partition("/")
                printed = f"{base}.{group}" if group else base
                printed += f"/{subresource}" if subresource else ""
                names = " ".join(rule.get("resourceNames", []))
                granted |= {(printed, names, verb) for verb in rule["verbs"]}
    return granted


def can_i_list(control_plane, namespace: str, account: str) -> set[tuple[str, str, str]]:
    kubeconfig = control_plane.service_account_kubeconfig(namespace, account)
    output = control_plane.kubectl(
        "auth", "can-i", "--list", f"--namespace={namespace}", kubeconfig=kubeconfig
    ).stdout
    granted = set()
    for line in output.splitlines()[1:]:
        match = ROW.match(line)
        assert match, f"unexpected can-i row {line!r}"
        resource, urls, names, verbs = match.groups()
        if urls:
            continue  # non-resource URLs (discovery, health) every account may read
        granted |= {(resource, names, verb) for verb in verbs.split()}
    return granted


@pytest.fixture(scope="module")
def baseline(control_plane, release) -> set[tuple[str, str, str]]:
    return can_i_list(control_plane, release.namespace, "default")


def expected_rules(component: str) -> list[dict]:
    """What the code lists (mimical.kube.rbac); TF Serving and training call no API."""
    settings = Settings(
        serving_configmap=f"{FULLNAME}-tfserving-models",
        chatbot_secrets=f"{FULLNAME}-chatbot-secrets",
    )
    return RULES[component](settings) if component in RULES else []


@pytest.mark.parametrize("component", COMPONENTS)
def test_service_account_may_do_exactly_what_its_code_uses(
    control_plane, release, baseline, component
):
    granted = can_i_list(control_plane, release.namespace, f"{FULLNAME}-{component}") - baseline
    assert granted == permissions(expected_rules(component))
    assert not any(verb == "*" or resource.startswith("*") for resource, _, verb in granted)


@pytest.mark.parametrize("component", COMPONENTS)
def test_no_service_account_reads_other_secrets(control_plane, release, component):
    """Not elsewhere, and at home not the storage keys, Messenger tokens or Helm's release
    Secrets: at most the chatbots' Secret, by name."""
    kubeconfig = control_plane.service_account_kubeconfig(
        release.namespace, f"{FULLNAME}-{component}"
    )
    for where in ("--all-namespaces", "--namespace=kube-system", "--namespace=default"):
        answer = control_plane.kubectl(
            "auth", "can-i", "get", "secrets", where, kubeconfig=kubeconfig, check=False
        )
        assert answer.stdout.strip() == "no", (where, answer.stdout)
    home = f"--namespace={release.namespace}"
    for secret in ("sh.helm.release.v1.mimical.v1", "mimical-s3", "mimical-messenger"):
        for verb in ("get", "patch", "delete"):
            answer = control_plane.kubectl(
                "auth", "can-i", verb, f"secret/{secret}", home, kubeconfig=kubeconfig, check=False
            )
            assert answer.stdout.strip() == "no", (verb, secret, answer.stdout)
    answer = control_plane.kubectl(
        "auth", "can-i", "create", "secrets", home, kubeconfig=kubeconfig, check=False
    )
    assert answer.stdout.strip() == "no", answer.stdout


def test_the_operator_may_make_jobs_its_chatbots_own(control_plane, release):
    """OwnerReferencesPermissionEnforcement (OpenShift's, on in this API server): an owner
    reference that blocks its owner's deletion needs `update` on the owner's finalizers.
    The operator has it for Chatbots (kopf.adopt sets blockOwnerDeletion), not elsewhere."""
    namespace = release.namespace
    kubeconfig = control_plane.service_account_kubeconfig(namespace, f"{FULLNAME}-operator")
    chatbot = {
        "apiVersion": "mimical.dev/v1alpha1",
        "kind": "Chatbot",
        "metadata": {"name": "owner"},
        "spec": {"public": True},
    }
    control_plane.kubectl("apply", f"--namespace={namespace}", "-f=-", stdin=json.dumps(chatbot))
    created = json.loads(
        control_plane.kubectl(
            "get", "chatbot", "owner", f"--namespace={namespace}", "-o=json"
        ).stdout
    )
    configmap = json.loads(
        control_plane.kubectl(
            "get", "configmap", "kube-root-ca.crt", f"--namespace={namespace}", "-o=json"
        ).stdout
    )
    try:
        for owner, allowed in ((created, True), (configmap, False)):
            job = training_job("owner", 1, {"source": "s3://b/uploads/owner/1/x.zip"}, Settings())
            job["metadata"]["ownerReferences"] = [
                {
                    "apiVersion": owner["apiVersion"],
                    "kind": owner["kind"],
                    "name": owner["metadata"]["name"],
                    "uid": owner["metadata"]["uid"],
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ]
            result = control_plane.kubectl(
                "create",
                "--dry-run=server",
                f"--namespace={namespace}",
                "-f=-",
                kubeconfig=kubeconfig,
                stdin=json.dumps(job),
                check=False,
            )
            assert (result.returncode == 0) == allowed, (owner["kind"], result.stderr)
            if not allowed:
                assert "cannot set blockOwnerDeletion" in result.stderr, result.stderr
    finally:
        control_plane.kubectl("delete", "chatbot", "owner", f"--namespace={namespace}")
