"""The chart as GitOps tools deploy it: `helm template | kubectl apply`, no Helm release.

Rendered without a cluster, nothing can `lookup` what is there, and every sync applies the
rendered objects again. The served-model list is no chart object: the operator makes it
from the Chatbots at start and rebuilds it on every pass, so an old copy applied over it
(a stale manifest in a Git repository) is healed within one rebuild interval.
"""

from __future__ import annotations

import subprocess
import uuid

import boto3
import yaml

from mimical.testing.release import FULLNAME, Release
from tests.cluster.conftest import CHART, RELEASE, operator_process, restricted_namespace
from tests.cluster.test_chatbot_flow import get_json, served_models
from tests.cluster.test_lifecycle import CRD_UPGRADE

# The operator rebuilds the list every 4 progress intervals of 15 s; a loaded machine
# takes longer to start it.
REBUILD_TIMEOUT = 180


def render(helm_binary: str, namespace: str, **values: str) -> str:
    command = [helm_binary, "template", RELEASE, str(CHART), f"--namespace={namespace}"]
    command += [f"--set={key}={value}" for key, value in values.items()]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_rendered_chart_applied_with_kubectl_serves_what_the_chatbots_say(
    control_plane, helm_binary, s3_endpoint, tmp_path
):
    bucket = f"rendered-{uuid.uuid4().hex[:10]}"
    boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1").create_bucket(
        Bucket=bucket
    )
    namespace = restricted_namespace(control_plane, "rendered")
    rendered = render(
        helm_binary,
        namespace,
        **{"storage.bucket": bucket, "storage.prefix": "mimical", "storage.endpoint": s3_endpoint},
    )
    assert f"{FULLNAME}-tfserving-models" not in {
        (doc or {}).get("metadata", {}).get("name") for doc in yaml.safe_load_all(rendered)
    }
    # `helm template` leaves CRDs out; they are applied as the README's upgrade step says.
    control_plane.kubectl(*CRD_UPGRADE, f"--filename={CHART / 'crds'}")
    control_plane.kubectl("apply", f"--namespace={namespace}", "--filename=-", stdin=rendered)

    # A chatbot a previous installation trained and served (its status says so).
    name, version = "rita", 3
    chatbot = {
        "apiVersion": "mimical.dev/v1alpha1",
        "kind": "Chatbot",
        "metadata": {"name": name},
        "spec": {"source": f"s3://{bucket}/mimical/uploads/{name}/1/corpus.jsonl"},
    }
    control_plane.kubectl(
        "apply", f"--namespace={namespace}", "--filename=-", stdin=yaml.safe_dump(chatbot)
    )
    status = {
        "phase": "Ready",
        "observedGeneration": 1,
        "modelVersion": version,
        "servedVersion": version,
    }
    control_plane.kubectl(
        "patch",
        "chatbot",
        name,
        f"--namespace={namespace}",
        "--subresource=status",
        "--type=merge",
        f"--patch={yaml.safe_dump({'status': status})}",
    )

    def listed() -> bool:
        found = get_json(control_plane, namespace, "configmap", configmap, check=False)
        return bool(found) and served_models(control_plane, namespace) == {name: [version]}

    configmap = f"{FULLNAME}-tfserving-models"
    release = Release(namespace, bucket, s3_endpoint)
    operator = operator_process(control_plane, release, tmp_path / "operator").start()
    try:
        control_plane.wait_for("the operator's model list", listed, timeout=REBUILD_TIMEOUT)
        # The next sync applies the same objects: the list is none of them.
        control_plane.kubectl("apply", f"--namespace={namespace}", "--filename=-", stdin=rendered)
        assert served_models(control_plane, namespace) == {name: [version]}
        # An old copy applied over it is replaced on the operator's next pass.
        stale = {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": configmap},
            "data": {"models.json": "{}", "models.config": "model_config_list {\n}\n"},
        }
        control_plane.kubectl(
            "apply", f"--namespace={namespace}", "--filename=-", stdin=yaml.safe_dump(stale)
        )
        assert served_models(control_plane, namespace) == {}
        control_plane.wait_for("the list to be healed", listed, timeout=REBUILD_TIMEOUT)
        control_plane.kubectl("delete", "chatbot", name, f"--namespace={namespace}", "--wait=true")
    finally:
        operator.stop()
    control_plane.kubectl("delete", "namespace", namespace, "--wait=false")
