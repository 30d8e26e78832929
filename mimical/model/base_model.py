"""The base model as an artifact, and who may never be in it.

`mimical/model/base/` ships in the package and describes itself: `weights.npz`
(float16), `tokenizer.json`, `config.json` and `base.json` (version, the exclusion rule,
data sizes, metrics on the held-out people, the command that made it, its time).
`mimical.model.pretrain` makes it; `mimical train` fine-tunes it (`load_base`).

Held-out people never reach the base, so that fine-tuning and evaluating on one of them
measures what a new user would get. The rule, in one place for pretraining, the sense
reference and the benchmarks:

- a sender is held out when the sha256 hex digest of its chitchat sender id starts
  with 'b' or 'c' (about 1/8 of the senders);
- a conversation is left out of the base when any of its senders is held out or is the
  demo persona (`mimical.samples.plan.DEMO_PERSONA`).
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mimical.atomic import atomic_directory
from mimical.errors import InputError, NotFoundError
from mimical.model.model import ModelConfig
from mimical.model.tokenizer import Tokenizer
from mimical.samples.plan import DEMO_PERSONA

BASE_DIR = Path(__file__).with_name("base")
BASE_FORMAT = "mimical-base-model"
WEIGHTS_FILE = "weights.npz"
HELD_OUT_DIGEST_PREFIXES = ("b", "c")
HELD_OUT_RULE = (
    "a conversation is left out when any sender's sha256(sender id) hex digest starts with "
    f"{' or '.join(HELD_OUT_DIGEST_PREFIXES)}, or the demo persona ({DEMO_PERSONA}) takes part"
)


def is_held_out(sender_id: str) -> bool:
    """True for a held-out person: never in the base model's training data."""
    return _digest(sender_id).startswith(HELD_OUT_DIGEST_PREFIXES)


def held_out_conversation(sender_ids: Iterable[str]) -> bool:
    """True when a conversation with these senders must stay out of the base model."""
    return any(s == DEMO_PERSONA or is_held_out(s) for s in sender_ids)


# The held-out people `benchmarks/quality_bench.py` reports on, by the size it asks for
# (its `pick_person`: the held-out person with about that many replies and most chats).
BENCH_PEOPLE = {
    "300": "e7a2c264-4b26-4ff1-9339-add47d510216",
    "1000": "4c7833b9-1f67-4932-8c7d-c79e75ef421a",
    "5000": "720840be-e522-47ba-9e9f-143f66372673",
}
DEVELOPMENT_DIGEST_PREFIX = "b"
DEVELOPMENT_RULE = (
    "held-out conversations where a sender's sha256(sender id) hex digest starts with "
    f"{DEVELOPMENT_DIGEST_PREFIX}, none starts with another held-out letter, and neither the "
    "demo persona nor a bench person takes part"
)


def _digest(sender_id: str) -> str:
    return hashlib.sha256(sender_id.encode()).hexdigest()


def development_conversation(sender_ids: Iterable[str]) -> bool:
    """True for a conversation of the development group, where every choice is made
    (architecture, size, decoding, calibration grids, budgets). The other held-out
    conversations (the other letter, and the bench people's) are the clean test: nothing
    tuned, looked at or reported is measured on them but the one test run per release."""
    ids = list(sender_ids)
    letters = {_digest(s)[0] for s in ids if is_held_out(s)}
    excluded = DEMO_PERSONA in ids or any(s in BENCH_PEOPLE.values() for s in ids)
    return letters == {DEVELOPMENT_DIGEST_PREFIX} and not excluded


@dataclass(frozen=True)
class Base:
    """The shipped base model: what `mimical train` fine-tunes."""

    version: int
    config: ModelConfig
    tokenizer: Tokenizer
    weights: dict  # float32 arrays by `network_weights` names
    info: dict  # base.json: the rule, data sizes, metrics, how it was made


def save_base(output: Path, config: ModelConfig, tokenizer: Tokenizer, weights, info) -> None:
    """Write the artifact under a temporary name, then swap it in."""
    with atomic_directory(output) as staging:
        # float16 halves the size; fine-tuning and serving compute in float32.
        with (staging / WEIGHTS_FILE).open("wb") as out:
            np.savez_compressed(out, **{k: v.astype(np.float16) for k, v in weights.items()})
        tokenizer.save(staging / "tokenizer.json")
        (staging / "config.json").write_text(config.to_json())
        (staging / "base.json").write_text(json.dumps(info, indent=1))


@functools.cache
def load_base(path: Path = BASE_DIR) -> Base:
    """The base artifact at `path` (default: the one shipped in the package)."""
    info_path = Path(path) / "base.json"
    if not info_path.is_file():
        raise NotFoundError(f"{path}: no base model here; build it with `mimical pretrain`")
    info = json.loads(info_path.read_text())
    if info.get("format") != BASE_FORMAT:
        raise InputError(f"{info_path}: not a {BASE_FORMAT} file")
    with np.load(Path(path) / WEIGHTS_FILE) as arrays:
        weights = {k: arrays[k].astype(np.float32) for k in arrays.files}
    return Base(
        version=info["version"],
        config=ModelConfig.from_json((Path(path) / "config.json").read_text()),
        tokenizer=Tokenizer.load(Path(path) / "tokenizer.json"),
        weights=weights,
        info=info,
    )
