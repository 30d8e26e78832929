"""Does the persona sound like the person? Bases and decoders beside the baselines.

    nice -n 10 .venv/bin/python benchmarks/quality_bench.py [--people dev,dev-small] \
        [--part validation] [--bases shipped] [--minutes 1] [--variants hybrid] \
        [--split-seeds 0,1] [--train-seeds 0,1] [--json runs.json]
    # once per release, on the test part of the bench's people:
    .venv/bin/python benchmarks/quality_bench.py --people demo,300,1000,5000 --part test
    .venv/bin/python benchmarks/quality_bench.py --json runs.json --table-only

Every choice is made on the development group (`mimical.model.base_model.
development_conversation`): `dev` and `dev-small` are its two people with the most
replies (676 and 240), and `--part validation` (the default) measures on the validation
conversations that training carves from their training side. The bench's own people
(`demo`, and the held-out `300`, `1000`, `5000`: `BENCH_PEOPLE`) are the release test:
`--part test` on them is run once per release, its command and numbers in the README.

For each person, base and fine-tuning budget, in the same run:

1. builds the person's corpus as a user would: a Messenger sample export of their
   chitchat chats, imported;
2. for every split seed × training seed (intervals must cover which conversations are
   held out and how training went, not only decoding), fine-tunes the base for the
   budget (early stopping and the decoding calibration on validation conversations);
3. evaluates on `--part` (`mimical.model.evaluate`: up to 200 exchanges, 3 decoding
   seeds) the export (`hybrid`: 1 sampled and 2 retrieved candidates, as shipped), and
   other decoders over the same weights: `sampling` (4 sampled candidates), `one`
   (one, no retrieval), `private` (retrieving any of the person's replies);
   beside the baselines: retrieval by nearest friend turn, a random reply of the person,
   an echo of the friend, and the person against themselves (the floor);
4. times replies (≤ 100 characters) over gRPC from our model server.

Figures are the mean over the split × training runs with a 95% t-interval over them;
context use is the bits per reply the true context saves over a shuffled one.
Targets: two-sample ≤ 0.60; relevance above the retrieval baseline's; non-words ≤ 1.5×
the person's; verbatim ≤ 1%; reply p50 ≤ 60 ms.
"""

from __future__ import annotations

import argparse
import functools
import itertools
import json
import statistics
import tempfile
import time
from collections import Counter
from dataclasses import replace
from pathlib import Path

from mimical.corpus.schema import layout_context

BENCH = ("demo", "300", "1000", "5000")
DEVELOPMENT = ("dev", "dev-small")
PEOPLE = DEVELOPMENT + BENCH
# Decoding settings over the same fine-tuned weights; {} is the exported default.
VARIANTS = {
    "hybrid": {},
    "sampling": {"candidates": 4, "retrieved": 0},
    "one": {"candidates": 1, "retrieved": 0},
    "private": {},
}
# Variants retrieving from another bank than the export's (`public`): `private` is the
# hybrid as a private persona's owner may allow it (`--retrieval all`: any of their replies).
RETRIEVAL_POLICY = {"private": "all"}
BASELINES = ("retrieval", "random", "echo", "person")
REPLY_CHARS = 100
FRIEND_MESSAGES = [
    "hey! how was your weekend?",
    "do you want to grab dinner tonight?",
    "what are you studying these days",
    "I just got back from the gym, so tired lol",
    "what kind of music do you like?",
]
# As the dialog engine sends them: one friend's turn (`layout_context`).
CONTEXTS = [layout_context([(False, message)]) for message in FRIEND_MESSAGES]


@functools.cache
def held_out_people() -> dict[str, tuple[int, int]]:
    """Held-out chitchat senders → (replies, chats), over their two-person chats."""
    from mimical.model.base_model import is_held_out
    from mimical.samples.plan import load_chats

    replies: Counter = Counter()
    chats: Counter = Counter()
    for chat in load_chats():
        senders = {sender for sender, _, _ in chat["messages"]}
        if len(senders) == 2:
            chats.update(senders)
            for sender, _ in itertools.groupby(chat["messages"], key=lambda m: m[0]):
                replies[sender] += 1
    return {sender: (replies[sender], chats[sender]) for sender in chats if is_held_out(sender)}


