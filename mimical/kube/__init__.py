"""Kubernetes mode: the Chatbot custom resource and the operator that makes it real.

- `manifests`: pure functions from a Chatbot spec to the training Job and the shared
  TF Serving model config (testable without a cluster).
- `status`: the Chatbot's status and its Imported/Trained/Ready conditions.
- `rbac`: the operator's least-privilege rules (the Helm chart mirrors them).
- `cluster`: the few Kubernetes API calls the operator (and the `kubernetes`
  orchestrator, `mimical.orchestration.kubernetes`) make.
- `registry`: the chatbot registry as Chatbot resources plus a Secret each.
- `artifacts`: reading a training Job's JSON objects in storage (progress, metrics).
- `handlers`: the kopf handlers; `operator`: run them (`python operator/main.py`).
- `training_job`: what the training image runs (`python training_image/entrypoint.py`).
- `model_mirror`: the TF Serving pod's sidecar copying served versions from storage.

The CRD itself lives in `charts/mimical/crds/chatbots.mimical.dev.yaml`.
"""

GROUP = "mimical.dev"
VERSION = "v1alpha1"
PLURAL = "chatbots"
KIND = "Chatbot"
API_VERSION = f"{GROUP}/{VERSION}"
