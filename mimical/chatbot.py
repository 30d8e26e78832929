"""A chatbot's words: its name rule, its build `Phase` and `Step`, and the `Chatbot` value.

Every layer speaks of chatbots (the registries, the build pipeline, the operator,
the API schema, the dialog), so these live in a leaf that imports nothing of
mimical but `mimical.errors`: whoever needs a `Phase` or the name rule gets it
without pulling in a registry, storage or a Kubernetes client.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from enum import StrEnum

from mimical.errors import InputError

# A DNS-1123 label, since the name is also the Chatbot resource and model name; at most
# 40 characters so that the training Job's name (`NAME-train-GENERATION`) stays a label too.
NAME_MAX_LENGTH = 40
NAME_PATTERN = re.compile(rf"^[a-z0-9]([-a-z0-9]{{0,{NAME_MAX_LENGTH - 2}}}[a-z0-9])?$")
DISPLAY_NAME_MAX = 100
PASSWORD_MAX = 1024


class Phase(StrEnum):
    """Where a chatbot's build is; the API, the dialog and the operator's status share it.

    The operator's `status.phase` uses Pending/Training/Ready/Failed; the API also shows
    Importing and Deploying, read from the training Job's progress.
    """

    PENDING = "Pending"
    IMPORTING = "Importing"
    TRAINING = "Training"
    DEPLOYING = "Deploying"
    READY = "Ready"
    FAILED = "Failed"


# The phases a build goes through, in order (`mimical.build` runs them).
BUILD_PHASES = (Phase.IMPORTING, Phase.TRAINING, Phase.DEPLOYING)

# The phases a Chatbot resource's `status.phase` takes (the CRD's enum): the operator
# knows only that a Job runs; the finer build phases come from its `Step`.
OPERATOR_PHASES = (Phase.PENDING, Phase.TRAINING, Phase.READY, Phase.FAILED)


class Step(StrEnum):
    """A build's step as a Chatbot's `status.progress.step` spells it.

    The operator writes `waiting` (no source yet), `scheduled` (Job created), `loading`
    (the Job's version is trained and listed; the model server does not answer with it
    yet), `done` and `failed`; the training Job writes each build phase's step
    (`step_of`) and its own `done` or `failed`, which the operator copies in.
    """

    WAITING = "waiting"
    SCHEDULED = "scheduled"
    IMPORTING = "importing"
    TRAINING = "training"
    DEPLOYING = "deploying"
    LOADING = "loading"
    DONE = "done"
    FAILED = "failed"


def step_of(phase: Phase) -> Step:
    """The step of a build phase (Importing, Training or Deploying): its name in lower case."""
    return Step(phase.value.lower())


# What the API shows of a chatbot whose resource is in phase Training, by its step.
STEP_PHASES = (
    {Step.SCHEDULED: Phase.IMPORTING}
    | {step_of(phase): phase for phase in BUILD_PHASES}
    | {Step.LOADING: Phase.DEPLOYING}
)


@dataclass(frozen=True, slots=True)
class Chatbot:
    """A chatbot as the API shows it; secrets stay inside the registry."""

    name: str
    display_name: str
    public: bool
    has_password: bool
    phase: Phase = Phase.PENDING
    progress: float = 0.0  # of the current phase's build, 0..1
    message: str = ""
    # The version being served (None until the first build is Ready) and all built versions.
    model_version: int | None = None
    versions: list[int] = field(default_factory=list)
    metrics: dict = field(default_factory=dict)
    me: str | None = None
    created_at: float = 0.0
    updated_at: float = 0.0
    # Changes when the chatbot is deleted and created again or its password changes. A
    # chat session remembers the stamp it was opened under and ends when it differs, so
    # an owner rotating a password (or a name) shuts out everyone who knew the old one.
    access_stamp: str = ""

    @property
    def servable(self) -> bool:
        """True once a model version can answer, even while a retrain is running."""
        return self.model_version is not None


def validate_name(name: str) -> str:
    if not isinstance(name, str) or not NAME_PATTERN.match(name):
        raise InputError(
            f"invalid chatbot name {name!r}: use 1-{NAME_MAX_LENGTH} lowercase letters, digits "
            "and '-', "
            "starting and ending with a letter or digit"
        )
    return name


def access_stamp(identity: str, password_generation: str) -> str:
    """`Chatbot.access_stamp` from what makes this chatbot itself and its password current."""
    return hashlib.sha256(f"{identity}\0{password_generation}".encode()).hexdigest()[:24]
