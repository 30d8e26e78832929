"""Benchmark the persona model on the default demo persona against its quality and speed targets.

    .venv/bin/python benchmarks/train_bench.py [--minutes 5] [--corpus corpus.jsonl]

1. Builds the demo persona corpus (a Messenger sample export, imported), unless given.
2. Trains for `--minutes` on this machine (CPU unless a GPU is present).
3. Evaluates: held-out bits/char next to the character 5-gram baseline fit on the same
   split (the ratio is the target), and the verbatim rate of sampled replies.
4. Times replies of exactly 100 characters (end-of-turn disabled for the timing), in
   the graph (`reply`, one call) and with a per-token Python loop over the same
   weights, in the same run, and the exported signature as served (natural lengths).

Targets: bits/char ≥ 10% below the baseline; verbatim ≤ 2%; in-graph p50 ≤ 60 ms;
in-graph ≥ 10× faster than the Python loop.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

REPLY_CHARS = 100
CONTEXTS = [
    "hey! how was your weekend?",
    "what are you studying these days",
    "I just got back from the gym, so tired lol",
    "do you have any pets?",
    "what kind of music do you like?",
]


def demo_corpus(workdir: Path) -> Path:
    from mimical.corpus.importer import import_exports
    from mimical.samples.export import write_sample_export

    export = write_sample_export("messenger", workdir / "export")
    corpus = workdir / "demo.jsonl"
    import_exports(export, corpus)
    return corpus


def timed(function, repeats: int) -> list[float]:
    function()  # warm up (tracing, caches)
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        function()
        times.append(time.perf_counter() - started)
    return times


def latencies(export_dir: Path, repeats: int) -> dict[str, list[float]]:
    import tensorflow as tf

    from mimical.model.export import load_export, load_generator
    from mimical.model.model import EOT

    generator = load_generator(export_dir)
    # Never stop early, so every timed reply is exactly REPLY_CHARS long in both loops.
    generator.forbidden = generator.forbidden + tf.one_hot(EOT, generator.vocab_size, -1e9)
    contexts = iter(CONTEXTS * (repeats + 1))

    def in_graph():
        reply = generator.reply(
            tf.constant([next(contexts)]), tf.constant([0.0]), tf.constant([REPLY_CHARS]),
            tf.constant([0], tf.int64),
        )["reply"]  # fmt: skip
        assert len(reply.numpy()[0].decode()) == REPLY_CHARS

    def python_loop():
        assert len(generator.reply_by_python_loop(next(contexts), REPLY_CHARS)) == REPLY_CHARS

    served = load_export(export_dir).signatures["reply"]

    def as_served():
        served(
            context=tf.constant([next(contexts)]), temperature=tf.constant([0.8]),
            max_chars=tf.constant([REPLY_CHARS]), seed=tf.constant([1], tf.int64),
        )  # fmt: skip

    return {
        "in_graph": timed(in_graph, repeats),
        "python_loop": timed(python_loop, max(3, repeats // 5)),
        "as_served": timed(as_served, repeats),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, default=5.0)
    parser.add_argument("--corpus", type=Path)
    parser.add_argument("--repeats", type=int, default=30)
    args = parser.parse_args()

    from mimical.model.evaluate import evaluate_model
    from mimical.model.train import train_persona

    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        corpus = args.corpus or demo_corpus(workdir)
        started = time.monotonic()
        result = train_persona(
            corpus, workdir / "models", "demo", max_minutes=args.minutes, progress=True
        )
        wall = time.monotonic() - started
        evaluation = evaluate_model(result.export_dir, corpus)
        times = latencies(result.export_dir, args.repeats)

    def p50_ms(key):
        return statistics.median(times[key]) * 1000

    bpc, baseline = evaluation["bits_per_char"], evaluation["baseline_5gram_bits_per_char"]
    speedup = p50_ms("python_loop") / p50_ms("in_graph")
    rows = [
        ("held-out bits/char, model", f"{bpc:.3f}", ""),
        ("held-out bits/char, 5-gram KN baseline", f"{baseline:.3f}", ""),
        ("model / baseline", f"{bpc / baseline:.3f}", "≤ 0.900"),
        ("verbatim rate (≥ 6 words)", f"{evaluation['verbatim_rate']:.1%}", "≤ 2%"),
        ("training + export wall time", f"{wall / 60:.1f} min", f"{args.minutes:g} min loop"),
        ("epochs (stop reason)",
         f"{result.metrics['epochs']} ({result.metrics['stop_reason']})", ""),
        (f"in-graph reply, {REPLY_CHARS} chars, p50", f"{p50_ms('in_graph'):.1f} ms", "≤ 60 ms"),
        (f"Python per-token loop, {REPLY_CHARS} chars, p50",
         f"{p50_ms('python_loop'):.1f} ms", ""),
        ("in-graph speed-up over Python loop", f"{speedup:.1f}×", "≥ 10×"),
        ("exported signature as served (≤ 100 chars, T=0.8), p50",
         f"{p50_ms('as_served'):.1f} ms", ""),
        ("parameters", f"{result.metrics['parameters']:,}", ""),
    ]  # fmt: skip
    width = max(len(r[0]) for r in rows)
    print(f"\n{'measure':<{width}}  {'value':>14}  target")
    for name, value, target in rows:
        print(f"{name:<{width}}  {value:>14}  {target}")


if __name__ == "__main__":
    main()
