"""Each component's least-privilege RBAC rules, listed once.

Everything happens in one namespace (`MIMICAL_NAMESPACE`), so namespaced Roles are
enough. `charts/mimical/templates/operator-rbac.yaml` and `web-rbac.yaml` must grant
exactly these rules (`tests/deploy/test_chart.py` compares them; `tests/cluster/
test_rbac.py` asks the API server what each ServiceAccount may do). Print them as YAML
with `python -m mimical.kube.rbac [operator|backend|webhook]`.
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
        # Owner references with blockOwnerDeletion (kopf.adopt) need this where the
        # OwnerReferencesPermissionEnforcement admission plugin runs (OpenShift).
        {"apiGroups": [GROUP], "resources": [f"{PLURAL}/finalizers"], "verbs": ["update"]},
        # Training Jobs: create one per generation, watch them finish, stop stale ones.
        {
            "apiGroups": ["batch"],
            "resources": ["jobs"],
            "verbs": ["get", "list", "watch", "create", "delete"],
        },
        # A deleted chatbot's storage goes only once its training pods have stopped.
        {"apiGroups": [""], "resources": ["pods"], "verbs": ["list"]},
        # The shared TF Serving model config, rebuilt from the Chatbots; `create` when it
        # was deleted (create cannot be limited to a name: the API server knows none yet).
        {
            "apiGroups": [""],
            "resources": ["configmaps"],
            "resourceNames": [settings.serving_configmap],
            "verbs": ["get", "patch"],
        },
        {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["create"]},
        # The chatbots' Secret: a deleted chatbot's keys go (finalizer). No other Secret.
        {
            "apiGroups": [""],
            "resources": ["secrets"],
            "resourceNames": [settings.chatbot_secrets],
            "verbs": ["patch"],
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


def backend_rules(settings: Settings | None = None) -> list[dict]:
    """The backend API (`mimical.orchestration.kubernetes`, `mimical.kube.registry`)."""
    settings = settings or Settings()
    return [
        # Create chatbots, start their builds (spec.source), delete them.
        {
            "apiGroups": [GROUP],
            "resources": [PLURAL],
            "verbs": ["get", "list", "create", "patch", "delete"],
        },
        # Password hashes and owner-token digests: the one Secret the chart made for them.
        {
            "apiGroups": [""],
            "resources": ["secrets"],
            "resourceNames": [settings.chatbot_secrets],
            "verbs": ["get", "patch"],
        },
    ]


def webhook_rules(settings: Settings | None = None) -> list[dict]:
    """The internet-facing webhook and chat: find personas and check passwords, read-only."""
    settings = settings or Settings()
    return [
        {"apiGroups": [GROUP], "resources": [PLURAL], "verbs": ["get", "list"]},
        {
            "apiGroups": [""],
            "resources": ["secrets"],
            "resourceNames": [settings.chatbot_secrets],
            "verbs": ["get"],
        },
    ]


RULES = {"operator": operator_rules, "backend": backend_rules, "webhook": webhook_rules}

if __name__ == "__main__":
    import yaml

    component = sys.argv[1] if len(sys.argv) > 1 else "operator"
    yaml.safe_dump(RULES[component](Settings.from_env()), sys.stdout, sort_keys=False)
