"""The Chatbot's status: phase, Kubernetes-style conditions, progress.

All the operator knows lives in `status`, so a restarted operator (or `kubectl get cb`)
sees exactly where each chatbot is. Each builder returns a merge patch for `status`;
conditions keep their `lastTransitionTime` unless their status really changes.

    phase      Pending → Training → Ready | Failed   (a spec change starts Training again)
    Imported   the export was read into a corpus
    Trained    a model version was trained and uploaded
    Served     the model server answers with the newest trained version (`modelVersion`):
               False/Loading from the Job's success until `GetModelStatus` says AVAILABLE,
               False/LoadTimeout when it did not within `Settings.serving_load_deadline`
    Ready      some version answers (`servedVersion`; stays True while a retrain runs)

Between the Job's success and the model server's AVAILABLE the phase stays Training with
`progress.step` "loading" (the API shows it as Deploying): only an answering model is Ready.
That step's `progress.updated` is when the loading began (nothing rewrites progress while
it loads), which the load deadline counts from. Past the deadline the chatbot goes back to
the version that answers (phase Ready) or, with none, to Failed: either way a retrain can
start again, and the version that never loaded leaves the model server's list.

What the model server holds of a chatbot is `serving_versions(status)`: the version that
answers, and beside it the one loading, so the old one is dropped only once the new one is
AVAILABLE and a restarted model-server pod still loads a version that answers.
"""

from __future__ import annotations

import datetime

from mimical.chatbot import Phase, Step

CONDITION_TYPES = ("Imported", "Trained", "Served", "Ready")


def now_iso() -> str:
    return (
        datetime.datetime.now(datetime.UTC)
        .replace(microsecond=0)
        .isoformat()
        .replace("+00:00", "Z")
    )


def merge_conditions(current: list[dict] | None, updates: list[dict], generation: int) -> list:
    """`current` with `updates` applied, in the fixed `CONDITION_TYPES` order."""
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
    """Ready is about what answers: a retrain or a failed retrain keeps the old version up."""
    if status.get("servedVersion"):
        return condition("Ready", "True", "Serving", f"version {status['servedVersion']} answers")
    if status.get("modelVersion"):
        message = f"version {status['modelVersion']} is not answering yet"
        return condition("Ready", "False", "Loading", message)
    return condition("Ready", "False", "NoModel", "no model version has been trained yet")


def awaiting_model_server(status: dict) -> bool:
    """The Job's outcome is recorded; the trained version waits to answer."""
    step = (status.get("progress") or {}).get("step")
    return status.get("phase") == Phase.TRAINING and step == Step.LOADING


def serving_versions(status: dict) -> list[int]:
    """The versions the model server must hold for this chatbot, oldest first: the one
    that answers (`servedVersion`) and, while it loads, the newly trained `modelVersion`."""
    versions = {status.get("servedVersion")}
    if awaiting_model_server(status):
        versions.add(status.get("modelVersion"))
    return sorted(int(version) for version in versions if version)


def _parse_time(timestamp: str) -> datetime.datetime | None:
    try:
        return datetime.datetime.fromisoformat(timestamp.replace("Z", "+00:00"))
    except (AttributeError, ValueError):
        return None


def loading_overdue(status: dict, deadline_seconds: float) -> bool:
    """The trained version has been loading longer than `deadline_seconds` (counted from
    the loading step's `progress.updated`; a status without one starts no clock)."""
    started = _parse_time((status.get("progress") or {}).get("updated") or "")
    if started is None:
        return False
    waited = datetime.datetime.now(datetime.UTC) - started
    return waited.total_seconds() > deadline_seconds


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
    """The Job uploaded `version`: it is listed for serving, and waits to answer."""
    trained = {**status, "modelVersion": version}
    return {
        "phase": Phase.TRAINING,
        "observedGeneration": generation,
        "modelVersion": version,
        "modelURI": model_uri,
        "endpoint": endpoint,
        "metrics": metrics,
        "progress": {
            "step": Step.LOADING,
            "percent": 99,
            "message": f"version {version} trained; waiting for the model server to load it",
            "updated": now_iso(),
        },
        "conditions": merge_conditions(
            status.get("conditions"),
            [
                condition("Imported", "True", "Imported", "the export was imported"),
                condition(
                    "Trained", "True", "Trained", f"version {version} uploaded to {model_uri}"
                ),
                condition("Served", "False", "Loading", f"version {version} is loading"),
                _ready_condition(trained),
            ],
            generation,
        ),
    }


def still_loading(status: dict, why: str) -> dict | None:
    """The model server does not answer with `modelVersion` yet; None if already said."""
    message = f"version {status['modelVersion']} is not available yet: {why}"
    served = {c["type"]: c for c in status.get("conditions") or []}.get("Served") or {}
    if served.get("message") == message:
        return None
    return {
        "conditions": merge_conditions(
            status.get("conditions"),
            [condition("Served", "False", "Loading", message)],
            status["observedGeneration"],
        )
    }


def load_timed_out(status: dict, why: str, deadline_seconds: float) -> dict:
    """The trained version did not answer within the deadline: back to the version that
    answers (Ready), or Failed when there is none; Served=False/LoadTimeout says why."""
    version, served = status["modelVersion"], status.get("servedVersion")
    message = f"version {version} did not answer within {deadline_seconds:g} s: {why}; " + (
        f"version {served} answers" if served else "no version answers"
    )
    progress = {
        "step": Step.DONE if served else Step.FAILED,
        "percent": 100 if served else (status.get("progress") or {}).get("percent", 0),
        "message": message,
        "updated": now_iso(),
    }
    return {
        "phase": Phase.READY if served else Phase.FAILED,
        "progress": progress,
        "conditions": merge_conditions(
            status.get("conditions"),
            [
                condition("Served", "False", "LoadTimeout", message),
                _ready_condition(status)
                if served
                else condition("Ready", "False", "LoadTimeout", message),
            ],
            status["observedGeneration"],
        ),
    }


def model_served(status: dict, endpoint: str) -> dict:
    """The model server reported `modelVersion` AVAILABLE: the chatbot answers, Ready.

    The generation is the one whose Job trained it (a spec changed since then still
    gets its own Job: `start_training` compares it with the resource's).
    """
    version, generation = status["modelVersion"], status["observedGeneration"]
    answering = {**status, "servedVersion": version}
    answers = f"version {version} answers on {endpoint}"
    return {
        "phase": Phase.READY,
        "servedVersion": version,
        "progress": {
            "step": Step.DONE,
            "percent": 100,
            "message": f"version {version} is live",
            "updated": now_iso(),
        },
        "conditions": merge_conditions(
            status.get("conditions"),
            [
                condition("Served", "True", "Available", answers),
                _ready_condition(answering),
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
