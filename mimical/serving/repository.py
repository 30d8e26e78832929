"""The models a model server has loaded: the newest version of each, kept up to date.

The model base follows TF Serving's layout, `BASE/NAME/VERSION/saved_model.pb`, in a
local folder or under an `s3://` URL (downloaded to a local cache first, since
TensorFlow loads SavedModels from files); either way it is read as a `mimical.storage`
rooted at the base, listed by storage's one model listing. `refresh()` compares what is there with
what is loaded: it loads new models and newer versions, and unloads models whose
folders are gone. A version that fails to load (say, still being written) is
retried on the next refresh while the previous version keeps answering.

Usage:

    repository = ModelRepository("/srv/models")
    repository.refresh()
    repository.get("alice").signatures["reply"](context=..., ...)
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from mimical.atomic import atomic_directory
from mimical.config import Settings
from mimical.errors import NotFoundError
from mimical.serving.batching import Batcher
from mimical.storage import SAVED_MODEL_FILE, complete_model_versions, open_storage

log = logging.getLogger(__name__)

# A version that failed to load (often: still being copied) is tried again after this.
RETRY_FAILED_SECONDS = 10.0


@dataclass(frozen=True)
class LoadedModel:
    """One loaded SavedModel version and what GetModelMetadata reports about it."""

    name: str
    version: int
    signatures: dict  # signature name -> concrete function
    batchers: dict  # signature name -> Batcher running that function
    signature_defs: dict  # signature name -> SignatureDef proto
    saved_model: object  # keeps the loaded trackable (and its variables) alive

    def close(self) -> None:
        for batcher in self.batchers.values():
            batcher.close()


class ModelRepository:
    """Thread-safe map of model name to its loaded newest version."""

    def __init__(self, model_base: str, settings: Settings | None = None):
        self.model_base = model_base
        # Keys under the base read `NAME/VERSION/...`: storage's models/ folder itself.
        self._storage = open_storage(model_base, settings or Settings.from_env())
        self._cache_dir: Path | None = None
        if self._storage.local_path() is None:
            self._cache_dir = Path(tempfile.mkdtemp(prefix="mimical-models-"))
        self._models: dict[str, LoadedModel] = {}
        self._failed: dict[tuple[str, int], float] = {}
        self._lock = threading.Lock()
        self._refresh_lock = threading.Lock()

    def get(self, name: str, version: int | None = None) -> LoadedModel:
        with self._lock:
            model = self._models.get(name)
        if model is None or (version is not None and version != model.version):
            wanted = f"version {version} of " if version is not None else ""
            raise NotFoundError(f"{wanted}model {name!r} is not loaded from {self.model_base}")
        return model

    def loaded(self) -> dict[str, int]:
        with self._lock:
            return {name: model.version for name, model in self._models.items()}

    def available(self) -> dict[str, list[int]]:
        """Complete versions per model name found under the model base, ascending."""
        return complete_model_versions(self._storage, base="")

    def refresh(self) -> dict[str, int]:
        """Load new models and versions, unload deleted ones; return what is loaded."""
        with self._refresh_lock:
            available = self.available()
            for name, versions in available.items():
                current = self.loaded().get(name)
                for version in reversed(versions):
                    if version == current:
                        break
                    failed_at = self._failed.get((name, version))
                    if failed_at and time.monotonic() - failed_at < RETRY_FAILED_SECONDS:
                        continue
                    if self._load(name, version):
                        break
            for name in set(self.loaded()) - set(available):
                with self._lock:
                    model = self._models.pop(name)
                model.close()
                self._drop_cache(name, model.version)
                log.info("unloaded model %s (its folder is gone)", name)
            return self.loaded()

    def _load(self, name: str, version: int) -> bool:
        import tensorflow as tf

        try:
            path = self._fetch(name, version)
            saved_model = tf.saved_model.load(str(path))
            signature_defs = _read_signature_defs(path)
        except Exception as error:  # a broken or half-written export must not stop serving
            log.warning("cannot load model %s version %s: %s", name, version, error)
            self._failed[(name, version)] = time.monotonic()
            return False
        self._failed.pop((name, version), None)
        signatures = dict(saved_model.signatures)
        batchers = {key: Batcher(function) for key, function in signatures.items()}
        model = LoadedModel(name, version, signatures, batchers, signature_defs, saved_model)
        with self._lock:
            previous = self._models.get(name)
            self._models[name] = model
        if previous is not None:
            previous.close()
            self._drop_cache(name, previous.version)
        log.info("loaded model %s version %s", name, version)
        return True

    def _fetch(self, name: str, version: int) -> Path:
        prefix = f"{name}/{version}/"
        local = self._storage.local_path(prefix)
        if local is not None:
            return local
        target = self._cache_dir / name / str(version)
        if not target.exists():
            with atomic_directory(target, private=True) as partial:
                self._storage.get_tree(prefix, partial)
        return target

    def _drop_cache(self, name: str, version: int) -> None:
        if self._cache_dir is not None:
            shutil.rmtree(self._cache_dir / name / str(version), ignore_errors=True)

    def close(self) -> None:
        with self._lock:
            models, self._models = list(self._models.values()), {}
        for model in models:
            model.close()
        if self._cache_dir is not None:
            shutil.rmtree(self._cache_dir, ignore_errors=True)


def _read_signature_defs(path: Path) -> dict:
    """Signature definitions straight from saved_model.pb, as TF Serving reports them."""
    from tensorflow.core.protobuf import saved_model_pb2

    saved_model = saved_model_pb2.SavedModel()
    saved_model.ParseFromString((path / SAVED_MODEL_FILE).read_bytes())
    meta_graph = saved_model.meta_graphs[0]
    return {
        name: signature
        for name, signature in meta_graph.signature_def.items()
        if not name.startswith("__")
    }
