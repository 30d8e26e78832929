"""The build pipeline: fetch → import → store corpus → train → store model.

Every way a chatbot gets built runs `build_chatbot`: the local orchestrator's worker
process (`mimical serve`, `mimical demo`) and the Kubernetes training Job
(`mimical.kube.training_job`). Results land in storage's layout (`mimical.storage`):

    source                        an export (file or zip) or a corpus (.jsonl) in storage
    corpora/NAME/VERSION.jsonl    the imported corpus
    models/NAME/VERSION/          the SavedModel, `saved_model.pb` written last

The caller picks the version with `mimical.storage.next_version` (one more than the
highest stored: storage decides) and gets progress on one scale: the build's phase
(Importing → Training → Deploying) and the fraction of the whole build done (0..1),
with a short message.

A `MimicalError` (a bad export, too small a corpus, storage down) leaves nothing
behind: the corpus and model version this build stored are deleted, and the error is
raised again with this machine's paths removed, so it names files only within the
export (`export.zip:inbox/a/message_1.json: corrupt JSON`). Even that detail is the
owner's alone: it names the owner's chat partners (Messenger folders are named after
them; an ambiguous "who is me" lists the most frequent senders). It is stored at
`failure_key(NAME)`, which the API shows to the owner token only; status, Events,
logs and everyone else get `public_failure(error)`, a generic line per error kind.

    result = build_chatbot(storage, "alice", "uploads/alice/1/export.zip",
                           next_version(storage, "alice"), print)
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from mimical.chatbot import BUILD_PHASES, Phase
from mimical.errors import (
    InputError,
    MimicalError,
    NotFoundError,
    TooLargeError,
    UnavailableError,
    UnsupportedFormatError,
)
from mimical.storage import Storage, corpus_key, failure_key, model_prefix

# The share of the whole build each of `BUILD_PHASES` ends at.
PHASE_ENDS = {Phase.IMPORTING: 0.1, Phase.TRAINING: 0.9, Phase.DEPLOYING: 1.0}
CORPUS_SUFFIX = ".jsonl"

# (phase, fraction of the whole build done, message)
ProgressCallback = Callable[[Phase, float, str], None]


def overall(phase: Phase, fraction: float) -> float:
    """Map `fraction` (0..1) of `phase` onto the whole build's 0..1."""
    index = BUILD_PHASES.index(phase)
    start = PHASE_ENDS[BUILD_PHASES[index - 1]] if index else 0.0
    return start + (PHASE_ENDS[phase] - start) * min(1.0, max(0.0, fraction))


def import_message(done: int, total: int | None) -> str:
    # Some exports (Telegram) do not say up front how many chats they hold.
    return f"importing: {done}/{total} chats" if total else f"importing: {done} chats"


def training_message(update: dict) -> str:
    """`train_persona`'s progress dict in a few words: `training: epoch 2, loss 3.14`."""
    detail = ", ".join(
        f"{key} {update[key]:.3g}" if isinstance(update[key], float) else f"{key} {update[key]}"
        for key in ("epoch", "loss")
        if update.get(key) is not None
    )
    step = update.get("phase", "training")
    message = "training" + (f" ({step})" if step != "training" else "")
    return message + (f": {detail}" if detail else "")


# What a failed build says to anyone but its owner, by error kind (most specific first).
PUBLIC_FAILURES = (
    (TooLargeError, "the export is too large"),
    (UnsupportedFormatError, "the file is not a supported chat export"),
    (InputError, "the export could not be used"),
    (NotFoundError, "the export was not found"),
    (UnavailableError, "a service was unavailable; try again later"),
)
OWNER_HINT = "the owner token shows why"


def public_failure(error: BaseException) -> str:
    """A failed build's one line for status, Events and logs: no file or person named."""
    reason = next((text for kind, text in PUBLIC_FAILURES if isinstance(error, kind)), "it stopped")
    return f"build failed: {reason} ({OWNER_HINT})"


@dataclass(frozen=True)
class BuildResult:
    version: int
    files: int  # objects stored under models/NAME/VERSION/
    import_stats: dict  # `import_exports`' stats; empty for a corpus source
    metrics: dict


