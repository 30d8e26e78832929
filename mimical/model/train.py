"""Train a persona model on a corpus and export it for TensorFlow Serving.

By default the shipped base model (`mimical.model.base_model`) is fine-tuned on the
persona's (context → reply) pairs; `from_scratch=True` learns today's small character
model instead. Either way the same loop, `fit`, top to bottom: batches → a step → every
`eval_every` steps (and at the end) a held-out check that keeps the best weights →
early stopping or the time limit. A checkpoint after each check (weights, optimizer,
step, curve, best weights) lets an interrupted run resume where it stopped; it is
deleted once the model is exported.

    python -m mimical.model.train corpus.jsonl MODEL_BASE [NAME]
    mimical train corpus.jsonl -o MODEL_BASE --name NAME --max-minutes 5 [--from-scratch]
"""

from __future__ import annotations

import hashlib
import json
import math
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from mimical.corpus.schema import context_messages
from mimical.model.data import batches, build_vocabulary, encode, load_split
from mimical.model.export import (
    CONFIG_FILE,
    CURVE_FILE,
    METRICS_FILE,
    SPLIT_FILE,
    export_generator,
    tokens_file,
)
from mimical.model.generator import reply_generator
from mimical.model.model import (
    DECODING_FIELDS,
    SEP,
    ModelConfig,
    build_keras_model,
    network_weights,
    span_fingerprints,
)

# Batch size per device kind: a GPU is fastest with much larger batches. On CPU, 64
# processes ~15% more characters per second than 32.
CPU_BATCH_SIZE = 64
GPU_BATCH_SIZE = 256
MAX_EPOCHS = 30


@dataclass(frozen=True)
class Schedule:
    """Adam's learning rate: a linear warm-up over `warmup_steps`, constant, then from
    `decay_from` of the run (its epochs or its time limit, whichever ends first)
    decaying linearly to a tenth, so that even a short budget ends on small steps
    ("warmup-stable-decay")."""

    learning_rate: float
    decay_from: float = 0.5
    # Stop after this many held-out checks without improvement, counted only from
    # `patience_from` of the run: from scratch, at the constant rate the held-out loss
    # plateaus and then drops again with the decay.
    patience: int = 2
    patience_from: float = 0.5
    warmup_steps: int = 0
    # The weight of the friends' text in the loss; None: the network's own
    # (`ModelConfig.context_loss_weight`).
    context_loss_weight: float | None = None

    def rate(self, run_fraction: float, step: int) -> float:
        decay = min(max(run_fraction - self.decay_from, 0.0) / (1 - self.decay_from), 1.0)
        warmup = min((step + 1) / self.warmup_steps, 1.0) if self.warmup_steps else 1.0
        return self.learning_rate * warmup * (1 - 0.9 * decay)


# From scratch, measured in 5 minutes on the demo persona (with dropout): decaying over
# the last half beat a linear decay from the start (1.857 vs 1.891 bits/char).
FROM_SCRATCH = Schedule(learning_rate=8e-3)
# Fine-tuning the base: a smaller rate keeps what the base learnt of the language (the
# ULMFiT lesson); patience from the start, as a small persona overfits within epochs. A
# short warm-up, so Adam's first, badly scaled steps do not knock the base's weights
# about; the friends' text at 0.3 (the base learnt chat text already: most of the
# gradient goes to the person's replies, where it was 30%).
FINE_TUNE = Schedule(
    learning_rate=1.5e-3,
    decay_from=0.3,
    patience=3,
    patience_from=0.0,
    warmup_steps=20,
    context_loss_weight=0.3,
)
# Pretraining the base: one long constant-then-decay run over many people's chats.
# Patient: its held-out check reads 500 turns, noisy enough that three checks without a
# new best came 40 minutes into a 65-minute run, as its decay had just begun.
PRETRAIN = Schedule(learning_rate=6e-3, decay_from=0.5, patience=8, patience_from=0.8)


@dataclass(frozen=True)
class TrainResult:
    version: int
    export_dir: Path
    metrics: dict


