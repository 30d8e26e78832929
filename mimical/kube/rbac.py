"""The operator's least-privilege RBAC rules, listed once.

The operator watches one namespace (`MIMICAL_NAMESPACE`), so a namespaced Role is
enough. `charts/mimical/templates/operator-rbac.yaml` must grant exactly these
rules; `tests/deploy/test_chart.py` checks that it does. Print them as YAML with
`python -m mimical.kube.rbac`.
"""

from __future__ import annotations

import sys

from mimical.config import Settings
from mimical.kube import GROUP, PLURAL
from mimical.kube.operator import PEERING_NAME


def operator_rules(settings: Settings | None = None) -> list[dict]:
    settings = settings or Settings()
    return [
        # Watch Chatbots; kopf patches finalizers and its own annotations.
        {"apiGroups": [GROUP], "resources": [PLURAL], "verbs": ["get", "list", "watch", "patch"]},
        {"apiGroups": [GROUP], "resources": [f"{PLURAL}/status"], "verbs": ["get", "patch"]},
        # Training Jobs: create one per generation, watch them finish, stop stale ones.
        {
            "apiGroups": ["batch"],
            "resources": ["jobs"],
            "verbs": ["get", "list", "watch", "create", "delete"],
        },
        # The shared TF Serving model config: the chart creates it, the operator edits it.
        {
            "apiGroups": [""],
            "resources": ["configmaps"],
            "resourceNames": [settings.serving_configmap],
            "verbs": ["get", "patch"],
        },
        # kopf peering: replicas watch the peering object and patch their keep-alives into it.
        {"apiGroups": ["kopf.dev"], "resources": ["kopfpeerings"], "verbs": ["list", "watch"]},
        {
            "apiGroups": ["kopf.dev"],
            "resources": ["kopfpeerings"],
            "resourceNames": [PEERING_NAME],
            "verbs": ["patch"],
        },
        # Events on Chatbots (kopf posts them for handler outcomes, we for failures).
        {"apiGroups": [""], "resources": ["events"], "verbs": ["create", "patch"]},
        {"apiGroups": ["events.k8s.io"], "resources": ["events"], "verbs": ["create", "patch"]},
    ]


if __name__ == "__main__":
    import yaml

    yaml.safe_dump(operator_rules(Settings.from_env()), sys.stdout, sort_keys=False)
