"""What each base design costs a reply: p50 over gRPC from our model server, by design.

    nice -n 10 .venv/bin/python benchmarks/base_design_bench.py \
        [--designs gru,attention,attention-96,gru-512] [--repeats 40] [--chars 100]

A design is a network the base could have (`DESIGNS`: GRU units, attention over the
context, context tokens read). The first is the baseline, timed in the same run and
interleaved with the others, so that a busy machine slows every design alike. Each is
exported as a persona is (the shipped tokenizer, today's decoding: one sampled and two
retrieved candidates from a bank of short replies), with random weights, and served by
one `ModelServer`: the cost of a step does not depend on what the weights learnt, and
random weights never end a reply early, so every reply runs to `--chars` (the worst
case). Quality is the other half of the choice: context use and bits/char on the
development group of a base pretrained as that design for the same CPU-seconds
(`mimical pretrain --cpu-minutes ...`, recorded in its base.json).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from mimical.corpus.schema import layout_context
from mimical.model.base_model import load_base
from mimical.model.export import export_generator
from mimical.model.generator import reply_generator
from mimical.model.model import DECODING_FIELDS, ModelConfig, build_keras_model, network_weights
from mimical.model.retrieval import Bank, graph_retrieval

BANK = Bank(
    tuple(f"reply number {i}" for i in range(200)),
    tuple(f"friend message {i} about the weekend" for i in range(200)),
)
# name → (GRU units, attention dim (0: none), context tokens)
DESIGNS = {
    "gru": (384, 0, 48),
    "attention": (384, 128, 48),
    "attention-96": (384, 128, 96),
    "gru-512": (512, 0, 48),
}


def export_design(name: str, model_base: Path) -> int:
    """Export design `name` (random weights) under `model_base/name`; its parameters."""
    units, attention_dim, context_tokens = DESIGNS[name]
    base = load_base()
    defaults = ModelConfig()
    config = replace(
        base.config,
        units=units,
        attention_dim=attention_dim,
        context_tokens=context_tokens,
        context_chars=base.config.context_chars * context_tokens // base.config.context_tokens,
        **{f: getattr(defaults, f) for f in DECODING_FIELDS},
    )
    model = build_keras_model(config, base.tokenizer.size)
    retrieval = graph_retrieval(BANK, config.retrieved)
    generator = reply_generator(
        network_weights(model, config), base.tokenizer, config, retrieval=retrieval
    )
    export_generator(generator, model_base, name, {})
    return model.count_params()


def main() -> None:
    from mimical.serving.client import ModelClient
    from mimical.serving.server import ModelServer

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--designs", default=",".join(DESIGNS), help="the first is the baseline")
    parser.add_argument("--repeats", type=int, default=40)
    parser.add_argument("--chars", type=int, default=100)
    args = parser.parse_args()
    designs = args.designs.split(",")
    if unknown := set(designs) - set(DESIGNS):
        parser.error(f"unknown designs: {sorted(unknown)}; known: {', '.join(DESIGNS)}")
    context = layout_context([(False, "hey! how was your weekend?")])
    with tempfile.TemporaryDirectory(prefix="base-design-") as tmp:
        parameters = {name: export_design(name, Path(tmp)) for name in designs}
        server = ModelServer(tmp).start()
        client = ModelClient(server.target)
        try:
            for name in designs:  # load and trace once, outside the timings
                client.reply(name, context, max_chars=args.chars, seed=0, timeout=600)
            seconds = {name: [] for name in designs}
            for repeat in range(args.repeats):
                for name in designs:
                    started = time.perf_counter()
                    client.reply(name, context, max_chars=args.chars, seed=repeat, timeout=60)
                    seconds[name].append(time.perf_counter() - started)
        finally:
            client.close()
            server.stop()
    baseline = statistics.median(seconds[designs[0]])
    print(f"\nreply of {args.chars} characters over gRPC, {args.repeats} repeats, interleaved")
    print(
        "| design (units, attention, context tokens) | parameters | p50 ms | p90 ms | vs baseline |"
    )
    print("| --- | --- | --- | --- | --- |")
    for name in designs:
        p50 = statistics.median(seconds[name])
        p90 = statistics.quantiles(seconds[name], n=10)[-1]
        label = f"{name} {DESIGNS[name]}" + (" (baseline)" if name == designs[0] else "")
        print(
            f"| {label} | {parameters[name] / 1e6:.2f}M | {p50 * 1000:.1f} | "
            f"{p90 * 1000:.1f} | {p50 / baseline:.2f}× |"
        )


if __name__ == "__main__":
    main()
