"""The base model: a conversational GRU pretrained on chitchat minus the held-out people.

    mimical pretrain [--max-minutes 30] [--output mimical/model/base]

`mimical train` fine-tunes this base for each persona (ULMFiT, Howard & Ruder 2018: learn
the language once on many people's chats, then adapt it to one). The artifact,
`mimical/model/base/`, ships in the package and describes itself: `weights.npz`
(float16), `tokenizer.json`, `config.json` and `base.json` (version, the exclusion rule,
data sizes, metrics on the held-out people, the command that made it, its time).

Held-out people never reach the base, so that fine-tuning and evaluating on one of them
measures what a new user would get. The rule, in one place for training and evaluation:

- a sender is held out when the sha256 hex digest of its chitchat sender id starts
  with 'b' or 'c' (about 1/8 of the senders);
- a conversation is left out of the base when any of its senders is held out or is the
  demo persona (`mimical.samples.plan.DEMO_PERSONA`).
"""

from __future__ import annotations

import functools
import hashlib
import json
import random
import shutil
import tempfile
import time
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from mimical.corpus.schema import DEFAULT_CONTEXT_TURNS as CONTEXT_TURNS
from mimical.corpus.schema import Pair
from mimical.errors import InputError, NotFoundError
from mimical.model.model import ModelConfig
from mimical.model.tokenizer import Tokenizer
from mimical.samples.plan import DEMO_PERSONA

BASE_DIR = Path(__file__).with_name("base")
BASE_FORMAT = "mimical-base-model"
WEIGHTS_FILE = "weights.npz"
# The base network; its decoding settings travel to every persona fine-tuned from it.
BASE_CONFIG = ModelConfig(
    tokens="pieces",
    embedding_dim=128,
    units=384,
    projection_dim=128,
    dropout=0.1,
    context_chars=200,
    context_tokens=48,
    reply_tokens=64,
    min_char_count=1,
)
HELD_OUT_EVAL_PAIRS = 1000
VALIDATION_PAIRS = 500

HELD_OUT_DIGEST_PREFIXES = ("b", "c")
HELD_OUT_RULE = (
    "a conversation is left out when any sender's sha256(sender id) hex digest starts with "
    f"{' or '.join(HELD_OUT_DIGEST_PREFIXES)}, or the demo persona ({DEMO_PERSONA}) takes part"
)


def is_held_out(sender_id: str) -> bool:
    """True for a held-out person: never in the base model's training data."""
    return hashlib.sha256(sender_id.encode()).hexdigest().startswith(HELD_OUT_DIGEST_PREFIXES)


def held_out_conversation(sender_ids: Iterable[str]) -> bool:
    """True when a conversation with these senders must stay out of the base model."""
    return any(s == DEMO_PERSONA or is_held_out(s) for s in sender_ids)


@dataclass(frozen=True)
class Base:
    """The shipped base model: what `mimical train` fine-tunes."""

    version: int
    config: ModelConfig
    tokenizer: Tokenizer
    weights: dict  # float32 arrays by `network_weights` names
    info: dict  # base.json: the rule, data sizes, metrics, how it was made


def base_conversations() -> list[dict]:
    """Every chitchat conversation as {"id", "senders", "turns": [(sender, text)]}.

    A turn is one sender's consecutive messages joined by newlines, as in a corpus.
    """
    import chitchat_dataset
    import orjson

    path = Path(chitchat_dataset.__file__).with_name("dataset.json")
    conversations = []
    for chat_id, raw in sorted(orjson.loads(path.read_bytes()).items()):
        turns = []
        for turn in raw["messages"]:
            texts = [m["text"] for m in turn if m["text"].strip()]
            if texts:
                turns.append((turn[0]["sender"], "\n".join(texts)))
        if turns:
            senders = sorted({m["sender"] for turn in raw["messages"] for m in turn})
            conversations.append({"id": chat_id, "senders": senders, "turns": turns})
    return conversations


def conversation_pairs(turns: list[tuple[str, str]], offset: int | None = None) -> list[Pair]:
    """(context → reply) pairs of one conversation, for both speakers.

    With `offset`, only every `CONTEXT_TURNS + 1`-th turn from it is a reply, so the
    pairs' token sequences do not overlap and each turn is read once (pretraining: the
    context positions are trained too); without, every turn is a reply (evaluation).
    """
    stride = CONTEXT_TURNS + 1 if offset is not None else 1
    pairs = []
    for index in range(offset or 0, len(turns), stride):
        context = "\n".join(text for _, text in turns[max(0, index - CONTEXT_TURNS) : index])
        last_turn = turns[index - 1][1] if index else ""
        pairs.append(Pair("chitchat", index, context, turns[index][1], index == 0, last_turn))
    return pairs