@dataclass(frozen=True)
class FitData:
    """What `fit` learns from and checks against, encoded for the network."""

    vocab_size: int
    train: list[np.ndarray]
    held_out: list[np.ndarray]
    held_out_chars: int  # of the held-out replies, each turn's end counted as one
    silent: tuple[int, ...] = ()  # tokens never learnt (`mimical.model.data.batches`)

    @classmethod
    def encode(cls, train_pairs: list, held_out_pairs: list, tokenizer, config) -> FitData:
        """`train_pairs` and `held_out_pairs` (`Pair`s) in `tokenizer`'s tokens."""
        from mimical.model.tokenizer import placeholder_ids

        return cls(
            vocab_size=tokenizer.size,
            train=encode(train_pairs, tokenizer, config),
            held_out=encode(held_out_pairs, tokenizer, config),
            held_out_chars=sum(len(p.reply) + 1 for p in held_out_pairs),
            silent=tuple(placeholder_ids(tokenizer)),
        )


@dataclass(frozen=True)
class FitRun:
    """How one `fit` goes: where it starts from, its schedule and budget, how it reports."""

    schedule: Schedule
    seed: int
    label: str  # what the progress bar and the log call this run
    checkpoint_dir: Path
    run_id: str  # a checkpoint resumes only the same run (`corpus_fingerprint`)
    started: float  # time.monotonic() when the whole job began: max_minutes counts from it
    max_minutes: float | None
    epochs: int | None
    initial_weights: dict | None = None  # None: from random weights
    progress: bool = False
    report: Callable[[dict], None] = lambda _: None
    eval_every: int = 300
    # What `max_minutes` is measured by: wall time, or `time.process_time` to give
    # designs compared side by side the same CPU-seconds on a shared machine.
    clock: Callable[[], float] = time.monotonic


@dataclass
class FitResult:
    weights: dict  # the best weights by held-out loss (`network_weights` names)
    curve: list[dict]
    best_bits: float
    epochs: int
    steps: int
    stop_reason: str
    parameters: int
    device: str
    batch_size: int
    resumed_from_step: int


def corpus_fingerprint(corpus_path: Path, config: ModelConfig, seed: int, base: str) -> str:
    """Identifies a training run; a checkpoint only resumes the same run."""
    digest = hashlib.sha256(Path(corpus_path).read_bytes())
    digest.update(f"{config.to_json()}|{seed}|{base}".encode())
    return digest.hexdigest()[:16]


