"""What a bigger base would cost each reply: the reply graph's latency by GRU size.

    nice -n 10 .venv/bin/python benchmarks/base_size_bench.py [--units 256,384,512] [--repeats 40]

The shipped size (384) is the baseline, timed in the same run and interleaved with the
others, so that a busy machine slows every size alike. Each size is the exported reply
path with the shipped tokenizer and today's decoding (sampled and retrieved candidates
from a bank of short replies), with random weights: the cost of a step does not depend
on what the weights learnt, and random weights never end a reply early, so every reply
runs to `--chars` (the worst case). Quality is the other half of the choice: held-out
bits/char of a base pretrained at that size (`mimical pretrain --units N`).
"""

from __future__ import annotations

import argparse
import statistics
import time
from dataclasses import replace

from mimical.corpus.schema import layout_context
from mimical.model.base_model import load_base
from mimical.model.model import (
    DECODING_FIELDS,
    ModelConfig,
    build_keras_model,
    network_weights,
    reply_generator,
)
from mimical.model.retrieval import Bank, graph_retrieval

BANK = Bank(
    tuple(f"reply number {i}" for i in range(200)),
    tuple(f"friend message {i} about the weekend" for i in range(200)),
)


def generator_of_size(units: int):
    """The reply graph of a base with `units` hidden units (random weights), and its
    parameter count."""
    base = load_base()
    defaults = ModelConfig()
    config = replace(base.config, units=units, **{f: getattr(defaults, f) for f in DECODING_FIELDS})
    model = build_keras_model(config, base.tokenizer.size)
    retrieval = graph_retrieval(BANK, config.retrieved)
    generator = reply_generator(
        network_weights(model, config), base.tokenizer, config, retrieval=retrieval
    )
    return generator, model.count_params()


def main() -> None:
    import tensorflow as tf

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--units", default="384,256,512", help="sizes; the first is the baseline")
    parser.add_argument("--repeats", type=int, default=40)
    parser.add_argument("--chars", type=int, default=100)
    args = parser.parse_args()
    sizes = [int(u) for u in args.units.split(",")]
    context = tf.constant([layout_context([(False, "hey! how was your weekend?")])])
    inputs = (context, tf.ones([1]), tf.constant([args.chars]))
    generators = {units: generator_of_size(units) for units in sizes}
    for generator, _ in generators.values():  # trace once, outside the timings
        generator.reply(*inputs, tf.constant([0], tf.int64))
    seconds = {units: [] for units in sizes}
    for repeat in range(args.repeats):
        for units, (generator, _) in generators.items():
            started = time.perf_counter()
            generator.reply(*inputs, tf.constant([repeat], tf.int64))["reply"].numpy()
            seconds[units].append(time.perf_counter() - started)
    baseline = statistics.median(seconds[sizes[0]])
    print(f"\nreply of {args.chars} characters, in process, {args.repeats} repeats, interleaved")
    print("| GRU units | parameters | p50 ms | p90 ms | vs baseline |")
    print("| --- | --- | --- | --- | --- |")
    for units, (_, parameters) in generators.items():
        p50 = statistics.median(seconds[units])
        p90 = statistics.quantiles(seconds[units], n=10)[-1]
        label = f"{units} (baseline)" if units == sizes[0] else str(units)
        print(
            f"| {label} | {parameters / 1e6:.2f}M | {p50 * 1000:.1f} | "
            f"{p90 * 1000:.1f} | {p50 / baseline:.2f}× |"
        )


if __name__ == "__main__":
    main()