def build_chatbot(
    storage: Storage,
    name: str,
    source_key: str,
    version: int,
    on_progress: ProgressCallback,
    *,
    source_storage: Storage | None = None,
    me: str | None = None,
    delete_source: bool = False,
    train_options: dict | None = None,
) -> BuildResult:
    """Build `version` of `name` from the export or corpus at `source_key`.

    `source_storage` holds the source when it is not `storage` (a Job's `s3://` source
    in another bucket); `delete_source` removes it once imported (and on failure), so
    raw exports do not outlive their import. `train_options` go to `train_persona`.
    Raises `MimicalError` after cleaning up (see the module docstring).
    """
    source_storage = source_storage or storage
    scratch = Path(tempfile.mkdtemp(prefix=f"mimical-build-{name}-"))
    source_name = PurePosixPath(source_key).name
    local_source = source_storage.local_path(source_key)
    # Where the source sits on this machine or in storage: cut from error messages.
    download = scratch / "source"
    source_folder = source_storage.url(source_key)[: -len(source_name)]
    private = [f"{download}{os.sep}", f"{scratch}{os.sep}", source_folder]
    if local_source is not None:
        private.append(f"{local_source.parent}{os.sep}")
    try:
        storage.delete_prefix(failure_key(name))  # an older failure's reason is stale now
        # Progress is public for a public chatbot: it never names the export's files
        # (`WhatsApp Chat with Jane Doe.txt` names a chat partner).
        on_progress(Phase.IMPORTING, 0.0, "importing the export")
        source = local_source or source_storage.get_file(source_key, download / source_name)
        corpus = scratch / "corpus.jsonl"
        if source.suffix == CORPUS_SUFFIX:
            stats = {}
            shutil.copyfile(source, corpus)  # the source may be deleted below
        else:
            stats = _import(source, corpus, me, on_progress)
        if local_source is None:
            source.unlink()  # a downloaded export is not needed on this disk any more
        storage.put_file(corpus_key(name, version), corpus)
        if delete_source:
            source_storage.delete_prefix(source_key)
        if stats:
            message = f"training on {stats['pairs']} examples from {stats['format']}"
        else:
            message = "training on the corpus"
        on_progress(Phase.TRAINING, overall(Phase.TRAINING, 0.0), message)
        result = _train(corpus, scratch / "models", name, on_progress, train_options or {})
        on_progress(Phase.DEPLOYING, overall(Phase.DEPLOYING, 0.0), f"storing version {version}")
        files = storage.put_tree(model_prefix(name, version), Path(result.export_dir))
        on_progress(Phase.DEPLOYING, 1.0, f"version {version} stored")
        return BuildResult(version, files, dict(stats), dict(result.metrics))
    except MimicalError as error:
        detail = without_prefixes(str(error), private)
        remove_build(storage, name, version)
        if delete_source:
            source_storage.delete_prefix(source_key)
        _record_failure(storage, name, detail)
        raise type(error)(detail) from None
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def remove_build(storage: Storage, name: str, version: int) -> None:
    """Delete what a build of `version` stored: nothing half-made stays behind."""
    storage.delete_prefix(corpus_key(name, version))
    storage.delete_prefix(model_prefix(name, version))


def _record_failure(storage: Storage, name: str, detail: str) -> None:
    """Keep the full reason for the owner; storage being down must not hide the error."""
    with contextlib.suppress(MimicalError):
        storage.put_bytes(failure_key(name), detail.encode())


def read_failure(storage: Storage, name: str) -> str | None:
    """The full reason `name`'s last build failed (for its owner), None if none is stored."""
    with tempfile.TemporaryDirectory(prefix="mimical-") as scratch:
        try:
            path = storage.get_file(failure_key(name), Path(scratch) / "failure.txt")
        except NotFoundError:
            return None
        return path.read_text(encoding="utf-8", errors="replace")


def without_prefixes(message: str, prefixes: list[str]) -> str:
    """`message` with the given folder prefixes cut off the paths it names."""
    for prefix in prefixes:
        message = message.replace(prefix, "")
    return message


def _import(export: Path, corpus: Path, me: str | None, on_progress: ProgressCallback) -> dict:
    from mimical.corpus.importer import import_exports

    def importing(done: int, total: int | None) -> None:
        fraction = done / total if total else 0.0
        on_progress(
            Phase.IMPORTING, overall(Phase.IMPORTING, fraction), import_message(done, total)
        )

    return dict(import_exports([export], corpus, me=me, progress=importing))


def _train(corpus: Path, model_base: Path, name: str, on_progress, options: dict):
    from mimical.model.train import train_persona  # TensorFlow: only once import worked

    def training(update: dict) -> None:
        fraction = float(update.get("fraction") or 0.0)
        on_progress(Phase.TRAINING, overall(Phase.TRAINING, fraction), training_message(update))

    return train_persona(corpus, model_base, name, on_progress=training, **options)
