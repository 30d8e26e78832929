"""The Chatbot's status: phase, Kubernetes-style conditions, progress.

All the operator knows lives in `status`, so a restarted operator (or `kubectl get cb`)
sees exactly where each chatbot is. Each builder returns a merge patch for `status`;
conditions keep their `lastTransitionTime` unless their status really changes.

    phase      Pending → Training → Ready | Failed   (a spec change starts Training again)
    Imported   the export was read into a corpus
    Trained    a model version was trained and uploaded
    Ready      a model version is being served (stays True while a retrain runs)
"""

from __future__ import annotations

import datetime

from mimical.chatbot import Phase, Step

CONDITION_TYPES = ("Imported", "Trained", "Ready")


def now_iso() -> str:
    return (
        datetime.datetime.now(datetime.UTC)
        .replace(microsecond=0)
        .isoformat()
        .replace("+00:00", "Z")
    )


def merge_conditions(current: list[dict] | None, updates: list[dict], generation: int) -> list:
    """`current` with `updates` applied, in the fixed Imported/Trained/Ready order."""
    by_type = {c["type"]: dict(c) for c in current or [] if c.get("type") in CONDITION_TYPES}
    for update in updates:
        old = by_type.get(update["type"], {})
        changed = old.get("status") != update["status"]
        by_type[update["type"]] = {
            **update,
            "observedGeneration": generation,
            "lastTransitionTime": now_iso()
            if changed
            else old.get("lastTransitionTime", now_iso()),
        }
    return [by_type[t] for t in CONDITION_TYPES if t in by_type]


def condition(type_: str, status: str, reason: str, message: str = "") -> dict:
    return {"type": type_, "status": status, "reason": reason, "message": message}


def _ready_condition(status: dict) -> dict:
    """Ready is about what is served: a retrain or a failed retrain keeps the old version up."""
    if status.get("modelVersion"):
        return condition(
            "Ready", "True", "Serving", f"version {status['modelVersion']} is being served"
        )
    return condition("Ready", "False", "NoModel", "no model version has been trained yet")


def training_started(status: dict, generation: int, job_name: str) -> dict:
    return {
        "phase": Phase.TRAINING,
        "observedGeneration": generation,
        "trainingJob": job_name,
        "progress": {
            "step": Step.SCHEDULED,
            "percent": 0,
            "message": f"Job {job_name} created",
            "updated": now_iso(),
        },
        "conditions": merge_conditions(
            status.get("conditions"),
            [
                condition("Imported", "Unknown", "Training", f"Job {job_name} is running"),
                condition("Trained", "Unknown", "Training", f"Job {job_name} is running"),
                _ready_condition(status),
            ],
            generation,
        ),
    }


def training_succeeded(
    status: dict, generation: int, version: int, model_uri: str, endpoint: str, metrics: dict
) -> dict:
    served = {**status, "modelVersion": version}
    return {
        "phase": Phase.READY,
        "observedGeneration": generation,
        "modelVersion": version,
        "modelURI": model_uri,
        "endpoint": endpoint,
        "metrics": metrics,
        "progress": {
            "step": Step.DONE,
            "percent": 100,
            "message": f"version {version} is live",
            "updated": now_iso(),
        },
        "conditions": merge_conditions(
            status.get("conditions"),
            [
                condition("Imported", "True", "Imported", "the export was imported"),
                condition(
                    "Trained", "True", "Trained", f"version {version} uploaded to {model_uri}"
                ),
                _ready_condition(served),
            ],
            generation,
        ),
    }


def training_failed(
    status: dict, generation: int, reason: str, message: str, imported: bool | None = None
) -> dict:
    """Failed: the reason comes from the Job (or the spec); `imported` if the runner said so."""
    updates = [condition("Trained", "False", reason, message), _ready_condition(status)]
    if imported is not None:
        updates.insert(
            0,
            condition("Imported", "True", "Imported", "the export was imported")
            if imported
            else condition("Imported", "False", reason, message),
        )
    return {
        "phase": Phase.FAILED,
        "observedGeneration": generation,
        "progress": {
            **(status.get("progress") or {}),
            "step": Step.FAILED,
            "message": message,
            "updated": now_iso(),
        },
        "conditions": merge_conditions(status.get("conditions"), updates, generation),
    }


def waiting_for_source(status: dict, generation: int) -> dict:
    return {
        "phase": Phase.PENDING,
        "observedGeneration": generation,
        "progress": {
            "step": Step.WAITING,
            "percent": 0,
            "message": "no spec.source yet",
            "updated": now_iso(),
        },
        "conditions": merge_conditions(
            status.get("conditions"),
            [
                condition("Imported", "False", "NoSource", "spec.source names no export yet"),
                _ready_condition(status),
            ],
            generation,
        ),
    }


def spec_invalid(status: dict, generation: int, message: str) -> dict:
    return training_failed(status, generation, "InvalidSpec", message, imported=False)
