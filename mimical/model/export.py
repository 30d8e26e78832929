"""SavedModel export in TensorFlow Serving's layout, and the checks that keep it servable.

`MODEL_BASE/NAME/VERSION/` holds `saved_model.pb` + `variables/` with the signatures
`reply` and `serving_default`, and `assets.extra/` (ignored by TF Serving) with
`metrics.json`, `curve.json`, `config.json`, `split.json` and the tokens
(`tokenizer.json` for subword models, `vocabulary.json` for character ones): the
`*_FILE` names below, the one place that spells them. A version appears
atomically: it is written under a hidden name and renamed, so a server watching the
base path never loads half a model.

    python -m mimical.model.export MODEL_DIR   # list the ops of an export, flag non-core ones
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from mimical.atomic import rename_new, staging_directory
from mimical.errors import InputError, NotFoundError
from mimical.storage import SAVED_MODEL_FILE

SIGNATURE = "reply"
EXTRA_DIR = "assets.extra"
# The files of `EXTRA_DIR` that training writes and evaluation, the API and the operator read.
METRICS_FILE = "metrics.json"
CURVE_FILE = "curve.json"
CONFIG_FILE = "config.json"
SPLIT_FILE = "split.json"
TOKENIZER_FILE = "tokenizer.json"  # a subword model's tokens (config.tokens == "pieces")
VOCABULARY_FILE = "vocabulary.json"  # a character model's


def tokens_file(tokens: str) -> str:
    """The file of `EXTRA_DIR` holding a model's tokens, by its `ModelConfig.tokens`."""
    return TOKENIZER_FILE if tokens == "pieces" else VOCABULARY_FILE


def versions(model_dir: Path) -> list[int]:
    """Existing versions of one model, oldest first."""
    if not Path(model_dir).is_dir():
        return []
    return sorted(int(p.name) for p in Path(model_dir).iterdir() if p.name.isdigit())


def export_generator(generator, model_base: Path, name: str, extras: dict[str, object]) -> Path:
    """Save `generator` (a ReplyGenerator) as the next version of `name`; return its dir.

    `extras` maps file names in `assets.extra/` to JSON-serialisable content.
    """
    import tensorflow as tf

    model_dir = Path(model_base) / name
    model_dir.mkdir(parents=True, exist_ok=True)
    # A staging name of this writer's own: two exports of one name never share (or
    # delete) each other's half-written directory; the rename picks the version.
    with staging_directory(model_dir / "export") as staging:
        tf.saved_model.save(
            generator,
            str(staging),
            signatures={SIGNATURE: generator.reply, "serving_default": generator.reply},
        )
        (staging / EXTRA_DIR).mkdir()
        for file_name, content in extras.items():
            (staging / EXTRA_DIR / file_name).write_text(json.dumps(content, indent=1))
        version = (versions(model_dir) or [0])[-1] + 1
        while not rename_new(staging, model_dir / str(version)):
            version += 1  # another run took this version meanwhile
        return model_dir / str(version)


def resolve_export(path: Path) -> Path:
    """Accept a version dir or a model dir (→ its newest version)."""
    path = Path(path)
    if (path / SAVED_MODEL_FILE).is_file():
        return path
    found = versions(path)
    if found:
        return path / str(found[-1])
    raise NotFoundError(f"{path}: not a model export (no saved_model.pb or version dirs)")


def read_extra(export_dir: Path, file_name: str):
    path = Path(export_dir) / EXTRA_DIR / file_name
    if not path.is_file():
        raise InputError(f"{path}: missing; was this model exported by `mimical train`?")
    return json.loads(path.read_text())


def load_export(export_dir: Path):
    """The exported ReplyGenerator, with `reply` and `score` callable."""
    import tensorflow as tf

    return tf.saved_model.load(str(resolve_export(export_dir)))


def export_parts(export_dir: Path) -> tuple[dict, object, object]:
    """(weights, tokenizer, config) of an export: what `reply_generator` needs to build
    the same network again, with other decoding settings."""
    from mimical.model.model import ATTENTION_PARTS, ModelConfig, Vocabulary
    from mimical.model.tokenizer import Tokenizer

    export_dir = resolve_export(export_dir)
    loaded = load_export(export_dir)
    config = ModelConfig.from_json(json.dumps(read_extra(export_dir, CONFIG_FILE)))
    tokens = json.dumps(read_extra(export_dir, tokens_file(config.tokens)))
    if config.tokens == "pieces":
        tokenizer = Tokenizer.from_json(tokens)
    else:
        tokenizer = Vocabulary.from_json(tokens)
    weights = {"embedding": loaded.embedding.numpy()}
    for layer, variables in enumerate(loaded.gru):
        for part, variable in zip(("kernel", "recurrent_kernel", "bias"), variables, strict=True):
            weights[f"gru_{layer}_{part}"] = variable.numpy()
    for part in ("projection_kernel", "projection_bias", "logits_kernel", "logits_bias"):
        if hasattr(loaded, part):
            weights[part] = getattr(loaded, part).numpy()
    for part, variable in zip(ATTENTION_PARTS, getattr(loaded, "attention", ()), strict=False):
        weights[f"attention_{part}"] = variable.numpy()
    return weights, tokenizer, config


def graph_op_types(export_dir: Path) -> set[str]:
    """Every op type in the export: the graph and all functions in its library."""
    from tensorflow.core.protobuf import saved_model_pb2

    saved_model = saved_model_pb2.SavedModel()
    saved_model.ParseFromString((resolve_export(export_dir) / SAVED_MODEL_FILE).read_bytes())
    ops = set()
    for meta_graph in saved_model.meta_graphs:
        ops.update(node.op for node in meta_graph.graph_def.node)
        for function in meta_graph.graph_def.library.function:
            ops.update(node.op for node in function.node_def)
    return ops


def non_core_ops(ops: set[str]) -> list[str]:
    """The ops that stock TensorFlow (and so `tensorflow_model_server`) does not define."""
    import tensorflow as tf  # noqa: F401  (registers the core ops)
    from tensorflow.python.framework import op_def_registry

    # Function calls in the graph name library functions, which are checked above.
    return sorted(op for op in ops if op_def_registry.get(op) is None)


if __name__ == "__main__":
    op_types = graph_op_types(Path(sys.argv[1]))
    print("\n".join(sorted(op_types)))
    print(f"non-core: {non_core_ops(op_types) or 'none'}")