def pick_person(person: str) -> str | None:
    """The chitchat sender id for `person` (None: the demo persona): a bench person
    (`BENCH_PEOPLE`), or the development group's person with the most (`dev`) or the
    second most (`dev-small`) replies."""
    from mimical.model.base_model import BENCH_PEOPLE, development_conversation

    if person == "demo":
        return None
    if person in BENCH_PEOPLE:
        return BENCH_PEOPLE[person]
    people = held_out_people()
    development = sorted(
        (s for s in people if development_conversation([s])),
        key=lambda s: (-people[s][0], s),
    )
    return development[DEVELOPMENT.index(person)]


def build_corpus(person: str, workdir: Path) -> Path:
    from mimical.corpus.importer import import_exports
    from mimical.samples.export import write_sample_export

    corpus = workdir / f"{person}.jsonl"
    if not corpus.exists():
        export = write_sample_export("messenger", workdir / f"{person}-export", pick_person(person))
        import_exports(export, corpus)
    return corpus


def reply_latencies(model_base: Path, name: str, repeats: int) -> list[float]:
    """Seconds per reply over gRPC, one request at a time, after one warm-up."""
    from mimical.serving.client import ModelClient
    from mimical.serving.server import ModelServer

    server = ModelServer(str(model_base)).start()
    client = ModelClient(server.target)
    try:
        # The first call loads and traces the model: minutes on a busy machine.
        client.reply(name, CONTEXTS[0], max_chars=REPLY_CHARS, seed=0, timeout=600)
        times = []
        for i, context in zip(range(repeats), itertools.cycle(CONTEXTS), strict=False):
            started = time.perf_counter()
            client.reply(name, context, max_chars=REPLY_CHARS, seed=i, timeout=60)
            times.append(time.perf_counter() - started)
        return times
    finally:
        client.close()
        server.stop()


def run(person: str, base: tuple[str, Path | None], minutes: float, args, workdir: Path) -> dict:
    """Fine-tune `base` on the person once per split × training seed, evaluate each."""
    from mimical.model.evaluate import evaluate_model, interval
    from mimical.model.export import export_parts
    from mimical.model.retrieval import bank_replies
    from mimical.model.train import persona_generator, train_persona

    corpus = build_corpus(person, workdir)
    label, base_dir = base
    model_base = workdir / "models" / f"{person}-{label}"  # the server loads these alone
    evaluations: dict[str, list[dict]] = {variant: [] for variant in args.variants}
    trainings, first = [], None
    for split_seed, train_seed in itertools.product(args.split_seeds, args.train_seeds):
        name = f"{person}-{label}-{minutes:g}min-s{split_seed}-t{train_seed}"
        print(f"\n== {name}: fine-tuning on {corpus.name}", flush=True)
        result = train_persona(
            corpus,
            model_base,
            name,
            max_minutes=minutes,
            seed=train_seed,
            split_seed=split_seed,
            base_dir=base_dir,
            progress=True,
        )
        first = first or result
        trainings.append(result.metrics)
        for variant in args.variants:
            print(f"   evaluating {variant} on the {args.part} part", flush=True)
            model = None
            if VARIANTS[variant] or variant in RETRIEVAL_POLICY:
                from mimical.model.data import load_split

                split = load_split(corpus, split_seed)
                weights, tokenizer, config = export_parts(result.export_dir)
                bank = bank_replies(split.train, RETRIEVAL_POLICY.get(variant, "public"))
                config = replace(config, **VARIANTS[variant])
                model = persona_generator(weights, tokenizer, config, split, bank)
            evaluation = evaluate_model(
                result.export_dir,
                corpus,
                model=model,
                baselines_too=variant == args.variants[0],
                part=args.part,
            )
            evaluations[variant].append({k: v for k, v in evaluation.items() if k != "curve"})
    latencies = reply_latencies(model_base, first.export_dir.parent.name, args.repeats)

    def pooled(runs: list[dict]) -> dict:
        """Each figure's mean over the runs (each the mean over its decoding seeds),
        with a 95% interval over the runs."""
        systems = runs[0]["systems"]
        figures = {
            system: {
                figure: interval([r["systems"][system][figure]["mean"] for r in runs])
                for figure in systems[system]
            }
            for system in systems
        }
        context = [r["context_use"]["bits_per_reply"] for r in runs]
        return {
            "systems": figures,
            "exchanges": runs[0]["exchanges"],
            "context_use": interval([c for c in context if c is not None]),
            "bits_per_char": interval([r["bits_per_char"] for r in runs]),
            "style": runs[0]["style"],
            "samples": runs[0]["samples"],
        }

    return {
        "person": person,
        "sender": pick_person(person) or "demo persona",
        "base": label,
        "minutes": minutes,
        "part": args.part,
        "seeds": {"split": args.split_seeds, "training": args.train_seeds},
        "replies": sum(
            trainings[0][k] for k in ("train_replies", "validation_replies", "test_replies")
        ),
        "training": [
            {k: m[k] for k in ("training_seconds", "steps", "stop_reason", "seed", "split_seed")}
            | {"validation_bits_per_char": round(m["validation_bits_per_char"], 4)}
            for m in trainings
        ],
        "calibration": trainings[0]["calibration"],
        "bank_replies": trainings[0]["retrieval"]["replies"],
        "reply_p50_ms": round(statistics.median(latencies) * 1000, 1),
        "evaluations": {variant: pooled(runs) for variant, runs in evaluations.items()},
    }