def train_persona(
    corpus_path: Path,
    model_base: Path,
    name: str,
    *,
    max_minutes: float | None = None,
    epochs: int | None = None,
    seed: int = 0,
    progress: bool = False,
    config: ModelConfig | None = None,
    on_progress: Callable[[dict], None] | None = None,
    from_scratch: bool = False,
    retrieval: str = "public",
    fine_tune: Schedule = FINE_TUNE,
    split_seed: int | None = None,
    base_dir: Path | None = None,
) -> TrainResult:
    """Train on `corpus_path` and export `model_base/name/<next version>/`.

    Fine-tunes the shipped base unless `from_scratch` or a `config` is given (a config
    describes a new network, so it is learned from scratch). `max_minutes` bounds the
    training loop (the export comes after); `epochs` bounds the passes over the data;
    early stopping may end sooner. `on_progress` receives `{"phase", "fraction",
    "epoch", "loss", "eta_seconds"}` dicts for APIs and UIs. `retrieval`: which of the
    person's replies the persona may reuse (`mimical.model.retrieval.POLICIES`);
    `fine_tune` how the base is adapted (benchmarks compare schedules). `split_seed`
    (default: `seed`) chooses the test and validation conversations, `seed` the training
    run's randomness; `base_dir` another base artifact than the shipped one (benchmarks
    compare bases).
    """
    from mimical.model.base_model import load_base
    from mimical.model.calibrate import CALIBRATED_FIELDS, calibrate
    from mimical.model.evaluate import context_use
    from mimical.model.retrieval import bank_replies

    started = time.monotonic()
    report = on_progress or (lambda _: None)
    report({"phase": "preparing", "fraction": 0.0})
    split_seed = seed if split_seed is None else split_seed
    split = load_split(corpus_path, split_seed)
    if config is None and not from_scratch:
        base = load_base(base_dir) if base_dir else load_base()
        # The base's network, today's decoding (the base's config.json keeps the settings
        # of its day).
        defaults = ModelConfig()
        config = replace(base.config, **{f: getattr(defaults, f) for f in DECODING_FIELDS})
        tokenizer, initial, schedule = base.tokenizer, base.weights, fine_tune
        base_id = f"base v{base.version}"
    else:
        config = config or ModelConfig()
        tokenizer, initial, schedule = build_vocabulary(split.train, config), None, FROM_SCRATCH
        base_id = "from scratch"
    fit_result = fit(
        config,
        FitData.encode(split.train, split.validation, tokenizer, config),
        FitRun(
            schedule=schedule,
            seed=seed,
            label=f"training {name}",
            checkpoint_dir=Path(model_base) / ".checkpoints" / name,
            run_id=corpus_fingerprint(
                corpus_path, config, seed, f"{base_id} {schedule} split {split_seed}"
            ),
            started=started,
            max_minutes=max_minutes,
            epochs=epochs,
            initial_weights=initial,
            progress=progress,
            report=report,
        ),
    )

    report({"phase": "calibrating", "fraction": 0.97})
    bank = bank_replies(split.train, retrieval)
    generator = persona_generator(fit_result.weights, tokenizer, config, split, bank)
    use = context_use(generator, split.validation, seed)
    calibration = calibrate(generator, split.validation, seed, split.train)
    config = replace(config, **{k: calibration[k] for k in CALIBRATED_FIELDS})
    report({"phase": "exporting", "fraction": 0.99})
    metrics = {
        "validation_bits_per_char": fit_result.best_bits,
        # Bits per reply the true context saves over a shuffled one, on validation.
        "validation_context_use": {k: use[k] for k in ("bits_per_reply", "low", "high")},
        "epochs": fit_result.epochs,
        "steps": fit_result.steps,
        "stop_reason": fit_result.stop_reason,
        "started_from": base_id,
        "train_replies": len(split.train),
        "validation_replies": len(split.validation),
        "test_replies": len(split.test),
        "vocabulary_size": tokenizer.size,
        "parameters": fit_result.parameters,
        "device": fit_result.device,
        "batch_size": fit_result.batch_size,
        "seed": seed,
        "split_seed": split_seed,
        "training_seconds": round(time.monotonic() - started, 1),
        "resumed_from_step": fit_result.resumed_from_step,
        "calibration": calibration,
        "retrieval": {"policy": retrieval, "replies": len(bank)},
    }
    export_dir = export_generator(
        generator,
        model_base,
        name,
        extras={
            METRICS_FILE: metrics,
            CURVE_FILE: fit_result.curve,
            CONFIG_FILE: json.loads(config.to_json()),
            tokens_file(config.tokens): json.loads(tokenizer.to_json()),
            SPLIT_FILE: {
                "seed": split_seed,
                "test": sorted({(p.thread, p.conversation) for p in split.test}),
                "validation": sorted({(p.thread, p.conversation) for p in split.validation}),
            },
        },
    )
    shutil.rmtree(Path(model_base) / ".checkpoints" / name, ignore_errors=True)
    report({"phase": "done", "fraction": 1.0})
    if progress:
        print(
            f"trained {name} v{export_dir.name} ({base_id}): validation "
            f"{metrics['validation_bits_per_char']:.3f} bits/char after {fit_result.steps} steps "
            f"({fit_result.stop_reason}), {metrics['training_seconds']:.0f}s on "
            f"{metrics['device']} → {export_dir}",
            file=sys.stderr,
        )
    return TrainResult(int(export_dir.name), export_dir, metrics)