def pretrain(
    output: Path = BASE_DIR,
    *,
    max_minutes: float = 45.0,
    passes: int = 3,
    vocab_size: int = 4096,
    seed: int = 0,
    version: int = 1,
    progress: bool = False,
    config: ModelConfig = BASE_CONFIG,
) -> dict:
    """Learn the tokenizer and the base network on chitchat minus the held-out people;
    write the base artifact to `output` (replaced atomically) and return its base.json."""
    from mimical.model.data import encode
    from mimical.model.evaluate import model_bits_per_char
    from mimical.model.model import reply_generator
    from mimical.model.train import PRETRAIN, fit

    started = time.monotonic()
    conversations = base_conversations()
    base = [c for c in conversations if not held_out_conversation(c["senders"])]
    held_out = [c for c in conversations if held_out_conversation(c["senders"])]
    # Early stopping looks at 2% of the base conversations, never at held-out people.
    validation = [c for c in base if c["id"][:2] < "05"]
    train = [c for c in base if c["id"][:2] >= "05"]
    say = print if progress else (lambda *_: None)
    say(f"{len(train)} training, {len(validation)} validation, {len(held_out)} held-out chats")

    tokenizer = Tokenizer.train((text for c in train for _, text in c["turns"]), vocab_size)
    say(f"tokenizer: {tokenizer.size} tokens ({time.monotonic() - started:.0f}s)")
    # Each pass reads every turn once, a different quarter of them as replies.
    rng = random.Random(seed)
    train_pairs = []
    for conversation in train:
        first = rng.randrange(CONTEXT_TURNS + 1)
        for offset in range(first, first + passes):
            train_pairs += conversation_pairs(conversation["turns"], offset % (CONTEXT_TURNS + 1))
    validation_pairs = [p for c in validation for p in conversation_pairs(c["turns"])]
    validation_pairs = rng.sample(validation_pairs, min(VALIDATION_PAIRS, len(validation_pairs)))
    with tempfile.TemporaryDirectory() as checkpoints:
        result = fit(
            # No dropout while the network underfits; the config's is for fine-tuning.
            replace(config, dropout=0.0),
            tokenizer.size,
            encode(train_pairs, tokenizer, config),
            encode(validation_pairs, tokenizer, config),
            held_out_chars=sum(len(p.reply) + 1 for p in validation_pairs),
            initial_weights=None,
            schedule=PRETRAIN,
            started=time.monotonic(),
            max_minutes=max_minutes,
            epochs=1,
            seed=seed,
            label="pretraining",
            checkpoint_dir=Path(checkpoints),
            run_id="base",
            progress=progress,
            eval_every=100,
        )
    pretrain_seconds = time.monotonic() - started

    # The base's own metrics: on the held-out people, every one of their turns.
    generator = reply_generator(result.weights, tokenizer, config)
    test_pairs = [p for c in held_out for p in conversation_pairs(c["turns"])]
    test_pairs = random.Random(seed).sample(test_pairs, min(HELD_OUT_EVAL_PAIRS, len(test_pairs)))
    info = {
        "format": BASE_FORMAT,
        "version": version,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "command": f"mimical pretrain --max-minutes {max_minutes:g} --passes {passes} "
        f"--vocab-size {vocab_size} --seed {seed} --base-version {version}",
        "data": "chitchat-dataset (PyPI), both speakers' (context turns → turn) pairs",
        "held_out_rule": HELD_OUT_RULE,
        "conversations": {
            "train": len(train),
            "validation": len(validation),
            "held_out": len(held_out),
        },
        "train_pairs": len(train_pairs),
        "metrics": {
            "held_out_people_bits_per_char": round(model_bits_per_char(generator, test_pairs), 4),
            "held_out_people_pairs": len(test_pairs),
            "validation_bits_per_char": round(result.best_bits, 4),
            "steps": result.steps,
            "epochs_fraction": result.curve[-1]["epoch"] if result.curve else 0,
            "stop_reason": result.stop_reason,
            "parameters": result.parameters,
            "pretrain_seconds": round(pretrain_seconds),
            "device": result.device,
        },
        "curve": result.curve,
    }
    save_base(Path(output), config, tokenizer, result.weights, info)
    return info


def save_base(output: Path, config: ModelConfig, tokenizer: Tokenizer, weights, info) -> None:
    """Write the artifact under a temporary name, then swap it in."""
    staging = output.with_name(f".{output.name}.partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        # float16 halves the size; fine-tuning and serving compute in float32.
        with (staging / WEIGHTS_FILE).open("wb") as out:
            np.savez_compressed(out, **{k: v.astype(np.float16) for k, v in weights.items()})
        tokenizer.save(staging / "tokenizer.json")
        (staging / "config.json").write_text(config.to_json())
        (staging / "base.json").write_text(json.dumps(info, indent=1))
        old = output.with_name(f".{output.name}.old")
        shutil.rmtree(old, ignore_errors=True)
        if output.exists():
            output.rename(old)
        staging.rename(output)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


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