def _cell(figure: dict | None, spec: str) -> str:
    if not figure or figure["mean"] is None:
        return "n/a"
    if figure["low"] is None:
        return format(figure["mean"], spec)
    half = (figure["high"] - figure["low"]) / 2
    return f"{format(figure['mean'], spec)}±{format(half, spec)}"


def table_rows(run: dict) -> list[list[str]]:
    """One row per decoder variant and baseline of a run."""
    evaluations = run["evaluations"]
    first = next(iter(evaluations.values()))
    systems = [(variant, e["systems"]["model"], e) for variant, e in evaluations.items()]
    systems += [(b, first["systems"][b], None) for b in BASELINES if b in first["systems"]]
    rows = []
    for label, figures, evaluation in systems:
        rows.append(
            [
                run["person"],
                run["base"],
                f"{run['minutes']:g}",
                label,
                _cell(figures["two_sample_accuracy"], ".2f"),
                _cell(figures["relevance"], ".2f"),
                _cell(figures["non_word_rate"], ".1%"),
                _cell(figures["verbatim_rate"], ".1%"),
                _cell(figures["exact_copy_6_words_rate"], ".1%"),
                _cell(figures["length_ks"], ".2f"),
                _cell(figures["lines_ks"], ".2f"),
                _cell(figures["length_mean"], ".0f"),
                _cell(figures["placeholder_rate"], ".1%"),
                _cell(evaluation["context_use"], ".1f") if evaluation else "",
                _cell(evaluation["bits_per_char"], ".3f") if evaluation else "",
            ]
        )
    return rows


HEADER = [
    "person",
    "base",
    "min",
    "system",
    "2-sample ≤.60",
    "relevance",
    "non-words",
    "verbatim ≤1%",
    "copies 6+w",
    "length KS",
    "lines KS",
    "length",
    "<A…",
    "context bits",
    "bits/char",
]


