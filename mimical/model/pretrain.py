"""The base model: a conversational GRU pretrained on chitchat minus the held-out people.

    mimical pretrain [--epochs 3] [--units 384] [--output mimical/model/base]

`mimical train` fine-tunes this base for each persona (ULMFiT, Howard & Ruder 2018: learn
the language once on many people's chats, then adapt it to one). The artifact and the
rule for who stays out of it (held-out people, the demo persona) are in
`mimical.model.base_model`.

Each example is a turn after the last `CONTEXT_TURNS` turns before it, every context
turn marked as the replying speaker's own or the other's (`layout_context`), so the
base learns the layout that chats, suggestions and fine-tuning give the persona.
"""

from __future__ import annotations

import random
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from mimical.corpus.schema import DEFAULT_CONTEXT_TURNS as CONTEXT_TURNS
from mimical.corpus.schema import Pair, layout_context
from mimical.model.base_model import (
    BASE_DIR,
    BASE_FORMAT,
    HELD_OUT_RULE,
    held_out_conversation,
    save_base,
)
from mimical.model.model import ModelConfig
from mimical.model.tokenizer import COMMON_EMOJI, Tokenizer

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
    """(context → reply) pairs of one conversation, for both speakers: each reply's
    context marks its speaker's own earlier turns apart from the other's.

    With `offset`, only every `CONTEXT_TURNS + 1`-th turn from it is a reply, so the
    pairs' token sequences do not overlap and each turn is read once (pretraining: the
    context positions are trained too); without, every turn is a reply (evaluation).
    """
    stride = CONTEXT_TURNS + 1 if offset is not None else 1
    pairs = []
    for index in range(offset or 0, len(turns), stride):
        speaker = turns[index][0]
        before = turns[max(0, index - CONTEXT_TURNS) : index]
        context = layout_context((sender == speaker, text) for sender, text in before)
        last_turn = turns[index - 1][1] if index else ""
        pairs.append(Pair("chitchat", index, context, turns[index][1], index == 0, last_turn))
    return pairs


def pretrain(
    output: Path = BASE_DIR,
    *,
    max_minutes: float = 80.0,
    passes: int = 3,
    epochs: int = 3,
    vocab_size: int = 4096,
    seed: int = 0,
    version: int = 3,
    progress: bool = False,
    config: ModelConfig = BASE_CONFIG,
) -> dict:
    """Learn the tokenizer and the base network on chitchat minus the held-out people;
    write the base artifact to `output` (replaced atomically) and return its base.json."""
    from mimical.model.evaluate import model_bits_per_char
    from mimical.model.model import reply_generator
    from mimical.model.train import PRETRAIN, FitData, FitRun, fit

    started = time.monotonic()
    conversations = base_conversations()
    base = [c for c in conversations if not held_out_conversation(c["senders"])]
    held_out = [c for c in conversations if held_out_conversation(c["senders"])]
    # Early stopping looks at 2% of the base conversations, never at held-out people.
    validation = [c for c in base if c["id"][:2] < "05"]
    train = [c for c in base if c["id"][:2] >= "05"]
    say = print if progress else (lambda *_: None)
    say(f"{len(train)} training, {len(validation)} validation, {len(held_out)} held-out chats")

    texts = (text for c in train for _, text in c["turns"])
    tokenizer = Tokenizer.train(texts, vocab_size, extra=COMMON_EMOJI)
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
            FitData.encode(train_pairs, validation_pairs, tokenizer, config),
            FitRun(
                schedule=PRETRAIN,
                seed=seed,
                label="pretraining",
                checkpoint_dir=Path(checkpoints),
                run_id="base",
                started=time.monotonic(),
                max_minutes=max_minutes,
                epochs=epochs,
                progress=progress,
                eval_every=100,
            ),
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
        f"--epochs {epochs} --units {config.units} --vocab-size {vocab_size} --seed {seed} "
        f"--base-version {version}",
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
