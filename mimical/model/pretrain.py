"""The base model: a conversational GRU with attention over the context, pretrained on
chitchat minus the held-out people.

    mimical pretrain [--max-minutes 80] [--resume] [--checkpoints DIR] [--output DIR]

`mimical train` fine-tunes this base for each persona (ULMFiT, Howard & Ruder 2018: learn
the language once on many people's chats, then adapt it to one). The artifact and the
rule for who stays out of it (held-out people, the demo persona) are in
`mimical.model.base_model`.

Each example is a turn after the last `CONTEXT_TURNS` turns before it, every context
turn marked as the replying speaker's own or the other's (`layout_context`), so the
base learns the layout that chats, suggestions and fine-tuning give the persona. The
texts are scrubbed as a user's import is (the base reads placeholders, never learns
personal data); no sender's replies make more than `MAX_SENDER_SHARE` of the examples.

Pretraining is resumable: its checkpoint (weights, optimizer, step, curve) lives in
`--checkpoints` (default `~/.cache/mimical/pretrain/RUN`, RUN naming the network and
data), written at every held-out check. `--resume` continues that run; on a machine
without the checkpoint it continues from the base artifact at `--output` (same network
and tokenizer: its weights, with new optimizer moments after a warm-up). Every session
(its command, steps, CPU and wall seconds) is recorded in base.json.
"""

from __future__ import annotations

import collections
import hashlib
import json
import os
import random
import shutil
import sys
import time
from dataclasses import asdict, replace
from pathlib import Path

from mimical.corpus.schema import DEFAULT_CONTEXT_TURNS as CONTEXT_TURNS
from mimical.corpus.schema import Pair, layout_context
from mimical.errors import InputError, NotFoundError
from mimical.model.base_model import (
    BASE_DIR,
    BASE_FORMAT,
    DEVELOPMENT_RULE,
    HELD_OUT_RULE,
    development_conversation,
    held_out_conversation,
    load_base,
    save_base,
)
from mimical.model.model import ModelConfig
from mimical.model.tokenizer import COMMON_EMOJI, Tokenizer, placeholder_pieces

# The base network; its decoding settings travel to every persona fine-tuned from it.
BASE_CONFIG = ModelConfig(
    tokens="pieces",
    embedding_dim=128,
    units=384,
    projection_dim=128,
    attention_dim=128,
    attention_heads=4,
    dropout=0.1,
    context_chars=200,
    context_tokens=48,
    reply_tokens=64,
    min_char_count=1,
)
DEVELOPMENT_PAIRS = 1500
VALIDATION_PAIRS = 500
# One chitchat sender wrote 11% of the base's turns: capped, no one's style dominates.
MAX_SENDER_SHARE = 0.03


def checkpoints_home() -> Path:
    cache_home = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache_home) / "mimical" / "pretrain"


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


def reply_pair(turns: list[tuple[str, str]], index: int) -> Pair:
    """Turn `index` as a reply to the `CONTEXT_TURNS` turns before it."""
    speaker = turns[index][0]
    before = turns[max(0, index - CONTEXT_TURNS) : index]
    context = layout_context((sender == speaker, text) for sender, text in before)
    last_turn = turns[index - 1][1] if index else ""
    return Pair("chitchat", index, context, turns[index][1], index == 0, last_turn)


def training_pairs(conversations: list[dict], passes: int, rng: random.Random) -> list[Pair]:
    """Each pass reads every turn once, a different `CONTEXT_TURNS + 1`-th of them as
    replies (`conversation_pairs` with an offset); then each sender's replies beyond
    `MAX_SENDER_SHARE` of them all are dropped at random."""
    stride = CONTEXT_TURNS + 1
    slots = []  # (conversation, turn index)
    for number, conversation in enumerate(conversations):
        first = rng.randrange(stride)
        for offset in range(first, first + passes):
            turns = range(offset % stride, len(conversation["turns"]), stride)
            slots += [(number, index) for index in turns]
    by_sender = collections.defaultdict(list)
    for number, index in slots:
        by_sender[conversations[number]["turns"][index][0]].append((number, index))
    cap = max(1, int(MAX_SENDER_SHARE * len(slots)))
    kept = sorted(
        slot
        for own in by_sender.values()
        for slot in (rng.sample(own, cap) if len(own) > cap else own)
    )
    return [reply_pair(conversations[number]["turns"], index) for number, index in kept]


