"""Training runs with the chart's training ServiceAccount and nothing else: no storage
keys in the pod, S3 access only through the account's cloud identity (IRSA here).

Take the role away and the pod cannot read its source; the Job controller retries the
pod, gives up, and the Chatbot says Failed with the Job's reason (the real controllers'
path, not a status written by the test).
"""

from __future__ import annotations

from mimical.kube.manifests import JOB_BACKOFF_LIMIT
from mimical.testing.release import FULLNAME
from tests.cluster.conftest import IRSA_ANNOTATION, TRAINING_ROLE
from tests.cluster.kubelet import run_training_pod
from tests.cluster.test_chatbot_flow import get_json, stored_keys
from tests.cluster.test_operator_restart import apply_chatbot, delete_chatbot, upload_corpus


def unbound_pod(control_plane, namespace: str, job: str) -> dict | None:
    """A pod of `job` no node has taken yet (the Job controller makes one per attempt)."""
    pods = get_json(control_plane, namespace, "pods", f"--selector=job-name={job}")["items"]
    waiting = [p for p in pods if not p["spec"].get("nodeName")]
    return waiting[0] if waiting else None


def test_training_without_its_identity_ends_failed_with_the_jobs_reason(
    control_plane, release, operator, small_corpus, tmp_path
):
    namespace, name = release.namespace, "nobody"
    account = ["serviceaccount", f"{FULLNAME}-training", f"--namespace={namespace}"]
    control_plane.kubectl("annotate", *account, f"{IRSA_ANNOTATION}-")
    try:
        apply_chatbot(control_plane, namespace, name, upload_corpus(release, name, small_corpus))
        job = f"{name}-train-1"
        for attempt in range(JOB_BACKOFF_LIMIT + 1):
            pod = control_plane.wait_for(
                f"pod {attempt + 1} of {job}",
                lambda: unbound_pod(control_plane, namespace, job),
                timeout=90,  # the Job controller waits 10 s before a retry
            )
            finished = run_training_pod(control_plane, pod, tmp_path / f"pod-{attempt}")
            assert finished.returncode != 0
            assert "credentials" in finished.stderr.lower(), finished.stderr[-2000:]

        def failed():
            chatbot = get_json(control_plane, namespace, "chatbot", name)
            return chatbot if chatbot.get("status", {}).get("phase") == "Failed" else None

        chatbot = control_plane.wait_for("phase Failed", failed, timeout=90)
        trained = {c["type"]: c for c in chatbot["status"]["conditions"]}["Trained"]
        assert trained["status"] == "False"
        assert trained["reason"] == "BackoffLimitExceeded", trained
        # The build is over: its raw upload goes, as after a success.
        assert not [key for key in stored_keys(release, name) if "/uploads/" in key]
        delete_chatbot(control_plane, namespace, name)
    finally:
        control_plane.kubectl("annotate", *account, f"{IRSA_ANNOTATION}={TRAINING_ROLE}")
