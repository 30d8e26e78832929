"""Does the persona sound like the person? Decoders beside the baselines, on held-out people.

    nice -n 10 .venv/bin/python benchmarks/quality_bench.py [--minutes 2] \\
        [--people demo,300,1000,5000] [--variants before,sampling,one,hybrid,private] \\
        [--json runs.json]
    .venv/bin/python benchmarks/quality_bench.py --json runs.json --table-only

For each person and fine-tuning budget (`--minutes`, a comma list to measure quality
against time), in the same run:

1. builds the person's corpus as a user would: a Messenger sample export of their
   chitchat chats, imported (`demo` is the demo persona; 300/1000/5000 pick a held-out
   person with about that many replies, see `pick_person`: `sha256(sender id)` starts
   with b or c, so the base model never saw them);
2. fine-tunes the shipped base for the budget (early stopping and the decoding
   calibration on validation conversations carved from the training side), and with
   `before` among the variants a second time as round two did (no warm-up, the
   friends' text at full weight in the loss);
3. evaluates on the test conversations (`mimical.model.evaluate`: 200 exchanges where
   the person has them, 3 seeds, mean and 95% interval) the same weights decoded as:
   - `before`: round two (its fine-tuning, and its decoder: 4 candidates at T 0.8,
     top-k 40, top-p 0.9, no calibration, no retrieval); `sampling`: 4 candidates
     sampled near the learned distribution, calibrated; `one`: the same with one
     candidate (what the reranker does); `hybrid`: 1 sampled and 2 of the person's own
     replies retrieved (the default, as exported); `private`: the hybrid retrieving
     from all of the person's replies (`--retrieval all`, a private persona's option);
   - beside the baselines: retrieval by nearest friend turn, a random reply of the
     person, an echo of the friend, and the person against themselves (the floor);
4. times replies (≤ 100 characters) over gRPC from our model server.

Targets: two-sample ≤ 0.60; relevance above the retrieval baseline's; non-words ≤ 1.5×
the person's; distinct-2 ≥ 0.8× the person's; verbatim ≤ 1%; reply p50 ≤ 60 ms.
`--json` keeps every run (a later run replaces the same person and budget).
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

PEOPLE = ("demo", "300", "1000", "5000")
# Decoding settings over the same fine-tuned weights; {} is the exported default.
VARIANTS = {
    "before": {
        "candidates": 4,
        "temperature": 0.8,
        "top_k": 40,
        "top_p": 0.9,
        "retrieved": 0,
        "end_bias": 0.0,
        "newline_bias": 0.0,
        "emoji_bias": 0.0,
    },
    "sampling": {"candidates": 4, "retrieved": 0},
    "one": {"candidates": 1, "retrieved": 0},
    "hybrid": {},
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
    """The chitchat sender id for `person` (None: the demo persona).

    Among held-out people within 40% of the wanted number of replies, the one with the
    most chats: the split is by conversation, so more of them leave more to test on.
    Nobody that close: the nearest.
    """
    if person == "demo":
        return None
    people, wanted = held_out_people(), int(person)
    close = [
        sender for sender, (replies, _) in people.items() if abs(replies - wanted) <= 0.4 * wanted
    ]
    if close:
        return max(close, key=lambda sender: (people[sender][1], sender))
    return min(people, key=lambda sender: (abs(people[sender][0] - wanted), sender))


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


def run(person: str, minutes: float, variants: list[str], args, workdir: Path) -> dict:
    """Fine-tune once as round two did (for `before`) and once as today, then evaluate."""
    from mimical.model.data import load_split
    from mimical.model.evaluate import evaluate_model
    from mimical.model.export import export_parts
    from mimical.model.retrieval import bank_replies
    from mimical.model.train import FINE_TUNE, persona_generator, train_persona

    corpus = build_corpus(person, workdir)
    model_base = workdir / "models"
    split = load_split(corpus, args.seed)
    policies = {RETRIEVAL_POLICY.get(variant, "public") for variant in variants}
    banks = {policy: bank_replies(split.train, policy) for policy in policies}
    trainings = {"today": FINE_TUNE}
    if "before" in variants:  # round two: no warm-up, the friends' text at full weight
        trainings["round two"] = replace(FINE_TUNE, warmup_steps=0, context_loss_weight=None)
    trained = {}
    for label, schedule in trainings.items():
        name = f"{person}-{minutes:g}min" + ("-round-two" if label == "round two" else "")
        print(f"\n== {person}: fine-tuning {minutes:g} min ({label}) on {corpus.name}", flush=True)
        trained[label] = train_persona(
            corpus,
            model_base,
            name,
            max_minutes=minutes,
            seed=args.seed,
            progress=True,
            fine_tune=schedule,
        )
    evaluations = {}
    for variant in variants:
        print(f"   evaluating {variant}", flush=True)
        result = trained["round two" if variant == "before" else "today"]
        if VARIANTS[variant] or variant in RETRIEVAL_POLICY:
            weights, tokenizer, config = export_parts(result.export_dir)
            bank = banks[RETRIEVAL_POLICY.get(variant, "public")]
            generator = persona_generator(
                weights, tokenizer, replace(config, **VARIANTS[variant]), split, bank
            )
            evaluations[variant] = evaluate_model(
                result.export_dir, corpus, model=generator, baselines_too=False
            )
        else:  # the export itself, with the baselines
            evaluations[variant] = evaluate_model(result.export_dir, corpus)
    today = trained["today"]
    latencies = reply_latencies(model_base, today.export_dir.parent.name, args.repeats)
    return {
        "person": person,
        "sender": pick_person(person) or "demo persona",
        "minutes": minutes,
        "replies": len(split.train) + len(split.validation) + len(split.test),
        "training": {
            label: {k: r.metrics[k] for k in ("training_seconds", "steps", "stop_reason")}
            | {"validation_bits_per_char": round(r.metrics["validation_bits_per_char"], 4)}
            for label, r in trained.items()
        },
        "calibration": today.metrics["calibration"],
        "bank_replies": today.metrics["retrieval"]["replies"],
        "reply_p50_ms": round(statistics.median(latencies) * 1000, 1),
        "evaluations": {
            variant: {k: v for k, v in e.items() if k != "curve"}
            for variant, e in evaluations.items()
        },
    }


def _cell(figure: dict | None, spec: str) -> str:
    if not figure or figure["mean"] is None:
        return "n/a"
    half = (figure["high"] - figure["low"]) / 2
    return f"{format(figure['mean'], spec)}±{format(half, spec)}"


def table_rows(run: dict) -> list[list[str]]:
    """One row per decoder variant and baseline of a run."""
    evaluations = run["evaluations"]
    any_evaluation = next(iter(evaluations.values()))
    with_baselines = next((e for e in evaluations.values() if "person" in e["systems"]), None)
    systems = [(variant, e["systems"]["model"]) for variant, e in evaluations.items()]
    if with_baselines:
        systems += [(b, with_baselines["systems"][b]) for b in BASELINES]
    rows = []
    for label, figures in systems:
        rows.append(
            [
                run["person"],
                f"{run['minutes']:g}",
                f"{any_evaluation['exchanges']}",
                label,
                _cell(figures["two_sample_accuracy"], ".2f"),
                _cell(figures["relevance"], ".2f"),
                _cell(figures["non_word_rate"], ".1%"),
                _cell(figures["distinct_2"], ".2f"),
                _cell(figures["verbatim_rate"], ".1%"),
                _cell(figures["exact_copy_6_words_rate"], ".1%"),
                _cell(figures["length_ks"], ".2f"),
                _cell(figures["lines_ks"], ".2f"),
                _cell(figures.get("retrieved_share"), ".0%"),
            ]
        )
    return rows


HEADER = [
    "person",
    "min",
    "exch.",
    "system",
    "2-sample ≤.60",
    "relevance",
    "non-words",
    "distinct-2",
    "verbatim ≤1%",
    "copies 6+w",
    "length KS",
    "lines KS",
    "retrieved",
]


def print_table(runs: list[dict]) -> None:
    rows = [HEADER] + [row for r in runs for row in table_rows(r)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(HEADER))]
    for index, row in enumerate(rows):
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)))
        if index == 0:
            print("  ".join("-" * width for width in widths))
    print("\nmean±half-width of the 95% interval over 3 seeds; per run:")
    for r in runs:
        calibration = r["calibration"]
        trainings = "; ".join(
            f"{label} {t['steps']} steps in {t['training_seconds']:.0f} s "
            f"({t['stop_reason']}), validation {t['validation_bits_per_char']:.3f} bits/char"
            for label, t in r["training"].items()
        )
        print(
            f"  {r['person']} ({r['sender']}), {r['minutes']:g} min: {r['replies']} replies; "
            f"{trainings}; reply p50 {r['reply_p50_ms']:.0f} ms (≤{REPLY_CHARS} chars, gRPC); "
            f"bank {r['bank_replies']} replies; calibration end {calibration['end_bias']:+.1f} "
            f"newline {calibration['newline_bias']:+.1f} "
            f"emoji {calibration.get('emoji_bias', 0.0):+.1f} (length KS "
            f"{calibration['length_ks_before']:.2f}→{calibration['length_ks_after']:.2f}, "
            f"{calibration['seconds']:.0f} s)"
        )


def print_samples(runs: list[dict], count: int = 10) -> None:
    """Friend → real → each variant's reply, for the first test exchanges."""
    for r in runs:
        evaluations = r["evaluations"]
        print(f"\nsample exchanges, {r['person']} ({r['minutes']:g} min):")
        first = next(iter(evaluations.values()))["samples"]
        for index, sample in enumerate(first[:count]):
            print(f"  friend:     {sample['context'][-120:]!r}")
            print(f"  real:       {sample['real'][:120]!r}")
            for variant, evaluation in evaluations.items():
                print(f"  {variant + ':':<12}{evaluation['samples'][index]['model'][:120]!r}")
            print()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", default="2", help="fine-tuning budgets, e.g. 0.5,1,2,5")
    parser.add_argument("--people", default=",".join(PEOPLE), help="demo,300,1000,5000")
    parser.add_argument("--variants", default=",".join(VARIANTS), help=",".join(VARIANTS))
    parser.add_argument("--repeats", type=int, default=30, help="timed replies per model")
    parser.add_argument("--seed", type=int, default=0, help="the split and training seed")
    parser.add_argument("--json", type=Path, help="keep all runs in this file (merged)")
    parser.add_argument("--table-only", action="store_true", help="print --json's table")
    parser.add_argument("--workdir", type=Path, help="keep corpora and models here")
    args = parser.parse_args()
    people, variants = args.people.split(","), args.variants.split(",")
    budgets = [float(m) for m in args.minutes.split(",")]
    if unknown := set(people) - set(PEOPLE) | set(variants) - set(VARIANTS):
        parser.error(f"unknown people or variants: {sorted(unknown)}")

    runs = json.loads(args.json.read_text()) if args.json and args.json.exists() else []
    if not args.table_only:
        with tempfile.TemporaryDirectory(prefix="quality-bench-") as tmp:
            workdir = args.workdir or Path(tmp)
            workdir.mkdir(parents=True, exist_ok=True)
            for person, minutes in itertools.product(people, budgets):
                result = run(person, minutes, variants, args, workdir)
                runs = [r for r in runs if (r["person"], r["minutes"]) != (person, minutes)]
                runs.append(result)
                if args.json:
                    args.json.write_text(json.dumps(runs, indent=1, ensure_ascii=False))
    runs.sort(key=lambda r: (PEOPLE.index(r["person"]), r["minutes"]))
    print()
    print_table(runs)
    print_samples(runs)


if __name__ == "__main__":
    main()
