"""Train a persona model on a corpus and export it for TensorFlow Serving.

One flat loop, top to bottom: split → vocabulary → model → epochs of batches with a
held-out check after each → early stopping → export of the best weights. A checkpoint
after every epoch (weights, optimizer, epoch, curve, best weights) lets an
interrupted run resume where it stopped; it is deleted once the model is exported.

    python -m mimical.model.train corpus.jsonl MODEL_BASE [NAME]
    mimical train corpus.jsonl -o MODEL_BASE --name NAME --max-minutes 5
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

from mimical.model.data import batches, build_vocabulary, encode, load_split
from mimical.model.model import ModelConfig, build_keras_model, reply_generator

# Batch size per device kind: a GPU is fastest with much larger batches. On CPU, 64
# processes ~15% more characters per second than 32; with a higher learning rate it
# learnt as much per minute (1.854 vs 1.857 held-out bits/char in 5 minutes).
CPU_BATCH_SIZE = 64
GPU_BATCH_SIZE = 256
# Adam's learning rate: constant, then from half-way through the run (its epochs or its
# time limit, whichever ends first) decaying linearly to a tenth, so that even a short
# budget ends on small steps (the "warmup-stable-decay" shape, without the warmup).
# Measured in 5 minutes on the demo persona (with dropout): decaying over the last half
# beat a linear decay from the start (1.857 vs 1.891 bits/char).
LEARNING_RATE = 8e-3
DECAY_FROM = 0.5
MAX_EPOCHS = 30
# Stop after this many epochs without a better held-out loss, counted only once the
# learning rate decays: at the constant rate the held-out loss plateaus and then drops
# again with the decay (counting from the start stopped a 5-minute run at 2.5 minutes).
PATIENCE = 2


@dataclass(frozen=True)
class TrainResult:
    version: int
    export_dir: Path
    metrics: dict


def corpus_fingerprint(corpus_path: Path, config: ModelConfig, seed: int) -> str:
    """Identifies a training run; a checkpoint only resumes the same run."""
    digest = hashlib.sha256(Path(corpus_path).read_bytes())
    digest.update(f"{config.to_json()}|{seed}".encode())
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
) -> TrainResult:
    """Train on `corpus_path` and export `model_base/name/<next version>/`.

    `max_minutes` bounds the training loop (the export comes after); `epochs` bounds
    the passes over the data; early stopping may end sooner. `on_progress` receives
    `{"phase", "fraction", "epoch", "loss", "eta_seconds"}` dicts for APIs and UIs.
    """
    import keras
    import tensorflow as tf
    from tqdm import tqdm

    from mimical.model.export import export_generator

    started = time.monotonic()
    report = on_progress or (lambda _: None)
    report({"phase": "preparing", "fraction": 0.0})
    config = config or ModelConfig()
    split = load_split(corpus_path, seed)
    vocab = build_vocabulary(split.train, config)
    train_examples = encode(split.train, vocab, config)
    held_out_examples = encode(split.held_out, vocab, config)

    gpu = bool(tf.config.list_physical_devices("GPU"))
    batch_size = GPU_BATCH_SIZE if gpu else CPU_BATCH_SIZE
    keras.utils.set_random_seed(seed)
    model = build_keras_model(config, vocab.size)
    optimizer = keras.optimizers.Adam(LEARNING_RATE, clipnorm=1.0)
    optimizer.build(model.trainable_variables)

    # Everything needed to resume lives in the checkpoint; plain values as variables.
    epoch_var = tf.Variable(0, dtype=tf.int64)
    best_loss_var = tf.Variable(math.inf, dtype=tf.float64)
    stale_var = tf.Variable(0, dtype=tf.int64)
    curve_var = tf.Variable("[]")
    best_weights = [tf.Variable(w, trainable=False) for w in model.weights]
    checkpoint = tf.train.Checkpoint(
        model=model, optimizer=optimizer, epoch=epoch_var, best_loss=best_loss_var,
        stale=stale_var, curve=curve_var, best_weights=best_weights,
    )  # fmt: skip
    checkpoint_dir = Path(model_base) / ".checkpoints" / name
    run_id = corpus_fingerprint(corpus_path, config, seed)
    manager = tf.train.CheckpointManager(checkpoint, checkpoint_dir / run_id, max_to_keep=1)
    if manager.latest_checkpoint:
        checkpoint.restore(manager.latest_checkpoint)
    curve: list[dict] = json.loads(curve_var.numpy())
    resumed_epoch = int(epoch_var.numpy())

    # One trace for every batch shape: (B, T) ids, targets and weights.
    batch_signature = [
        tf.TensorSpec([None, None], tf.int32),
        tf.TensorSpec([None, None], tf.int32),
        tf.TensorSpec([None, None], tf.float32),
    ]

    @tf.function(input_signature=batch_signature)
    def train_step(inputs, targets, weights):
        with tf.GradientTape() as tape:
            logits = model(inputs, training=True)  # (B, T, V)
            losses = tf.nn.sparse_softmax_cross_entropy_with_logits(targets, logits)
            loss = tf.reduce_sum(losses * weights) / tf.reduce_sum(weights)
        gradients = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(gradients, model.trainable_variables, strict=True))
        return loss

    @tf.function(input_signature=batch_signature)
    def nats_sum(inputs, targets, weights):
        logits = model(inputs, training=False)
        losses = tf.nn.sparse_softmax_cross_entropy_with_logits(targets, logits)
        return tf.reduce_sum(losses * weights), tf.reduce_sum(weights)

    def held_out_bits_per_char() -> float:
        total, count = 0.0, 0.0
        for inputs, targets, weights in batches(held_out_examples, batch_size * 2):
            nats, n = nats_sum(inputs, targets, weights)
            total, count = total + float(nats), count + float(n)
        return total / count / math.log(2)

    max_epochs = epochs or MAX_EPOCHS
    deadline = started + max_minutes * 60 if max_minutes else math.inf
    steps_per_epoch = math.ceil(len(train_examples) / batch_size)
    bar = tqdm(
        total=steps_per_epoch * max_epochs, initial=steps_per_epoch * resumed_epoch,
        desc=f"training {name}", unit="batch", disable=not (progress and sys.stderr.isatty()),
    )  # fmt: skip
    loop_started, stop_reason = time.monotonic(), "epochs"
    for epoch in range(resumed_epoch, max_epochs):
        rng = np.random.default_rng([seed, epoch])
        running, out_of_time = [], False
        epoch_batches = batches(train_examples, batch_size, rng, config.context_loss_weight)
        for step, (inputs, targets, weights) in enumerate(epoch_batches):
            now = time.monotonic()
            run_fraction = max(
                (epoch * steps_per_epoch + step) / (max_epochs * steps_per_epoch),
                (now - loop_started) / (deadline - loop_started),
            )
            decay = min(max(run_fraction - DECAY_FROM, 0.0) / (1 - DECAY_FROM), 1.0)
            optimizer.learning_rate.assign(LEARNING_RATE * (1 - 0.9 * decay))
            running.append(float(train_step(inputs, targets, weights)))
            done = (epoch - resumed_epoch) * steps_per_epoch + step + 1
            per_step = (time.monotonic() - loop_started) / done
            eta = min(
                per_step * (steps_per_epoch * (max_epochs - epoch) - step - 1),
                max(0.0, deadline - time.monotonic()),
            )
            bar.total = bar.n + 1 + round(eta / per_step)  # the time limit shortens the bar
            bar.update()
            bar.set_postfix(epoch=epoch + 1, loss=f"{np.mean(running[-50:]):.3f}")
            if step % 10 == 0:
                report({
                    "phase": "training", "epoch": epoch + 1, "loss": float(np.mean(running[-50:])),
                    "fraction": 1 - eta / max(eta + time.monotonic() - started, 1e-9),
                    "eta_seconds": round(eta),
                })  # fmt: skip
            if time.monotonic() > deadline:
                out_of_time = True
                break
        held_out_bpc = held_out_bits_per_char()
        curve.append({
            "epoch": epoch + 1, "steps": len(running), "train_loss": float(np.mean(running)),
            "held_out_bits_per_char": held_out_bpc,
            "elapsed_seconds": round(time.monotonic() - started, 1),
        })  # fmt: skip
        if held_out_bpc < best_loss_var.numpy():
            best_loss_var.assign(held_out_bpc)
            stale_var.assign(0)
            for saved, current in zip(best_weights, model.weights, strict=True):
                saved.assign(current)
        elif decay > 0:
            stale_var.assign_add(1)
        epoch_var.assign(epoch + 1)
        curve_var.assign(json.dumps(curve))
        manager.save()
        if out_of_time:
            stop_reason = "time limit"
            break
        if stale_var.numpy() >= PATIENCE:
            stop_reason = "early stopping"
            break
    bar.close()

    report({"phase": "exporting", "fraction": 0.99})
    for current, saved in zip(model.weights, best_weights, strict=True):
        current.assign(saved)
    metrics = {
        "held_out_bits_per_char": float(best_loss_var.numpy()),
        "epochs": int(epoch_var.numpy()),
        "stop_reason": stop_reason,
        "train_replies": len(split.train),
        "held_out_replies": len(split.held_out),
        "vocabulary_size": vocab.size,
        "parameters": int(model.count_params()),
        "device": "GPU" if gpu else "CPU",
        "batch_size": batch_size,
        "seed": seed,
        "training_seconds": round(time.monotonic() - started, 1),
        "resumed_from_epoch": resumed_epoch,
    }
    export_dir = export_generator(
        reply_generator(model, vocab, config),
        model_base,
        name,
        extras={
            "metrics.json": metrics,
            "curve.json": curve,
            "config.json": json.loads(config.to_json()),
            "vocabulary.json": json.loads(vocab.to_json()),
            "split.json": {
                "seed": seed,
                "held_out": sorted({(p.thread, p.conversation) for p in split.held_out}),
            },
        },
    )
    shutil.rmtree(checkpoint_dir, ignore_errors=True)
    report({"phase": "done", "fraction": 1.0})
    if progress:
        print(
            f"trained {name} v{export_dir.name}: held-out {metrics['held_out_bits_per_char']:.3f}"
            f" bits/char after {metrics['epochs']} epochs ({stop_reason}), "
            f"{metrics['training_seconds']:.0f}s on {metrics['device']} → {export_dir}",
            file=sys.stderr,
        )
    return TrainResult(int(export_dir.name), export_dir, metrics)


def tiny_config() -> ModelConfig:
    """A model small enough to train in seconds, for tests and smoke runs."""
    return replace(ModelConfig(), units=48, embedding_dim=16, context_chars=32, reply_chars=64)


if __name__ == "__main__":
    result = train_persona(
        Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3] if len(sys.argv) > 3 else "persona",
        progress=True,
    )  # fmt: skip
    print(result)
