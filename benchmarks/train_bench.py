"""Benchmark training and replies: the base fine-tuned vs today's character model.

    .venv/bin/python benchmarks/train_bench.py [--minutes 5] [--corpus corpus.jsonl]

1. Builds the demo persona corpus (a Messenger sample export, imported), unless given.
2. Trains it twice for `--minutes` on this machine: fine-tuned from the shipped base,
   and from scratch (the character model: the same-run baseline).
3. Evaluates both: held-out bits/char next to the character 5-gram baseline fit on the
   same split, and the verbatim rate of sampled replies.
4. Times replies over gRPC (our model server, a real socket): exactly 100 characters
   (each model re-exported with end-of-turn forbidden, for the timing only), and as
   served (natural lengths, at most 100 characters).

Targets: bits/char ≥ 10% below the 5-gram; verbatim ≤ 2%; 100-char reply p50 ≤ 60 ms.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from mimical.corpus.schema import layout_context

REPLY_CHARS = 100
FRIEND_MESSAGES = [
    "hey! how was your weekend?",
    "what are you studying these days",
    "I just got back from the gym, so tired lol",
    "do you have any pets?",
    "what kind of music do you like?",
]
# As the dialog engine sends them: one friend's turn (`layout_context`).
CONTEXTS = [layout_context([(False, message)]) for message in FRIEND_MESSAGES]


def demo_corpus(workdir: Path) -> Path:
    from mimical.corpus.importer import import_exports
    from mimical.samples.export import write_sample_export

    export = write_sample_export("messenger", workdir / "export")
    corpus = workdir / "demo.jsonl"
    import_exports(export, corpus)
    return corpus


def export_without_end(export_dir: Path, model_base: Path, name: str) -> None:
    """Re-export a model's weights with end-of-turn forbidden: every reply is full length."""
    import tensorflow as tf

    from mimical.model.export import export_generator, export_parts
    from mimical.model.generator import reply_generator
    from mimical.model.model import EOT

    weights, tokenizer, config = export_parts(export_dir)
    generator = reply_generator(weights, tokenizer, config)
    generator.forbidden = generator.forbidden + tf.one_hot(EOT, generator.vocab_size, -1e9)
    export_generator(generator, model_base, name, extras={})


def grpc_latencies(model_base: Path, names: list[str], repeats: int) -> dict[str, list]:
    """{name: [(seconds, reply)]} for replies of at most REPLY_CHARS over gRPC."""
    from mimical.serving.client import ModelClient
    from mimical.serving.server import ModelServer

    results = {}
    with ModelServer(str(model_base)).start() as server:
        client = ModelClient(server.target)
        for name in names:
            # Warm up: loading and tracing may take minutes on a busy machine.
            client.reply(name, CONTEXTS[0], max_chars=REPLY_CHARS, seed=0, timeout=900)
            timings = []
            for i in range(repeats):
                started = time.perf_counter()
                reply = client.reply(
                    name, CONTEXTS[i % len(CONTEXTS)], max_chars=REPLY_CHARS, seed=i, timeout=60
                )
                timings.append((time.perf_counter() - started, reply))
            results[name] = timings
        client.close()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, default=5.0)
    parser.add_argument("--corpus", type=Path)
    parser.add_argument("--repeats", type=int, default=30)
    args = parser.parse_args()

    from mimical.model.evaluate import evaluate_model, mean
    from mimical.model.train import train_persona

    runs = {"fine-tuned base": False, "char GRU from scratch": True}
    rows: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        corpus = args.corpus or demo_corpus(workdir)
        for label, from_scratch in runs.items():
            name = "scratch" if from_scratch else "base"
            started = time.monotonic()
            result = train_persona(
                corpus,
                workdir / "models",
                name,
                max_minutes=args.minutes,
                progress=True,
                from_scratch=from_scratch,
            )
            wall = time.monotonic() - started
            export_without_end(result.export_dir, workdir / "models", f"{name}-full")
            rows[label] = {
                "name": name,
                "result": result,
                "wall": wall,
                "evaluation": evaluate_model(result.export_dir, corpus, baselines_too=False),
            }
        names = [n for r in rows.values() for n in (r["name"], f"{r['name']}-full")]
        timings = grpc_latencies(workdir / "models", names, args.repeats)

    def p50_ms(name):
        return statistics.median(t for t, _ in timings[name]) * 1000

    table = [("measure", *rows, "target")]
    for row in rows.values():
        full = [len(reply) for _, reply in timings[f"{row['name']}-full"]]
        row["full_chars"] = statistics.median(full)
        row["served_chars"] = statistics.median(len(r) for _, r in timings[row["name"]])

    def line(measure, value, target=""):
        table.append((measure, *(value(r) for r in rows.values()), target))

    line("test bits/char, model", lambda r: f"{r['evaluation']['bits_per_char']:.3f}")
    line("test bits/char, 5-gram KN", lambda r: f"{_baseline(r):.3f}")
    line(
        "model / 5-gram",
        lambda r: f"{r['evaluation']['bits_per_char'] / _baseline(r):.3f}",
        "≤ 0.900",
    )
    line(
        "verbatim rate (≥ 6 words)",
        lambda r: f"{mean(r['evaluation'], 'model', 'verbatim_rate'):.1%}",
        "≤ 1%",
    )
    line("training + export wall time", lambda r: f"{r['wall'] / 60:.1f} min")
    line("steps (stop reason)", lambda r: "{steps} ({stop_reason})".format(**r["result"].metrics))
    line(
        f"gRPC reply, {REPLY_CHARS} chars, p50",
        lambda r: f"{p50_ms(r['name'] + '-full'):.1f} ms ({r['full_chars']:.0f} ch)",
        "≤ 60 ms",
    )
    line(
        f"gRPC reply as served (≤ {REPLY_CHARS} chars), p50",
        lambda r: f"{p50_ms(r['name']):.1f} ms ({r['served_chars']:.0f} ch)",
    )
    line("parameters", lambda r: f"{r['result'].metrics['parameters']:,}")
    widths = [max(len(str(row[i])) for row in table) for i in range(len(table[0]))]
    for row in table:
        print("  ".join(f"{cell:<{w}}" for cell, w in zip(row, widths, strict=False)))


def _baseline(row) -> float:
    return row["evaluation"]["baseline_5gram_bits_per_char"]


if __name__ == "__main__":
    main()