def scrubbed(conversations: list[dict]) -> list[dict]:
    """The conversations with personal data replaced, as a user's import has it."""
    from mimical.corpus.scrub import Scrubber

    scrub = Scrubber()
    return [
        {
            **c,
            "turns": list(
                zip(
                    [s for s, _ in c["turns"]],
                    scrub.scrub_all([t for _, t in c["turns"]]),
                    strict=True,
                )
            ),
        }
        for c in conversations
    ]


def development_pairs(conversations: list[dict], seed: int = 0) -> list[Pair]:
    """Up to `DEVELOPMENT_PAIRS` (context → turn) pairs, every turn a reply, of the
    development group's conversations (`mimical.model.base_model.development_conversation`)."""
    pairs = [
        p
        for c in conversations
        if development_conversation(c["senders"])
        for p in conversation_pairs(c["turns"])
    ]
    return random.Random(seed).sample(pairs, min(DEVELOPMENT_PAIRS, len(pairs)))


def run_name(config: ModelConfig, vocab_size: int, passes: int, seed: int) -> str:
    """Names a pretraining run: its checkpoint resumes only the same network and data."""
    key = json.dumps([asdict(config), vocab_size, passes, seed, MAX_SENDER_SHARE])
    return (
        f"{config.units}u-{config.attention_dim}a-" + hashlib.sha256(key.encode()).hexdigest()[:10]
    )