def persona_generator(weights: dict, tokenizer, config: ModelConfig, split, bank):
    """The graph a persona exports: its network, the verbatim guards over its training
    messages, and `bank` (`mimical.model.retrieval.bank_replies`) to retrieve from."""
    from mimical.model.retrieval import graph_retrieval

    own, others = training_messages(split)
    retrieval = graph_retrieval(bank, config.retrieved)
    return reply_generator(
        weights, tokenizer, config, span_fingerprints(own), span_fingerprints(others), retrieval
    )


def training_messages(split) -> tuple[list[str], list[str]]:
    """The person's own training messages, and everyone else's (the friends' turns in the
    contexts): a sampled reply should recite neither, and never the latter."""
    own = {line for p in split.train for line in p.reply.split("\n")}
    others = {line for p in split.train for line in context_messages(p.context)} - own
    return sorted(own), sorted(others)


def fit(config: ModelConfig, data: FitData, run: FitRun) -> FitResult:
    """The training loop: the network learns `data.train`, keeping its best weights by
    bits per character of the held-out replies."""
    import keras
    import tensorflow as tf

    from mimical.model.model import load_network_weights

    gpu = bool(tf.config.list_physical_devices("GPU"))
    batch_size = GPU_BATCH_SIZE if gpu else CPU_BATCH_SIZE
    keras.utils.set_random_seed(run.seed)
    model = build_keras_model(config, data.vocab_size)
    if run.initial_weights is not None:
        load_network_weights(model, config, run.initial_weights)
    schedule = run.schedule
    optimizer = keras.optimizers.Adam(schedule.learning_rate, clipnorm=1.0)
    optimizer.build(model.trainable_variables)
    train_step, held_out_nats = _step_functions(model, optimizer, config)

    # Everything needed to resume lives in the checkpoint; plain values as variables.
    step_var = tf.Variable(0, dtype=tf.int64)
    best_var = tf.Variable(math.inf, dtype=tf.float64)
    stale_var = tf.Variable(0, dtype=tf.int64)
    curve_var = tf.Variable("[]")
    best_weights = [tf.Variable(w, trainable=False) for w in model.weights]
    checkpoint = tf.train.Checkpoint(
        model=model,
        optimizer=optimizer,
        step=step_var,
        best=best_var,
        stale=stale_var,
        curve=curve_var,
        best_weights=best_weights,
    )
    manager = tf.train.CheckpointManager(checkpoint, run.checkpoint_dir / run.run_id, max_to_keep=1)
    if manager.latest_checkpoint:
        checkpoint.restore(manager.latest_checkpoint)
    curve: list[dict] = json.loads(curve_var.numpy())
    resumed_step = int(step_var.numpy())
    stale_var.assign(0)  # a resumed run's schedule starts again, and so does its patience

    context_weight = schedule.context_loss_weight
    if context_weight is None:
        context_weight = config.context_loss_weight
    steps_per_epoch = math.ceil(len(data.train) / batch_size)
    total_steps = steps_per_epoch * (run.epochs or MAX_EPOCHS)
    eval_every = min(run.eval_every, steps_per_epoch)
    clock = Clock(
        run.started, run.max_minutes, total_steps, resumed_step, run.label, run.progress, run.clock
    )
    stop_reason, running = "epochs", []
    mismatched_rows = batch_size // 4 if config.contrast_weight else 0
    for step, batch in _training_batches(
        data, batch_size, run.seed, context_weight, resumed_step, total_steps, mismatched_rows
    ):
        # The warm-up counts from this session's first step: a resumed run warms up
        # again, as Adam's moments may be new (`mimical pretrain --resume` from a base).
        optimizer.learning_rate.assign(schedule.rate(clock.run_fraction(step), step - resumed_step))
        running.append(float(train_step(*batch)))
        clock.tick(
            step, run.report, loss=float(np.mean(running[-50:])), epoch=step // steps_per_epoch + 1
        )
        last = step + 1 == total_steps
        out_of_time = clock.out_of_time()
        if (step + 1) % eval_every and not (last or out_of_time):
            continue
        # The held-out check: keep the best weights, count checks without improvement.
        bits = _bits_per_char(held_out_nats, data, batch_size * 2)
        curve.append(
            {
                "step": step + 1,
                "epoch": round((step + 1) / steps_per_epoch, 2),
                "train_loss": float(np.mean(running)),
                "validation_bits_per_char": bits,
                "elapsed_seconds": round(time.monotonic() - run.started, 1),
            }
        )
        running = []
        if bits < best_var.numpy():
            best_var.assign(bits)
            stale_var.assign(0)
            for saved, current in zip(best_weights, model.weights, strict=True):
                saved.assign(current)
        elif clock.run_fraction(step) >= schedule.patience_from:
            stale_var.assign_add(1)
        step_var.assign(step + 1)
        curve_var.assign(json.dumps(curve))
        manager.save()
        if out_of_time:
            stop_reason = "time limit"
            break
        if stale_var.numpy() >= schedule.patience:
            stop_reason = "early stopping"
            break
    clock.close()

    for current, saved in zip(model.weights, best_weights, strict=True):
        current.assign(saved)
    steps = int(step_var.numpy())
    return FitResult(
        weights=network_weights(model, config),
        curve=curve,
        best_bits=float(best_var.numpy()),
        epochs=math.ceil(steps / steps_per_epoch),
        steps=steps,
        stop_reason=stop_reason,
        parameters=int(model.count_params()),
        device="GPU" if gpu else "CPU",
        batch_size=batch_size,
        resumed_from_step=resumed_step,
    )


