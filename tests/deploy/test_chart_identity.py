"""The chart's identity and isolation settings, as the operator and the pods receive them:
the training ServiceAccount and registry Secrets, storage keys only from a named Secret,
the allowed training images, the operator's liveness probe, NetworkPolicies on by default.

Run: .venv/bin/pytest tests/deploy/test_chart_identity.py -q
"""

from __future__ import annotations

from mimical.config import Settings
from tests.deploy.conftest import pod_specs, render
from tests.deploy.test_chart import component_env

IRSA_ROLE = "arn:aws:iam::111122223333:role/mimical-training"


def operator_training_job(objects: list[dict]) -> dict:
    """The Job the operator, configured as the chart configures it, makes for alice."""
    from mimical.kube.manifests import training_job

    settings = Settings.from_env(component_env(objects, "operator"))
    source = f"{settings.storage_url}/uploads/alice/1/export.zip"
    return training_job("alice", 1, {"source": source}, settings)


def test_training_pods_get_the_charts_identity_pull_policy_and_registry(helm):
    objects = render(
        helm,
        [],
        "--set=imagePullSecrets[0].name=regcred",
        "--set=training.image.pullPolicy=Always",
        r"--set=training.serviceAccount.annotations.eks\.amazonaws\.com/role-arn=" + IRSA_ROLE,
    )
    accounts = {o["metadata"]["name"]: o for o in objects if o["kind"] == "ServiceAccount"}
    pod = operator_training_job(objects)["spec"]["template"]["spec"]
    account = accounts[pod["serviceAccountName"]]
    assert account["metadata"]["annotations"] == {"eks.amazonaws.com/role-arn": IRSA_ROLE}
    # Only the training account carries the training role.
    others = [a for name, a in accounts.items() if name != pod["serviceAccountName"]]
    assert not any(a["metadata"].get("annotations") for a in others)
    assert pod["imagePullSecrets"] == [{"name": "regcred"}]
    assert pod["containers"][0]["imagePullPolicy"] == "Always"
    # No storage Secret configured: no keys in the pod, the role gives access.
    assert not [e for e in pod["containers"][0]["env"] if e["name"].startswith("AWS_ACCESS")]
    # Every pod the chart makes pulls with the registry Secret too.
    for name, spec in pod_specs(objects):
        assert spec.get("imagePullSecrets") == [{"name": "regcred"}], name


def test_training_pods_get_storage_keys_only_from_a_named_secret(helm):
    objects = render(helm, [], "--set=storage.existingSecret=mimical-s3")
    env = operator_training_job(objects)["spec"]["template"]["spec"]["containers"][0]["env"]
    refs = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in env if "valueFrom" in e}
    assert refs["AWS_SECRET_ACCESS_KEY"] == {"name": "mimical-s3", "key": "AWS_SECRET_ACCESS_KEY"}


def test_allowed_training_images_reach_the_operator(helm):
    from mimical.kube.manifests import allowed_training_images

    objects = render(helm, [], "--set=training.allowedImages[0]=registry.example/train:gpu")
    settings = Settings.from_env(component_env(objects, "operator"))
    assert allowed_training_images(settings) == {
        settings.training_image,
        "registry.example/train:gpu",
    }


def test_operator_has_a_liveness_probe_on_kopfs_endpoint(rendered):
    variant, objects = rendered
    (container,) = next(spec for name, spec in pod_specs(objects) if name.endswith("-operator"))[
        "containers"
    ]
    env = {e["name"]: e.get("value") for e in container["env"]}
    probe = container["livenessProbe"]["httpGet"]
    port = next(p for p in container["ports"] if p["name"] == probe["port"])["containerPort"]
    assert env["MIMICAL_OPERATOR_LIVENESS"] == f"http://0.0.0.0:{port}{probe['path']}"


def test_network_policies_are_on_by_default(helm):
    objects = render(helm, [])
    policies = {o["metadata"]["name"]: o["spec"] for o in objects if o["kind"] == "NetworkPolicy"}

    def allowed(policy: str) -> set[str]:
        (rule,) = policies[policy]["ingress"]
        return {
            peer["podSelector"]["matchLabels"]["app.kubernetes.io/component"]
            for peer in rule["from"]
        }

    (rule,) = policies["mimical-tfserving"]["ingress"]
    assert rule["ports"] == [{"port": 8500, "protocol": "TCP"}]  # REST 8501: nobody
    # The chats, and the operator's GetModelStatus (Ready means answering).
    assert allowed("mimical-tfserving") == {"backend", "webhook", "operator"}
    assert allowed("mimical-redis") == {"backend", "webhook"}
    for closed in ("mimical-operator", "mimical-training"):
        assert "ingress" not in policies[closed] and policies[closed]["policyTypes"] == ["Ingress"]