def print_table(runs: list[dict]) -> None:
    rows = [HEADER] + [row for r in runs for row in table_rows(r)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(HEADER))]
    for index, row in enumerate(rows):
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)))
        if index == 0:
            print("  ".join("-" * width for width in widths))
    print("\nmean±half-width of the 95% interval over split × training seeds; per run:")
    for r in runs:
        calibration = r["calibration"]
        steps = ", ".join(f"{t['steps']} ({t['stop_reason']})" for t in r["training"])
        exchanges = next(iter(r["evaluations"].values()))["exchanges"]
        print(
            f"  {r['person']} ({r['sender']}) on {r['base']}, {r['part']} part, "
            f"{r['minutes']:g} min: {r['replies']} replies, {exchanges} exchanges; "
            f"seeds split {r['seeds']['split']} × training {r['seeds']['training']}; "
            f"steps {steps}; reply p50 {r['reply_p50_ms']:.0f} ms (≤{REPLY_CHARS} chars, "
            f"gRPC); bank {r['bank_replies']} replies; first run's calibration end "
            f"{calibration['end_bias']:+.1f} newline {calibration['newline_bias']:+.1f} "
            f"emoji {calibration.get('emoji_bias', 0.0):+.1f}"
        )


def print_samples(runs: list[dict], count: int = 10) -> None:
    """Friend → real → each run's reply (its first split and training seed)."""
    for r in runs:
        evaluation = next(iter(r["evaluations"].values()))
        print(f"\nsample exchanges, {r['person']} on {r['base']} ({r['minutes']:g} min):")
        for sample in evaluation["samples"][:count]:
            print(f"  friend:     {sample['context'][-120:]!r}")
            print(f"  real:       {sample['real'][:120]!r}")
            print(f"  model:      {sample['model'][:120]!r}")
            print()


def _seeds(text: str) -> list[int]:
    return [int(seed) for seed in text.split(",")]


def _bases(text: str) -> list[tuple[str, Path | None]]:
    """`shipped` (the package's base) or LABEL=DIR pairs, comma-separated."""
    bases = []
    for item in text.split(","):
        label, _, directory = item.partition("=")
        bases.append((label, Path(directory) if directory else None))
    return bases


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--people", default=",".join(DEVELOPMENT), help=",".join(PEOPLE))
    parser.add_argument("--part", choices=("validation", "test"), default="validation")
    parser.add_argument("--bases", type=_bases, default=_bases("shipped"), help="LABEL=DIR,...")
    parser.add_argument("--minutes", default="1", help="fine-tuning budgets, e.g. 0.5,1,2")
    parser.add_argument("--variants", default="hybrid", help=",".join(VARIANTS))
    parser.add_argument("--split-seeds", type=_seeds, default=[0, 1])
    parser.add_argument("--train-seeds", type=_seeds, default=[0, 1])
    parser.add_argument("--repeats", type=int, default=30, help="timed replies per model")
    parser.add_argument("--json", type=Path, help="keep all runs in this file (merged)")
    parser.add_argument("--table-only", action="store_true", help="print --json's table")
    parser.add_argument("--workdir", type=Path, help="keep corpora and models here")
    args = parser.parse_args()
    people, args.variants = args.people.split(","), args.variants.split(",")
    budgets = [float(m) for m in args.minutes.split(",")]
    if unknown := set(people) - set(PEOPLE) | set(args.variants) - set(VARIANTS):
        parser.error(f"unknown people or variants: {sorted(unknown)}")
    if args.part == "test" and set(people) & set(DEVELOPMENT):
        parser.error("the development people are for choosing: measure them on validation")

    runs = json.loads(args.json.read_text()) if args.json and args.json.exists() else []
    if not args.table_only:
        with tempfile.TemporaryDirectory(prefix="quality-bench-") as tmp:
            workdir = args.workdir or Path(tmp)
            workdir.mkdir(parents=True, exist_ok=True)
            for person, base, minutes in itertools.product(people, args.bases, budgets):
                result = run(person, base, minutes, args, workdir)
                key = (person, base[0], minutes, args.part)
                runs = [r for r in runs if (r["person"], r["base"], r["minutes"], r["part"]) != key]
                runs.append(result)
                if args.json:
                    args.json.write_text(json.dumps(runs, indent=1, ensure_ascii=False))
    runs.sort(key=lambda r: (r["part"], PEOPLE.index(r["person"]), r["base"], r["minutes"]))
    print()
    print_table(runs)
    print_samples(runs)


if __name__ == "__main__":
    main()