def pretrain(
    output: Path = BASE_DIR,
    *,
    max_minutes: float = 80.0,
    cpu_minutes: bool = False,
    resume: bool = False,
    checkpoints: Path | None = None,
    passes: int = 4,
    epochs: int = 20,
    vocab_size: int = 4096,
    seed: int = 0,
    version: int = 4,
    progress: bool = False,
    config: ModelConfig = BASE_CONFIG,
) -> dict:
    """Learn the tokenizer and the base network on chitchat minus the held-out people;
    write the base artifact to `output` (replaced atomically) and return its base.json.

    `max_minutes` is wall time, or CPU time with `cpu_minutes` (to compare designs at
    equal CPU on a shared machine). Without `resume` the run starts afresh.
    """
    from mimical.model.evaluate import context_use
    from mimical.model.generator import reply_generator
    from mimical.model.train import PRETRAIN, FitData, FitRun, fit

    started, cpu_started = time.monotonic(), time.process_time()
    say = (lambda *a: print(*a, file=sys.stderr)) if progress else (lambda *_: None)
    conversations = scrubbed(base_conversations())
    base = [c for c in conversations if not held_out_conversation(c["senders"])]
    held_out = [c for c in conversations if held_out_conversation(c["senders"])]
    # Early stopping looks at 2% of the base conversations, never at held-out people.
    validation = [c for c in base if c["id"][:2] < "05"]
    train = [c for c in base if c["id"][:2] >= "05"]
    say(f"{len(train)} training, {len(validation)} validation, {len(held_out)} held-out chats")

    name = run_name(config, vocab_size, passes, seed)
    run_dir = (checkpoints or checkpoints_home()) / name
    previous = _previous_base(Path(output), config, version) if resume else None
    if not resume:
        shutil.rmtree(run_dir, ignore_errors=True)
    run_dir.mkdir(parents=True, exist_ok=True)
    tokenizer_path = run_dir / "tokenizer.json"
    if tokenizer_path.is_file():
        tokenizer = Tokenizer.load(tokenizer_path)
    elif previous is not None:
        tokenizer = previous.tokenizer
    else:
        texts = (text for c in train for _, text in c["turns"])
        tokenizer = Tokenizer.train(texts, vocab_size, extra=COMMON_EMOJI + placeholder_pieces())
    tokenizer.save(tokenizer_path)
    has_checkpoint = any(run_dir.glob("checkpoint*"))
    started_from = "checkpoint" if has_checkpoint else "base" if previous else "random"
    say(f"run {name} in {run_dir}: starting from its {started_from} (--output {output})")
    rng = random.Random(seed)
    train_pairs = training_pairs(train, passes, rng)
    validation_pairs = [p for c in validation for p in conversation_pairs(c["turns"])]
    validation_pairs = rng.sample(validation_pairs, min(VALIDATION_PAIRS, len(validation_pairs)))
    result = fit(
        # No dropout while the network underfits; the config's is for fine-tuning.
        replace(config, dropout=0.0),
        FitData.encode(train_pairs, validation_pairs, tokenizer, config),
        FitRun(
            schedule=PRETRAIN,
            seed=seed,
            label="pretraining",
            checkpoint_dir=run_dir.parent,
            run_id=name,
            started=time.monotonic(),
            max_minutes=max_minutes,
            epochs=epochs,
            initial_weights=None if has_checkpoint or previous is None else previous.weights,
            progress=progress,
            eval_every=100,
            clock=time.process_time if cpu_minutes else time.monotonic,
        ),
    )

    # The base's own metrics: on the development group, every one of their turns.
    generator = reply_generator(result.weights, tokenizer, config)
    use = context_use(generator, development_pairs(held_out, seed), seed)
    session = {
        "command": "mimical pretrain "
        + f"--max-minutes {max_minutes:g}{' --cpu-minutes' if cpu_minutes else ''}"
        + f"{' --resume' if resume else ''} --passes {passes} --epochs {epochs} "
        f"--units {config.units} --attention-dim {config.attention_dim} "
        f"--context-tokens {config.context_tokens} --contrast {config.contrast_weight:g} "
        f"--vocab-size {vocab_size} --seed {seed} "
        f"--base-version {version}",
        "started_from": started_from,
        "first_step": result.resumed_from_step,
        "last_step": result.steps,
        "wall_seconds": round(time.monotonic() - started),
        "cpu_seconds": round(time.process_time() - cpu_started),
        "stop_reason": result.stop_reason,
        "device": result.device,
    }
    sessions = [*(previous.info.get("sessions", []) if previous else []), session]
    if has_checkpoint and (run_dir / "sessions.json").is_file():
        sessions = [*json.loads((run_dir / "sessions.json").read_text()), session]
    (run_dir / "sessions.json").write_text(json.dumps(sessions, indent=1))
    info = {
        "format": BASE_FORMAT,
        "version": version,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "command": session["command"],
        "run": name,
        "data": "chitchat-dataset (PyPI), scrubbed, both speakers' (context turns → turn) "
        f"pairs, no sender over {MAX_SENDER_SHARE:.0%} of them",
        "held_out_rule": HELD_OUT_RULE,
        "development_rule": DEVELOPMENT_RULE,
        "conversations": {
            "train": len(train),
            "validation": len(validation),
            "held_out": len(held_out),
        },
        "train_pairs": len(train_pairs),
        "metrics": {
            "development_bits_per_char": use["bits_per_char"],
            "development_context_use": {k: use[k] for k in ("bits_per_reply", "low", "high")},
            "development_pairs": use["replies"],
            "validation_bits_per_char": round(result.best_bits, 4),
            "steps": result.steps,
            "epochs_fraction": result.curve[-1]["epoch"] if result.curve else 0,
            "stop_reason": result.stop_reason,
            "parameters": result.parameters,
            "cpu_hours": round(sum(s["cpu_seconds"] for s in sessions) / 3600, 2),
            "wall_hours": round(sum(s["wall_seconds"] for s in sessions) / 3600, 2),
            "device": result.device,
        },
        "sessions": sessions,
        "curve": result.curve,
    }
    save_base(Path(output), config, tokenizer, result.weights, info)
    return info


def _previous_base(output: Path, config: ModelConfig, version: int):
    """The base at `output` when it is this run's (same version and network), to resume
    from on a machine without the run's checkpoint; else None."""
    try:
        previous = load_base(output)
    except (NotFoundError, InputError):  # no base there, or not one: start afresh
        return None
    same = previous.version == version and previous.config == config
    return previous if same else None