def _step_functions(model, optimizer, config: ModelConfig):
    """The compiled training step and held-out scoring, one trace for every batch shape.

    With `config.contrast_weight`, the step also takes the batch's first rows' replies
    after other rows' contexts (`mimical.model.data.batches`' `mismatched_rows`) and adds
    the contrastive loss; it returns the language-model loss alone either way.
    """
    import tensorflow as tf

    batch_signature = [
        tf.TensorSpec([None, None], tf.int32),  # (B, T) inputs
        tf.TensorSpec([None, None], tf.int32),  # (B, T) targets
        tf.TensorSpec([None, None], tf.float32),  # (B, T) loss weights
    ]
    mismatched_signature = [
        tf.TensorSpec([None, None], tf.int32),  # (M, T') inputs: another row's context
        tf.TensorSpec([None, None], tf.int32),  # (M, T') targets
    ]

    def reply_nats_per_token(inputs, targets, losses):
        """(B,) mean nats of each row's reply tokens (from SEP on, padding aside)."""
        positions = tf.range(tf.shape(inputs)[1])
        sep = tf.argmax(tf.cast(tf.equal(inputs, SEP), tf.int32), axis=1, output_type=tf.int32)
        reply = tf.cast((positions[None, :] >= sep[:, None]) & (targets > 0), tf.float32)
        return tf.reduce_sum(losses * reply, 1) / tf.maximum(tf.reduce_sum(reply, 1), 1.0)

    def step(inputs, targets, weights, mismatched=None):
        with tf.GradientTape() as tape:
            logits = model(inputs, training=True)  # (B, T, V)
            losses = tf.nn.sparse_softmax_cross_entropy_with_logits(targets, logits)
            loss = language_model_loss = tf.reduce_sum(losses * weights) / tf.reduce_sum(weights)
            if mismatched is not None:
                other_inputs, other_targets = mismatched
                rows = tf.shape(other_inputs)[0]
                other_losses = tf.nn.sparse_softmax_cross_entropy_with_logits(
                    other_targets, model(other_inputs, training=True)
                )
                gap = reply_nats_per_token(other_inputs, other_targets, other_losses)
                gap -= reply_nats_per_token(inputs[:rows], targets[:rows], losses[:rows])
                contrast = tf.reduce_mean(tf.nn.softplus(config.contrast_margin - gap))
                loss += config.contrast_weight * contrast
        gradients = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(gradients, model.trainable_variables, strict=True))
        return language_model_loss

    if config.contrast_weight:
        train_step = tf.function(
            lambda inputs, targets, weights, other_inputs, other_targets: step(
                inputs, targets, weights, (other_inputs, other_targets)
            ),
            input_signature=batch_signature + mismatched_signature,
        )
    else:
        train_step = tf.function(step, input_signature=batch_signature)

    @tf.function(input_signature=batch_signature)
    def held_out_nats(inputs, targets, weights):
        logits = model(inputs, training=False)
        losses = tf.nn.sparse_softmax_cross_entropy_with_logits(targets, logits)
        return tf.reduce_sum(losses * weights)

    return train_step, held_out_nats


def _training_batches(
    data: FitData, batch_size, seed, context_weight, first_step, total_steps, mismatched_rows
):
    """(step, batch) from `first_step` on: epoch after epoch, each shuffled by its number."""
    steps_per_epoch = math.ceil(len(data.train) / batch_size)
    step = first_step - first_step % steps_per_epoch
    while step < total_steps:
        rng = np.random.default_rng([seed, step // steps_per_epoch])
        for batch in batches(
            data.train, batch_size, rng, context_weight, data.silent, mismatched_rows
        ):
            if first_step <= step < total_steps:
                yield step, batch
            step += 1


def _bits_per_char(held_out_nats, data: FitData, batch_size: int) -> float:
    """Held-out bits per character: the replies' nats (context weighted 0) / characters."""
    held_out = batches(data.held_out, batch_size, silent=data.silent)
    nats = sum(float(held_out_nats(*batch)) for batch in held_out)
    return nats / max(data.held_out_chars, 1) / math.log(2)


class Clock:
    """Where the run is (by steps or by its time limit), its ETA, and the progress bar.

    The time limit is measured by `clock` (wall or CPU time, see `FitRun.clock`); the ETA
    is wall time, converted at the rate the budget has been used so far.
    """

    def __init__(self, started, max_minutes, total_steps, first_step, label, progress, clock):
        from tqdm import tqdm

        self.clock, self.budget_started = clock, clock()
        self.budget = max_minutes * 60 if max_minutes else math.inf
        self.started, self.loop_started = started, time.monotonic()
        self.total_steps, self.first_step = total_steps, first_step
        self.bar = tqdm(
            total=total_steps,
            initial=first_step,
            desc=label,
            unit="batch",
            disable=not (progress and sys.stderr.isatty()),
        )

    def used(self) -> float:
        return self.clock() - self.budget_started

    def run_fraction(self, step: int) -> float:
        """How far the run is: by steps or by time, whichever is further."""
        return max(step / self.total_steps, self.used() / self.budget)

    def out_of_time(self) -> bool:
        return self.used() > self.budget

    def tick(self, step: int, report, *, loss: float, epoch: int) -> None:
        now = time.monotonic()
        wall = now - self.loop_started
        per_step = wall / (step + 1 - self.first_step)
        wall_per_budget = wall / max(self.used(), 1e-9)
        left = max(0.0, self.budget - self.used()) * wall_per_budget
        eta = min(per_step * (self.total_steps - step - 1), left)
        self.bar.total = self.bar.n + 1 + round(eta / per_step)  # the time limit shortens it
        self.bar.update()
        self.bar.set_postfix(epoch=epoch, loss=f"{loss:.3f}")
        if step % 10 == 0:
            report(
                {
                    "phase": "training",
                    "epoch": epoch,
                    "loss": loss,
                    "eta_seconds": round(eta),
                    "fraction": 1 - eta / max(eta + now - self.started, 1e-9),
                }
            )

    def close(self) -> None:
        self.bar.close()


def tiny_config() -> ModelConfig:
    """A model small enough to train in seconds, for tests and smoke runs (from scratch)."""
    return replace(
        ModelConfig(),
        units=48,
        embedding_dim=16,
        context_chars=32,
        context_tokens=32,
        reply_tokens=64,
        candidates=2,
    )


if __name__ == "__main__":
    result = train_persona(
        Path(sys.argv[1]),
        Path(sys.argv[2]),
        sys.argv[3] if len(sys.argv) > 3 else "persona",
        progress=True,
    )
    print(result)
